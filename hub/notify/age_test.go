package notify

import (
	"context"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// Both stores tell the age of their oldest pending entry without reading
// it.
var (
	_ OutboxAge = (*memdb.Store)(nil)
	_ OutboxAge = (*postgres.Store)(nil)
)

// TestOutboxAgeGaugeIsStoreAge: pophub_outbox_age_seconds is the age of
// the store's oldest pending entry when scraped, on both stores, from a
// relay that publishes nothing (one standing by, or cut off from NATS):
// 0 with nothing pending, then the first batch's age, then the second's
// once the first is published, then 0 again.
func TestOutboxAgeGaugeIsStoreAge(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		open func(t *testing.T) hub.Store
	}{
		{"memdb", func(t *testing.T) hub.Store {
			s, err := memdb.Open(ctx, memdb.Config{Dir: t.TempDir()})
			if err != nil {
				t.Fatalf("opening memdb store: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(t *testing.T) hub.Store {
			s, err := postgres.Open(ctx, postgres.Config{URL: testenv.PostgresURL(), Schema: testenv.Schema(t)})
			if err != nil {
				t.Fatalf("opening PostgreSQL store: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.open(t)
			tel := newTelemetry(t)
			New(Config{Meter: tel.Meter("test")}, connect(t, natsServer(t, 0).ClientURL()), store) // never runs
			age := func() float64 {
				t.Helper()
				return metricSum(t, tel, "pophub_outbox_age_seconds")
			}
			if got := age(); got != 0 {
				t.Fatalf("pophub_outbox_age_seconds = %v with nothing pending (-1: absent), want 0", got)
			}

			in := storetest.Population(t, 6, 1)
			half := len(in) / 2
			beforeFirst := time.Now()
			first := storetest.ApplyAll(t, store, in[:half], half).Notifications
			afterFirst := time.Now()
			time.Sleep(1200 * time.Millisecond)
			beforeSecond := time.Now()
			storetest.ApplyAll(t, store, in[half:], len(in))
			afterSecond := time.Now()
			if first == 0 {
				t.Fatal("the first batch made no notifications")
			}
			// The age lies between the times since the batch's Apply
			// returned and since it was called. The store keeps wall
			// clock times, which the gauge subtracts from the wall clock
			// (another process may have stored them), so the bounds are
			// wall clock differences too: time.Since would use the
			// monotonic clock, from which the wall clock of a virtual
			// machine drifts by milliseconds as it is corrected.
			since := func(t0 time.Time) float64 { return time.Now().Round(0).Sub(t0.Round(0)).Seconds() }
			within := func(what string, after, before time.Time) {
				t.Helper()
				low := since(after)
				got := age()
				high := since(before)
				if got < low || got > high {
					t.Errorf("%s: pophub_outbox_age_seconds = %.3f, want the %s's age, %.3f to %.3f", what, got, what, low, high)
				}
			}
			within("first batch", afterFirst, beforeFirst)

			pending, err := store.PendingOutbox(ctx, 0, first)
			if err != nil {
				t.Fatal(err)
			}
			seqs := make([]int64, len(pending))
			for i, e := range pending {
				seqs[i] = e.Seq
			}
			if err := store.MarkPublished(ctx, seqs); err != nil {
				t.Fatal(err)
			}
			within("second batch", afterSecond, beforeSecond)

			rest, err := store.PendingOutbox(ctx, 0, 1_000_000)
			if err != nil {
				t.Fatal(err)
			}
			seqs = seqs[:0]
			for _, e := range rest {
				seqs = append(seqs, e.Seq)
			}
			if err := store.MarkPublished(ctx, seqs); err != nil {
				t.Fatal(err)
			}
			if got := age(); got != 0 {
				t.Errorf("pophub_outbox_age_seconds = %v once all are published, want 0", got)
			}
		})
	}
}
