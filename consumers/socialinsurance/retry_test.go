package socialinsurance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// crashAfterPublish publishes, then closes the store the completion marks
// the task done in: the bureau's process dying (or its database going
// away) after the event reached Kafka and before the task was marked.
type crashAfterPublish struct {
	pub   *hubPublisher
	store *Store
}

func (c crashAfterPublish) Publish(ctx context.Context, events ...schemas.Event) ([]publisher.Result, error) {
	res, err := c.pub.Publish(ctx, events...)
	c.store.Close()
	return res, err
}

// openBureauOn opens a bureau of reg on an existing schema, as a restarted
// process does.
func openBureauOn(t *testing.T, schema, reg string) bureau {
	t.Helper()
	store, err := OpenStore(context.Background(), testenv.PostgresURL(), schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	h, err := NewHandler(store, reg, noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	return bureau{store: store, handler: h}
}

// TestCompletionRetriedAfterACrash: a clerk completes a stop_benefits task;
// the termination reaches Kafka, but the bureau crashes before marking the
// task done. Whatever the hub announces before the clerk completes the
// task again, the retry re-sends the termination the hub already holds,
// and the task reports the date the hub ends the insurances on: the
// bureau and the hub agree, and a different date announced since is the
// task's corrected date of death, for the bureau to review.
func TestCompletionRetriedAfterACrash(t *testing.T) {
	tests := []struct {
		name string
		// between are the notifications the restarted bureau receives
		// before the retry.
		between       func(first schemas.Notification) []schemas.Notification
		wantCorrected string
		wantReactive  bool
	}{
		{name: "nothing announced in between", between: func(schemas.Notification) []schemas.Notification { return nil }},
		{name: "a corrected date of death in between", wantCorrected: "2024-11-13",
			between: func(first schemas.Notification) []schemas.Notification {
				return []schemas.Notification{sdktest.Death("death-2", first.CitizenID, 4, "2024-11-13")}
			}},
		// The termination is at the hub already: the task is done and
		// flagged, not left cancelled as if nothing had been sent.
		{name: "the person active again in between", wantReactive: true,
			between: func(first schemas.Notification) []schemas.Notification {
				now := time.Now().UTC()
				return []schemas.Notification{{ChangeID: "restore", CitizenID: first.CitizenID, Version: 4, Section: string(schemas.SecStatus),
					EventID: "ev-restore", EventType: schemas.HukouRegistered, Source: schemas.PublicSecurity, Time: now, AppliedAt: now}}
			}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			schema := testenv.Schema(t)
			id := sdktest.CitizenID(700 + i)
			first := openBureauOn(t, schema, "2301")
			death := sdktest.Death("death-1", id, 3, "2024-11-15")
			first.deliverDeath(t, death, daoli)
			task := first.task(t, id, "death-1", StopBenefits)

			pub := &hubPublisher{t: t}
			if _, err := Complete(ctx, first.store, crashAfterPublish{pub: pub, store: first.store}, task.ID); err == nil {
				t.Fatal("completion succeeded with the store closed after publishing")
			}
			if len(pub.inputs) != 1 {
				t.Fatalf("%d events published before the crash, want 1", len(pub.inputs))
			}

			restarted := openBureauOn(t, schema, "2301")
			for _, n := range tt.between(death) {
				restarted.deliverDeath(t, n, daoli)
			}
			done, err := Complete(ctx, restarted.store, pub, task.ID)
			if err != nil {
				t.Fatalf("completing again after the crash: %v", err)
			}
			if done.Status != StatusDone || done.CorrectedDateOfDeath != tt.wantCorrected || done.ReactivatedAt.IsZero() == tt.wantReactive {
				t.Errorf("task after the retry: status %s, corrected %q, reactivated at %v; want done, corrected %q, reactivated %v",
					done.Status, done.CorrectedDateOfDeath, done.ReactivatedAt, tt.wantCorrected, tt.wantReactive)
			}
			if len(pub.inputs) != 2 || pub.inputs[0].Event.ID != pub.inputs[1].Event.ID {
				t.Fatalf("%d events published, want the first completion's sent twice", len(pub.inputs))
			}
			inputs := append([]hub.Input{
				hubEvent(t, schemas.InsuranceEnrolled, id, "si-1", "2015-06-26T09:00:00+08:00",
					map[string]any{"scheme": "resident", "insurances": []string{"pension", "medical"}, "region": "230102", "start": "2015-06-26"}),
				hubEvent(t, schemas.DeathCertified, id, "h-1", "2024-11-15T08:00:00+08:00", map[string]any{"date_of_death": "2024-11-15", "certificate_no": "D1"}),
			}, pub.inputs...)
			r := applyInArrivalOrder(t, id, inputs)
			if r.SocialInsurance == nil {
				t.Fatal("no social insurance on the record")
			}
			if got := r.SocialInsurance.Insurances["pension"].Until; got != done.DateOfDeath {
				t.Errorf("the hub ends the pension on %q, the bureau's task reports %q", got, done.DateOfDeath)
			}
		})
	}
}

// failingPublisher refuses every publication with err, before anything
// reaches Kafka.
type failingPublisher struct{ err error }

func (f failingPublisher) Publish(context.Context, ...schemas.Event) ([]publisher.Result, error) {
	return nil, f.err
}

// TestCompletionThatSentNothing: a completion whose publication certainly
// failed (no broker could be reached, or the publisher refused the event)
// leaves nothing in flight. A task a reactivation cancelled meanwhile is
// refused, not completed with a termination for a living person, and a
// date of death corrected meanwhile is the one the next completion sends.
// A failure that may have delivered the event (a timeout) keeps it in
// flight, as TestCompletionRetriedAfterACrash requires.
func TestCompletionThatSentNothing(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for i, tc := range []struct {
		name     string
		err      error
		inFlight bool // the failure may have delivered the event
	}{
		{"no broker reachable", fmt.Errorf("sending 1 events: %w", dial), false},
		{"refused by the publisher", &schemas.RejectError{Reason: schemas.ReasonInvalidData, Field: "data.end"}, false},
		{"topic missing", &publisher.TopicMissingError{Topic: "pop.events.social_insurance"}, false},
		{"timed out during the write", fmt.Errorf("sending 1 events: %w", context.DeadlineExceeded), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := openBureauOn(t, testenv.Schema(t), "2301")

			// Corrected date: the next completion sends it, unless the
			// failed one may have reached the hub.
			id := sdktest.CitizenID(800 + 2*i)
			b.deliverDeath(t, sdktest.Death("death-1", id, 3, "2024-11-15"), daoli)
			task := b.task(t, id, "death-1", StopBenefits)
			if _, err := Complete(ctx, b.store, failingPublisher{tc.err}, task.ID); err == nil {
				t.Fatal("the completion succeeded though its publication failed")
			}
			b.deliverDeath(t, sdktest.Death("death-2", id, 4, "2024-11-13"), daoli)
			pub := &hubPublisher{t: t}
			done, err := Complete(ctx, b.store, pub, task.ID)
			if err != nil || len(pub.inputs) != 1 {
				t.Fatalf("completing again: %v, %d events", err, len(pub.inputs))
			}
			wantEnd := map[bool]string{false: "2024-11-13", true: "2024-11-15"}[tc.inFlight]
			if end := pub.inputs[0].Event.Payload.(*schemas.InsuranceTerminatedData).End; end != wantEnd || done.DateOfDeath != wantEnd {
				t.Errorf("the termination ends %s and the task reports %s, want %s", end, done.DateOfDeath, wantEnd)
			}

			// Reactivated: a task the failed completion never reported
			// is refused.
			id = sdktest.CitizenID(801 + 2*i)
			b.deliverDeath(t, sdktest.Death("death-3", id, 3, "2024-11-15"), daoli)
			task = b.task(t, id, "death-3", StopBenefits)
			if _, err := Complete(ctx, b.store, failingPublisher{tc.err}, task.ID); err == nil {
				t.Fatal("the completion succeeded though its publication failed")
			}
			now := time.Now().UTC()
			b.deliverDeath(t, schemas.Notification{ChangeID: "restore", CitizenID: id, Version: 4, Section: string(schemas.SecStatus),
				EventID: "ev-restore", EventType: schemas.HukouRegistered, Source: schemas.PublicSecurity, Time: now, AppliedAt: now}, daoli)
			pub = &hubPublisher{t: t}
			_, err = Complete(ctx, b.store, pub, task.ID)
			if tc.inFlight != (err == nil) || !tc.inFlight && !errors.Is(err, ErrTaskCancelled) {
				t.Errorf("completing the reactivated task: %v, %d events; want ErrTaskCancelled unless the failed completion may have delivered", err, len(pub.inputs))
			}
		})
	}
}
