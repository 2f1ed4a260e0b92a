// Package storetest is the conformance suite every hub.Store passes: the
// PostgreSQL and memdb stores run the same test bodies, so that both keep
// the contract the hub relies on (atomic batches, idempotency, order
// independence, outbox order, no lost updates under concurrency).
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// NewStore opens a fresh, empty store for one test and arranges its
// cleanup.
type NewStore func(t *testing.T) hub.Store

// Run runs the suite.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s hub.Store)
	}{
		{"ApplyDerivesRecord", testApplyDerivesRecord},
		{"HistoryInVersionOrder", testHistory},
		{"DuplicatesChangeNothing", testDuplicates},
		{"ShuffledAndRepeatedGiveSameRecords", testOrderIndependence},
		{"UnknownPersonNotFound", testNotFound},
		{"OutboxOrderAndPublishing", testOutbox},
		{"Stats", testStats},
		{"ConcurrentApplyLosesNothing", testConcurrent},
		{"CanceledContext", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.fn(t, s)
		})
	}
	t.Run("CloseTwice", func(t *testing.T) {
		s := newStore(t)
		if err := s.Close(); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

// Population returns the decoded events of a small synthetic population
// covering every event type.
func Population(t testing.TB, persons int, seed int64) []hub.Input {
	t.Helper()
	in, err := PopulationEvents(persons, seed)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// PopulationEvents is Population for code that has no testing.TB.
func PopulationEvents(persons int, seed int64) ([]hub.Input, error) {
	var in []hub.Input
	err := synth.Generate(context.Background(), synth.Config{Persons: persons, Months: 24, Seed: seed}, func(ev schemas.Event) error {
		raw, err := schemas.Encode(ev)
		if err != nil {
			return err
		}
		dec, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: raw})
		if err != nil {
			return fmt.Errorf("synthetic event %s does not decode: %w", ev.ID, err)
		}
		in = append(in, hub.Input{Event: dec})
		return nil
	})
	return in, err
}

// Expected derives the records the events must produce, with the pure
// merge rules alone.
func Expected(in []hub.Input) map[citizenid.ID]hub.Record {
	out := merge.Batch(nil, in, time.Now())
	recs := make(map[citizenid.ID]hub.Record, len(out.States))
	for id, st := range out.States {
		recs[id] = st.Record()
	}
	return recs
}

// Normal drops what depends on arrival rather than content.
func Normal(r hub.Record) hub.Record {
	r.UpdatedAt = time.Time{}
	return r
}

func applyAll(t testing.TB, s hub.Store, in []hub.Input, batch int) hub.ApplyResult {
	t.Helper()
	var total hub.ApplyResult
	for i := 0; i < len(in); i += batch {
		res, err := s.Apply(context.Background(), in[i:min(i+batch, len(in))])
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		total.Applied += res.Applied
		total.Duplicates += res.Duplicates
		total.Notifications += res.Notifications
	}
	return total
}

// CompareRecords checks the store holds exactly the expected records.
func CompareRecords(t testing.TB, s hub.Store, want map[citizenid.ID]hub.Record) {
	t.Helper()
	for id, w := range want {
		got, err := s.Person(context.Background(), id)
		if err != nil {
			t.Fatalf("Person(%v): %v", id, err)
		}
		if !reflect.DeepEqual(Normal(got), Normal(w)) {
			gb, _ := json.Marshal(Normal(got))
			wb, _ := json.Marshal(Normal(w))
			t.Fatalf("person %v:\n got %s\nwant %s", id, gb, wb)
		}
	}
}

func testApplyDerivesRecord(t *testing.T, s hub.Store) {
	in := Population(t, 60, 11)
	res := applyAll(t, s, in, 100)
	if res.Applied != len(in) || res.Duplicates != 0 {
		t.Errorf("applied %d duplicates %d, want %d and 0", res.Applied, res.Duplicates, len(in))
	}
	if res.Notifications == 0 {
		t.Error("no notifications reported")
	}
	CompareRecords(t, s, Expected(in))
}

func testHistory(t *testing.T, s hub.Store) {
	in := Population(t, 10, 12)
	applyAll(t, s, in, 7)
	counts := map[citizenid.ID]int{}
	for _, e := range in {
		counts[e.Event.Subject]++
	}
	for id, n := range counts {
		h, err := s.History(context.Background(), id)
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		if len(h) != n {
			t.Fatalf("person %v: %d history rows, want %d", id, len(h), n)
		}
		for i, c := range h {
			if c.Version != int64(i+1) {
				t.Fatalf("history[%d].Version = %d", i, c.Version)
			}
			if c.EventID == "" || c.Source == "" || c.Type == "" || c.Time.IsZero() || c.AppliedAt.IsZero() || c.Sections == nil || len(c.Data) == 0 {
				t.Fatalf("history[%d] incomplete: %+v", i, c)
			}
		}
		rec, _ := s.Person(context.Background(), id)
		if rec.Version != int64(n) {
			t.Fatalf("version %d, want %d", rec.Version, n)
		}
	}
}

func testDuplicates(t *testing.T, s hub.Store) {
	in := Population(t, 10, 13)
	applyAll(t, s, in, 50)
	st1, _ := s.Stats(context.Background())
	// Again in one batch: all duplicates; and one batch holding the same
	// event twice.
	res := applyAll(t, s, in, len(in))
	if res.Applied != 0 || res.Duplicates != len(in) || res.Notifications != 0 {
		t.Errorf("re-apply: applied %d duplicates %d notifications %d", res.Applied, res.Duplicates, res.Notifications)
	}
	st2, _ := s.Stats(context.Background())
	if st1 != st2 {
		t.Errorf("stats changed by duplicates: %+v → %+v", st1, st2)
	}
	CompareRecords(t, s, Expected(in))

	extra := Population(t, 2, 114)
	res = applyAll(t, s, append(extra, extra...), 10_000)
	if res.Applied != len(extra) || res.Duplicates != len(extra) {
		t.Errorf("batch with repeats: applied %d duplicates %d, want %d each", res.Applied, res.Duplicates, len(extra))
	}
}

func testOrderIndependence(t *testing.T, s hub.Store) {
	in := Population(t, 40, 15)
	want := Expected(in)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	shuffled := append([]hub.Input(nil), in...)
	for i := 0; i < len(in)/4; i++ {
		shuffled = append(shuffled, in[r.IntN(len(in))])
	}
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i := 0; i < len(shuffled); {
		n := 1 + r.IntN(60)
		if _, err := s.Apply(context.Background(), shuffled[i:min(i+n, len(shuffled))]); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	CompareRecords(t, s, want)
}

func testNotFound(t *testing.T, s hub.Store) {
	id := citizenid.ID("110101199003074477")
	if _, err := s.Person(context.Background(), id); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("Person: %v, want ErrNotFound", err)
	}
	if _, err := s.History(context.Background(), id); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("History: %v, want ErrNotFound", err)
	}
}

