package memdb

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
)

// TestPublishedKeptAcrossRecovery: the published entries a store keeps
// for the relay's republish window, and the deletion of older ones,
// survive kill -9 (replayed from the log) and a restart (loaded from the
// snapshot), so that a hub that went down with its NATS server can
// publish them again. Entries marked out of order are kept in Seq order.
func TestPublishedKeptAcrossRecovery(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, storetest.Population(t, 40, 12), 60)
	all, err := s.PendingOutbox(ctx, 0, 1<<20)
	if err != nil || len(all) < 60 {
		t.Fatalf("%d outbox entries (%v)", len(all), err)
	}
	seqs := func(es []hub.OutboxEntry) []int64 {
		out := make([]int64, len(es))
		for i, e := range es {
			out[i] = e.Seq
		}
		return out
	}
	mark := func(s *Store, es []hub.OutboxEntry) {
		t.Helper()
		if err := s.MarkPublished(ctx, seqs(es)); err != nil {
			t.Fatal(err)
		}
	}
	// Acknowledged long ago: the first ten, to be deleted.
	old := all[:10]
	mark(s, old)
	time.Sleep(time.Second)
	// The cut lies between the two groups, wide enough apart that a
	// stalled test goroutine (-race on a loaded machine) moves neither
	// group across it.
	between := time.Now()
	// Acknowledged lately, with holes filled afterwards: every other entry
	// of the next forty, then the others.
	var odd, even []hub.OutboxEntry
	for i, e := range all[10:50] {
		if i%2 == 0 {
			even = append(even, e)
		} else {
			odd = append(odd, e)
		}
	}
	mark(s, odd)
	mark(s, even)
	if err := s.DeletePublished(ctx, time.Since(between)+500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	want := seqs(all[10:50])
	check := func(stage string, s *Store) {
		t.Helper()
		for _, page := range []int{1, 7, 1 << 20} {
			var got []int64
			for after := int64(0); ; {
				es, err := s.PublishedOutbox(ctx, after, page)
				if err != nil {
					t.Fatal(err)
				}
				if len(es) == 0 {
					break
				}
				got = append(got, seqs(es)...)
				after = es[len(es)-1].Seq
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s, pages of %d: published entries kept %v, want %v", stage, page, got, want)
			}
		}
		pending, err := s.PendingOutbox(ctx, 0, 1<<20)
		if err != nil || !slices.Equal(seqs(pending), seqs(all[50:])) {
			t.Fatalf("%s: pending %v (%v), want %v", stage, seqs(pending), err, seqs(all[50:]))
		}
	}
	check("before the crash", s)
	crash(s)

	r, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	check("replayed from the log", r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	check("loaded from the snapshot", open(t, dir))
}
