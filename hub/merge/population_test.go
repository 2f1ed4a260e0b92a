package merge_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

var now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func population(tb testing.TB, persons int) []hub.Input {
	tb.Helper()
	var in []hub.Input
	if err := synth.Generate(context.Background(), synth.Config{Persons: persons, Seed: 3}, func(ev schemas.Event) error {
		in = append(in, hub.Input{Event: ev})
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return in
}

// mergeAll merges in in batches of size, carrying states between batches
// as a store does.
func mergeAll(in []hub.Input, size int) (history []merge.Entry, outbox []hub.OutboxEntry) {
	states := map[citizenid.ID]*merge.State{}
	for i := 0; i < len(in); i += size {
		batch := in[i:min(i+size, len(in))]
		loaded := make(map[citizenid.ID]*merge.State, len(batch))
		for _, x := range batch {
			loaded[x.Event.Subject] = states[x.Event.Subject]
		}
		out := merge.Batch(loaded, batch, now)
		for id, st := range out.States {
			states[id] = st
		}
		history = append(history, out.History...)
		outbox = append(outbox, out.Outbox...)
	}
	return history, outbox
}

// TestBatchMatchesOneByOne: merging a realistic population in large
// batches, where a person's events follow one another within a batch,
// gives exactly the history sections and notifications of merging it one
// event at a time.
func TestBatchMatchesOneByOne(t *testing.T) {
	in := population(t, 300)
	wantH, wantO := mergeAll(in, 1)
	gotH, gotO := mergeAll(in, 2000)
	if len(gotH) != len(wantH) || len(gotO) != len(wantO) {
		t.Fatalf("batched: %d history rows and %d notifications; one by one: %d and %d", len(gotH), len(gotO), len(wantH), len(wantO))
	}
	for i := range wantH {
		w, g := wantH[i], gotH[i]
		if g.CitizenID != w.CitizenID || g.Change.Version != w.Change.Version || !slices.Equal(g.Change.Sections, w.Change.Sections) {
			t.Fatalf("history row %d (event %s): batched version %d sections %v; one by one version %d sections %v",
				i, w.Change.EventID, g.Change.Version, g.Change.Sections, w.Change.Version, w.Change.Sections)
		}
	}
	for i := range wantO {
		w, g := wantO[i], gotO[i]
		if g.Subject != w.Subject || g.MsgID != w.MsgID || string(g.Body) != string(w.Body) {
			t.Fatalf("notification %d: batched %s %s %s; one by one %s %s %s", i, g.Subject, g.MsgID, g.Body, w.Subject, w.MsgID, w.Body)
		}
	}
	if len(wantO) < len(in)/2 {
		t.Fatalf("only %d notifications for %d events", len(wantO), len(in))
	}
}

// BenchmarkBatchPopulation merges the realistic synthetic population in
// batches of 2,000 in the order it was generated, carrying each person's
// state from batch to batch as a store does: the merge the hub runs for
// every batch, without any store.
func BenchmarkBatchPopulation(b *testing.B) {
	in := population(b, 5000)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		mergeAll(in, 2000)
		n += len(in)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
