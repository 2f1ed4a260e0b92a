package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TurnOrder checks that a store applies concurrent batches in the order
// their turns are handed out (hub.WithTurn), passes a batch's turn when it
// returns with the batch applied, and keeps it when it fails before it
// could take its locks, for the caller's retry. A marriage and a later divorce of one person are applied
// as two batches, the divorce started first but with the marriage's turn
// before it: applied in turn order, history holds the marriage, then the
// divorce, each changing the marital section; applied the other way round,
// the marriage would be a late event leaving the marital section as it
// is (and raise no marriage notification).
func TurnOrder(t *testing.T, newStore NewStore) {
	day := func(d int) time.Time { return time.Date(2020, 3, d, 9, 0, 0, 0, time.UTC) }
	t.Run("ConcurrentBatchesTakeTurns", func(t *testing.T) {
		s := newStore(t)
		id, spouse := ValidID(515151), ValidID(515152)
		married := Event(t, schemas.MarriageRegistered, id, "turn-1", day(1), schemas.MarriageRegisteredData{SpouseID: spouse})
		divorced := Event(t, schemas.MarriageDivorced, id, "turn-2", day(20), schemas.MarriageDivorcedData{SpouseID: spouse})

		ctx := context.Background()
		aPassed := make(chan struct{})
		ctxA := hub.WithTurn(ctx, nil, sync.OnceFunc(func() { close(aPassed) }))
		ctxB := hub.WithTurn(ctx, aPassed, func() {})
		errs := make(chan error, 2)
		bDone := make(chan struct{})
		go func() {
			defer close(bDone)
			_, err := s.Apply(ctxB, []hub.Input{divorced})
			errs <- err
		}()
		// B must wait for A's turn; a store that does not would apply it
		// now. Give it the time to (a wait, not an assertion: B done or
		// not, the history below tells).
		select {
		case <-bDone:
		case <-time.After(time.Second):
		}
		go func() {
			_, err := s.Apply(ctxA, []hub.Input{married})
			errs <- err
		}()
		for range 2 {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("timed out waiting for both batches: a turn was not passed")
			}
		}
		AppliedInTurn(t, s, id, "turn-1", "turn-2")
	})

	t.Run("TurnPassedOnceApplied", func(t *testing.T) {
		s := newStore(t)
		id := ValidID(525252)
		reg := Event(t, schemas.MarriageRegistered, id, "turn-3", day(1), schemas.MarriageRegisteredData{SpouseID: ValidID(525253)})
		if _, err := s.Apply(context.Background(), []hub.Input{reg}); err != nil {
			t.Fatal(err)
		}
		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		never := make(chan struct{}) // a turn that never comes
		for _, tc := range []struct {
			name    string
			ctx     context.Context
			prev    <-chan struct{}
			batch   []hub.Input
			wantErr error
			// passes: whether Apply hands the turn on; one that failed
			// before it took its locks keeps it for the caller's retry.
			passes bool
		}{
			{"Applied", context.Background(), nil, []hub.Input{Event(t, schemas.MarriageDivorced, id, "turn-4", day(2), schemas.MarriageDivorcedData{SpouseID: ValidID(525253)})}, nil, true},
			{"Empty", context.Background(), nil, nil, nil, true},
			{"OnlyDuplicates", context.Background(), nil, []hub.Input{reg}, nil, true},
			{"CanceledWhileWaiting", canceled, never, []hub.Input{Event(t, schemas.MarriageDivorced, id, "turn-5", day(3), schemas.MarriageDivorcedData{SpouseID: ValidID(525253)})}, context.Canceled, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				passed := make(chan struct{})
				ctx := hub.WithTurn(tc.ctx, tc.prev, sync.OnceFunc(func() { close(passed) }))
				done := make(chan error, 1)
				go func() {
					_, err := s.Apply(ctx, tc.batch)
					done <- err
				}()
				select {
				case err := <-done:
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("Apply: %v, want %v", err, tc.wantErr)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("Apply did not return")
				}
				select {
				case <-passed:
					if !tc.passes {
						t.Fatal("Apply passed the turn of a batch it did not apply: the next batch could go before its retry")
					}
				default:
					if tc.passes {
						t.Fatal("Apply returned without passing its turn")
					}
				}
			})
		}
	})
}

// AppliedInTurn fails t unless id's history holds the marital events first
// and then second, each changing the marital section: applied the other
// way round, first would be a late event that changes nothing of it.
func AppliedInTurn(t *testing.T, s hub.Store, id citizenid.ID, first, second string) {
	t.Helper()
	h, err := s.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].EventID != first || h[1].EventID != second {
		t.Fatalf("history %+v: want %s then %s, the order of their turns", h, first, second)
	}
	for _, c := range h {
		if !slices.Contains(c.Sections, "marital") {
			t.Errorf("change %s (version %d) changed sections %v, not the marital one: applied out of turn", c.EventID, c.Version, c.Sections)
		}
	}
}
