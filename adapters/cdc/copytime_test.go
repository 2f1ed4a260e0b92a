package cdc

import (
	"context"
	"fmt"
	"testing"

	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestChangesDuringTheCopyOutrankIt: a row the initial copy sends as it
// was, and then changed after the slot was created, reaches the hub twice:
// from the copy with its old values, from the slot with the change. With
// the copy's events dated at the commit time ($commit_time, the default
// time), the hub, which keeps the latest event of each record, must keep
// the change, whichever comes first: the copy is dated before every
// transaction the slot sends. It holds for a copy taken again after a
// start that failed during its copy, which has a slot of its own.
func TestChangesDuringTheCopyOutrankIt(t *testing.T) {
	const leases = 3
	for _, tc := range []struct {
		name string
		// again: a first copy completes, and the next start takes it
		// again, after the rows changed (so that its events are new).
		again bool
	}{
		{name: "first copy"},
		{name: "copy taken again", again: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(t)
			table := rentalsTable(t, db)
			for lease := 1; lease <= leases; lease++ {
				insertLease(t, db, table, lease, citizen(lease))
			}
			addr := testenv.Kafka(t, partitions)
			pub := newPublisher(t, addr)
			m := exampleMapping(t)
			m.Time = "" // $commit_time: the copy's events take the copy's time
			if tc.again {
				s := newStream(t, table, pub, m)
				r := start(t, s)
				waitFor(t, r, "the first copy", func() bool { return s.Stats().Published == leases })
				r.stop(t)
				// As a start interrupted during its copy leaves it.
				exec(t, db, "COMMENT ON PUBLICATION pophub_"+table+" IS NULL")
				exec(t, db, "UPDATE "+table+" SET end_date = '2029-01-01'")
			}

			s := newStream(t, table, pub, m)
			updated := make(chan error, 1)
			s.slotCreated = func(ctx context.Context) {
				// Committed after the slot's start: the slot sends it, and
				// the copy, reading the slot's snapshot, does not see it.
				_, err := db.Exec(ctx, "UPDATE "+table+" SET end_date = '2030-01-01'")
				updated <- err
			}
			r := start(t, s)
			waitFor(t, r, "the copy and the updates", func() bool { return s.Stats().Published == 2*leases })
			r.stop(t)
			if err := <-updated; err != nil {
				t.Fatalf("updating during the copy: %v", err)
			}

			kept := hubLatest(records(t, addr))
			for lease := 1; lease <= leases; lease++ {
				ev, ok := kept[fmt.Sprint(lease)]
				if !ok {
					t.Errorf("lease %d: no event", lease)
					continue
				}
				if d, ok := ev.Payload.(*schemas.RentalRegisteredData); !ok || d.End != "2030-01-01" {
					t.Errorf("lease %d: the hub keeps %q at %v; want the update to end=2030-01-01, which the table holds",
						lease, summary(t, ev), ev.Time)
				}
			}
		})
	}
}

// hubLatest is, for each lease, the event the hub keeps: repeats of an
// event id dropped, the latest by the hub's order (merge.Stamp).
func hubLatest(evs []schemas.Event) map[string]schemas.Event {
	seen := map[string]bool{}
	kept := map[string]schemas.Event{}
	stamp := func(ev schemas.Event) merge.Stamp { return merge.Stamp{T: ev.Time, Src: ev.Source, ID: ev.ID} }
	for _, ev := range evs {
		if seen[ev.ID] {
			continue
		}
		seen[ev.ID] = true
		var lease string
		switch d := ev.Payload.(type) {
		case *schemas.RentalRegisteredData:
			lease = d.LeaseID
		case *schemas.RentalEndedData:
			lease = d.LeaseID
		}
		if cur, ok := kept[lease]; !ok || stamp(ev).After(stamp(cur)) {
			kept[lease] = ev
		}
	}
	return kept
}
