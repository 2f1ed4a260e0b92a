package watch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/notify"
	"github.com/pophub/pophub/schemas"
)

// loseStream deletes the notification stream and creates it again, as
// the relay does when it finds it gone (a lost volume, a deletion by
// mistake), and listens again for announcements: the rig's listener went
// with the stream.
func (r *rig) loseStream(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := r.js.DeleteStream(ctx, schemas.StreamName); err != nil {
		t.Fatal(err)
	}
	// The server removes a deleted stream's files behind its answer, and
	// creating one of the same name meanwhile can fail ("error creating
	// store for stream"): try again, as the relay does at its next round.
	for attempt := 0; ; attempt++ {
		err := notify.EnsureStream(ctx, r.js, notify.StreamConfig{})
		if err == nil {
			break
		}
		if attempt == 50 {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{
		FilterSubject: schemas.EligibilityFilter("", ""), AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { r.got <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
}

// TestDecidingGoesOnAfterTheConsumerIsLost: when the notification stream
// goes missing while the hub runs, the relay creates it again and
// publishes on; subscribers to pop.eligibility rely on the watcher going
// on too, without a restart, whether its consumer went with the stream or
// alone (deleted by mistake): a person whose qualifying change came before
// the watcher found its consumer gone is announced, and so is one who
// qualifies later. The loss is said at WARN.
func TestDecidingGoesOnAfterTheConsumerIsLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(*rig, *testing.T)
	}{
		{"with the stream", (*rig).loseStream},
		{"alone", func(r *rig, t *testing.T) {
			if err := r.js.DeleteConsumer(context.Background(), schemas.StreamName, "pophub-eligibility"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
			id, in := daqing(t, "2023-03-01", "2023-04..2025-02") // 23 months: one short
			r.apply(t, in)
			early, in := daqingBorn(t, "1991-02-02", "2023-03-01", "2023-04..2025-02")
			r.apply(t, in)
			r.expect(t, nil, 1500*time.Millisecond)

			tc.lose(r, t)
			// At once, before the watcher can have noticed.
			_, more := daqingBorn(t, "1991-02-02", "2023-03-01", "2025-03..2025-03")
			last := more[len(more)-1]
			last.Event.ID = "si-early-2025-03"
			r.apply(t, []hub.Input{last})
			r.expect(t, &schemas.EligibilityNotification{CitizenID: early, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 15*time.Second)

			time.Sleep(2 * time.Second)
			_, more = daqing(t, "2023-03-01", "2025-03..2025-03")
			last = more[len(more)-1]
			last.Event.ID = "si-2025-03"
			r.apply(t, []hub.Input{last})
			r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 15*time.Second)
			r.expect(t, nil, time.Second) // nobody twice
			if !strings.Contains(r.log.String(), `level=WARN msg="eligibility: the consumer of change notifications was gone`) {
				t.Errorf("nothing said about the lost consumer:\n%s", r.log.String())
			}
		})
	}
}

// TestQualifyingDayKeptAfterNATSLostItsStore: the NATS server's store is
// lost and the hub restarts on an empty one. The qualifying day of a
// person whose rental reaches two years tomorrow was kept only in the
// eligibility bucket; the store still holds everything the decision
// needs, and applicants rely on being announced on that day all the same;
// subscribers rely on a person announced before the loss not being
// announced again at their next change. The loss is logged at ERROR.
func TestQualifyingDayKeptAfterNATSLostItsStore(t *testing.T) {
	r := newRig(t, time.Date(2025, 3, 1, 12, 0, 0, 0, china), "heilongjiang/daqing")
	announced, in := daqingBorn(t, "1992-03-03", "2023-01-01", "2023-01..2025-01")
	r.apply(t, in)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: announced, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)
	id, in := daqing(t, "2023-03-03", "2023-01..2025-01")
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond) // decided: qualifies tomorrow, saved in the bucket

	r.stop()
	// NATS comes back empty: the bucket and the stream are gone.
	if err := r.js.DeleteKeyValue(context.Background(), "pophub_eligibility"); err != nil {
		t.Fatal(err)
	}
	r.loseStream(t)
	r.start(t) // the hub restarts
	if !strings.Contains(r.log.String(), "level=ERROR") {
		t.Errorf("the lost decisions were not reported at ERROR:\n%s", r.log.String())
	}
	_, more := daqingBorn(t, "1992-03-03", "2023-01-01", "2025-02..2025-02")
	again := more[len(more)-1]
	again.Event.ID = "si-announced-2025-02"
	r.apply(t, []hub.Input{again})
	r.expect(t, nil, 1500*time.Millisecond)

	tomorrow := time.Date(2025, 3, 2, 12, 0, 0, 0, china)
	r.now.Store(&tomorrow)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 15*time.Second)
}
