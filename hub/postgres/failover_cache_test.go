package postgres

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
)

// TestStateCacheAfterFailover: instance A caches a person's state at
// version v from a transaction that a promoted asynchronous standby
// lacks; instance B then takes the same person to version v on the new
// primary with other events. A's next batch for the person finds the row
// at version v: the golden record is the merge of the events the new
// primary holds and the new ones. A took its cached, lost state and wrote
// it back, with the lost events' effects and without B's.
func TestStateCacheAfterFailover(t *testing.T) {
	ctx := context.Background()
	rig := newFailoverRig(t)
	a, b := rig.open(t), rig.open(t)

	// One person's events, in order.
	in := storetest.Population(t, 1, 9)
	if len(in) < 12 {
		t.Fatalf("only %d events", len(in))
	}
	first, lost, other, next := in[:3], in[3:6], in[6:9], in[9:12]
	applyRetrying(t, a, first)

	rig.lag(t)
	applyRetrying(t, a, lost) // committed on the primary only; A caches it

	rig.failover(t)
	applyRetrying(t, b, other) // B, on the new primary: same version as A's cache
	applyRetrying(t, a, next)

	held := append(append(append([]hub.Input{}, first...), other...), next...)
	want := storetest.Expected(held)
	id := in[0].Event.Subject
	got, err := b.Person(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	w := want[id]
	hist, _ := b.History(ctx, id)
	t.Logf("history on the new primary: %d changes (want %d); record version %d (want %d)", len(hist), len(held), got.Version, w.Version)
	if !reflect.DeepEqual(stripVolatile(got), stripVolatile(w)) {
		wrong := storetest.Expected(append(append(append([]hub.Input{}, first...), lost...), next...))[id]
		t.Errorf("the golden record is not the merge of the events the store holds:\n got  %+v\n want %+v\n(the merge of the lost events instead of B's: %+v, equal to got: %v)",
			stripVolatile(got), stripVolatile(w), stripVolatile(wrong), reflect.DeepEqual(stripVolatile(got), stripVolatile(wrong)))
	}
}

func stripVolatile(r hub.Record) hub.Record {
	r.UpdatedAt = time.Time{}
	return r
}