func testOutbox(t *testing.T, s hub.Store) {
	ctx := context.Background()
	in := Population(t, 20, 16)
	half := len(in) / 2
	want := merge.Batch(nil, in[:half], time.Now()).Outbox
	applyAll(t, s, in[:half], half)
	applyAll(t, s, in[half:], 25)

	var all []hub.OutboxEntry
	after := int64(0)
	for {
		page, err := s.PendingOutbox(ctx, after, 17)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("outbox seq not increasing: %d after %d", all[i].Seq, all[i-1].Seq)
		}
	}
	// The first batch's entries come first, with merge's subjects and ids.
	if len(all) < len(want) {
		t.Fatalf("%d outbox entries, want at least %d", len(all), len(want))
	}
	wantIDs := map[string]string{}
	for _, w := range want {
		wantIDs[w.MsgID] = w.Subject
	}
	for _, e := range all[:len(want)] {
		if subj, ok := wantIDs[e.MsgID]; !ok || subj != e.Subject {
			t.Fatalf("entry %s on %s not among the first batch's notifications", e.MsgID, e.Subject)
		}
		var n schemas.Notification
		if err := json.Unmarshal(e.Body, &n); err != nil || n.ChangeID != e.MsgID {
			t.Fatalf("entry body %s: %v", e.Body, err)
		}
	}

	// Mark some published (twice), the rest stay pending.
	var marked []int64
	for i := 0; i < len(all); i += 2 {
		marked = append(marked, all[i].Seq)
	}
	for range 2 {
		if err := s.MarkPublished(ctx, marked); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := s.PendingOutbox(ctx, 0, len(all)+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != len(all)-len(marked) {
		t.Fatalf("%d pending after marking %d of %d", len(pending), len(marked), len(all))
	}
	st, _ := s.Stats(ctx)
	if st.OutboxPending != int64(len(pending)) {
		t.Errorf("Stats.OutboxPending = %d, want %d", st.OutboxPending, len(pending))
	}

	// New entries get higher sequence numbers than any before.
	more := Population(t, 4, 116)
	applyAll(t, s, more, 1000)
	after = all[len(all)-1].Seq
	fresh, err := s.PendingOutbox(ctx, after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) == 0 {
		t.Fatal("no new outbox entries after a new batch")
	}
}

func testStats(t *testing.T, s hub.Store) {
	in := Population(t, 30, 17)
	applyAll(t, s, in, 64)
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	persons := map[citizenid.ID]bool{}
	for _, e := range in {
		persons[e.Event.Subject] = true
	}
	if st.Persons != int64(len(persons)) || st.Changes != int64(len(in)) {
		t.Errorf("stats %+v, want %d persons and %d changes", st, len(persons), len(in))
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// testConcurrent applies overlapping batches from several goroutines, as
// several consumers (or hub instances) would.
func testConcurrent(t *testing.T, s hub.Store) {
	in := Population(t, 30, 18)
	want := Expected(in)
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker applies every event, in its own order: each event
			// must be applied exactly once overall.
			r := rand.New(rand.NewPCG(uint64(w), 9))
			mine := append([]hub.Input(nil), in...)
			r.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			for i := 0; i < len(mine); i += 40 {
				if _, err := s.Apply(context.Background(), mine[i:min(i+40, len(mine))]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Apply: %v", err)
	}
	CompareRecords(t, s, want)
	st, _ := s.Stats(context.Background())
	if st.Changes != int64(len(in)) {
		t.Errorf("%d history rows, want %d: an event was applied twice or lost", st.Changes, len(in))
	}
}

func testCanceled(t *testing.T, s hub.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := Population(t, 2, 19)
	if _, err := s.Apply(ctx, in); err == nil {
		t.Error("Apply with a canceled context succeeded")
	}
	st, _ := s.Stats(context.Background())
	if st.Changes != 0 {
		t.Errorf("a canceled Apply left %d history rows", st.Changes)
	}
}
