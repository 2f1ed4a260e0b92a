package sdk_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/schemas"
)

// TestDeadLettersSurviveStreamRecreation: the hub re-creates its stream,
// whose sequences start again at 1, and the subscriber re-creates its
// consumers. A notification rejected after that, at a sequence an earlier
// dead letter had, is dead-lettered too, not dropped by the dead-letter
// stream as a duplicate of the earlier one (and then terminated, neither
// handled nor kept). A notification matching two filters' consumers is
// still dead-lettered once.
func TestDeadLettersSurviveStreamRecreation(t *testing.T) {
	tests := []struct {
		name      string
		perFilter bool
		// notification is the i-th rejected notification.
		notification func(i int) (schemas.Notification, string)
	}{
		{name: "a death, one consumer", notification: func(i int) (schemas.Notification, string) {
			n := sdktest.Death("d"+strconv.Itoa(i), sdktest.CitizenID(i), 1, "2026-01-02")
			return n, sdktest.Subject("pop", n, daoli)
		}},
		// A move within the region is on the out and the in consumers.
		{name: "a move within the region, a consumer per filter", perFilter: true, notification: func(i int) (schemas.Notification, string) {
			n := sdktest.Migration("m"+strconv.Itoa(i), sdktest.CitizenID(i), 1, daoli, nangang)
			return n, sdktest.Subject("pop", n, "")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			handler := func(context.Context, *sdk.Delivery) error { return errors.New("the bureau's system rejects it") }
			run(t, sdk.Config{Name: "rejecting", URL: e.srv.URL(), Filters: siFilters, Handler: handler, ConsumerPerFilter: tt.perFilter,
				Start: sdk.Start{Policy: sdk.StartAll}, MaxAttempts: 1, Backoff: []time.Duration{10 * time.Millisecond}})
			deadLetters := func() uint64 {
				dlq, err := e.js.Stream(ctx, "POPDLQ")
				if err != nil {
					return 0
				}
				info, err := dlq.Info(ctx)
				if err != nil {
					return 0
				}
				return info.State.Msgs
			}
			publish := func(i int) {
				n, subject := tt.notification(i)
				if seq := sdktest.Publish(t, e.js, sdktest.Msg(subject, n, "")); seq != 1 {
					t.Fatalf("notification %d at stream sequence %d, want 1", i, seq)
				}
			}

			publish(1)
			waitFor(t, "the first dead letter", 15*time.Second, func() bool { return deadLetters() == 1 })

			// As the hub does: the stream deleted and created again.
			if err := e.js.DeleteStream(ctx, schemas.StreamName); err != nil {
				t.Fatal(err)
			}
			sdktest.CreateStream(t, e.js, schemas.StreamName, "pop")
			consumers := 1
			if tt.perFilter {
				consumers = len(siFilters)
			}
			publish(2)
			// The subscriber finds its consumers gone and makes them again: seconds, more on a loaded machine.
			waitFor(t, "the second notification taken", time.Minute, func() bool { return taken(ctx, e.js, consumers) })
			time.Sleep(200 * time.Millisecond) // a second copy's dead letter would be on its way
			if got := deadLetters(); got != 2 {
				t.Fatalf("POPDLQ holds %d dead letters, want 2 (one per rejected notification)", got)
			}
			dlq, err := e.js.Stream(ctx, "POPDLQ")
			if err != nil {
				t.Fatal(err)
			}
			m, err := dlq.GetMsg(ctx, 2)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := tt.notification(2); m.Header.Get(sdk.HeaderStreamSequence) != "1" || m.Header.Get(nats.MsgIdHdr) == "" ||
				!strings.Contains(m.Header.Get(nats.MsgIdHdr), n.ChangeID) {
				t.Errorf("second dead letter: headers %v, want stream sequence 1 and an id naming change %s", m.Header, n.ChangeID)
			}
		})
	}
}

// taken reports whether the hub's stream has the subscriber's consumers,
// want of them, and none holds anything pending or unacknowledged while
// one delivered something.
func taken(ctx context.Context, js jetstream.JetStream, want int) bool {
	s, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		return false
	}
	n, delivered := 0, false
	for info := range s.ListConsumers(ctx).Info() {
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
		n, delivered = n+1, delivered || info.Delivered.Stream > 0
	}
	return n == want && delivered
}

// TestDeadLettersCannotBePreempted: every identity shares the dead-letter
// stream's duplicate window, and another identity that receives the same
// notifications knows everything the notification shows. Having it
// publish first, on its own dead-letter subject, with the id made of
// those (the subscriber's name, the stream sequence, the change id) must
// not get the subscriber's dead letter dropped as a duplicate: it is
// stored, on the subscriber's subject.
func TestDeadLettersCannotBePreempted(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dlq, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "POPDLQ", Subjects: []string{"popdlq.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	n := sdktest.Death("d1", sdktest.CitizenID(1), 1, "2026-01-02")
	for _, id := range []string{"rejecting:1:" + n.ChangeID, "rejecting:" + n.ChangeID, n.ChangeID} {
		m := nats.NewMsg("popdlq.intruder")
		m.Data = []byte("{}")
		if _, err := e.js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	handler := func(context.Context, *sdk.Delivery) error { return errors.New("the bureau's system rejects it") }
	run(t, sdk.Config{Name: "rejecting", URL: e.srv.URL(), Filters: siFilters, Handler: handler,
		Start: sdk.Start{Policy: sdk.StartAll}, MaxAttempts: 1, Backoff: []time.Duration{10 * time.Millisecond}})
	if seq := sdktest.Publish(t, e.js, sdktest.Msg(sdktest.Subject("pop", n, daoli), n, "")); seq != 1 {
		t.Fatalf("notification at stream sequence %d, want 1", seq)
	}
	waitFor(t, "the notification taken", 15*time.Second, func() bool { return taken(ctx, e.js, 1) })
	m, err := dlq.GetLastMsgForSubject(ctx, "popdlq.rejecting")
	if err != nil {
		t.Fatalf("the subscriber's dead letter is not in POPDLQ: %v", err)
	}
	if m.Header.Get(sdk.HeaderStreamSequence) != "1" || !strings.Contains(m.Header.Get(nats.MsgIdHdr), n.ChangeID) {
		t.Errorf("dead letter headers %v, want stream sequence 1 and an id naming change %s", m.Header, n.ChangeID)
	}
}
