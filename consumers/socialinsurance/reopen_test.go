package socialinsurance

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/schemas"
)

// TestSnapshotDeathAfterRestorationReopens: a person died, their hukou was
// restored (the task cancelled), and they died again during a gap. The
// start-over bootstrap finds them deceased while the roster has them
// active: the person's one task is reopened for that death, without a
// date until the death's notification, still to come, brings it.
func TestSnapshotDeathAfterRestorationReopens(t *testing.T) {
	ctx := context.Background()
	b := openBureau(t, "2301")
	id := sdktest.CitizenID(7301)
	if err := b.handler.HandlePerson(ctx, sdk.Person{CitizenID: id, Version: 1, Status: "active", AddressCode: daoli}); err != nil {
		t.Fatal(err)
	}
	b.deliverDeath(t, sdktest.Death("d1.death", id, 2, "2025-03-01"), daoli)
	restored := schemas.Notification{ChangeID: "restore.status", CitizenID: id, Version: 3, Section: string(schemas.SecStatus),
		EventID: "restore", EventType: schemas.HukouRegistered, Source: schemas.PublicSecurity, Time: time.Now().UTC(), AppliedAt: time.Now().UTC()}
	b.deliverDeath(t, restored, daoli)
	if task := stopBenefits(t, b, id); task.Status != StatusCancelled {
		t.Fatalf("after the restoration: %+v, want cancelled", task)
	}
	// The second death is lost in a gap; the start-over bootstrap shows it.
	if err := b.handler.HandlePerson(ctx, sdk.Person{CitizenID: id, Version: 5, Status: "deceased", AddressCode: daoli}); err != nil {
		t.Fatal(err)
	}
	task := stopBenefits(t, b, id)
	if task.Status != StatusOpen || task.DateOfDeath != "" || task.ChangeID != "snapshot."+string(id)+".v5" {
		t.Fatalf("after the snapshot shows the person dead again: task %+v, want it open for that death, without a date", task)
	}
	b.deliverDeath(t, sdktest.Death("d2.death", id, 4, "2026-02-01"), daoli) // the second death's notification
	if task := stopBenefits(t, b, id); task.Status != StatusOpen || task.DateOfDeath != "2026-02-01" {
		t.Errorf("after the second death's notification: task %+v, want open with its date", task)
	}
	b.deliverDeath(t, sdktest.Death("d1.death", id, 2, "2025-03-01"), daoli) // the first one's, redelivered
	if task := stopBenefits(t, b, id); task.DateOfDeath != "2026-02-01" {
		t.Errorf("after the first death's notification again: task %+v, want the second death's date kept", task)
	}
}

// TestReopenedTaskSendsANewEvent: a clerk completes a stop_benefits task
// and the publish times out (it may have reached the hub: the completion
// stays in flight). Before the clerk tries again, the hukou is restored
// (the task cancelled) and the person dies again (the task reopened).
// Completing the reopened task sends a new event ending the insurances on
// the second death's date, not the first completion's event again, which
// the hub would drop as applied while the benefits re-enrolled after the
// restoration went on.
func TestReopenedTaskSendsANewEvent(t *testing.T) {
	ctx := context.Background()
	b := openBureau(t, "2301")
	id := sdktest.CitizenID(7302)
	b.deliverDeath(t, sdktest.Death("death-1", id, 3, "2024-11-15"), daoli)
	task := b.task(t, id, "death-1", StopBenefits)
	timedOut := &timeoutAfterPublish{pub: &hubPublisher{t: t}}
	if _, err := Complete(ctx, b.store, timedOut, task.ID); err == nil {
		t.Fatal("completion succeeded though the publish timed out")
	}
	first := timedOut.pub.inputs[0].Event.ID // reached the hub
	now := time.Now().UTC()
	b.deliverDeath(t, schemas.Notification{ChangeID: "restore", CitizenID: id, Version: 4, Section: string(schemas.SecStatus),
		EventID: "ev-restore", EventType: schemas.HukouRegistered, Source: schemas.PublicSecurity, Time: now, AppliedAt: now}, daoli)
	b.deliverDeath(t, sdktest.Death("death-2", id, 5, "2025-05-01"), daoli)
	if reopened := stopBenefits(t, b, id); reopened.Status != StatusOpen || reopened.DateOfDeath != "2025-05-01" {
		t.Fatalf("after the second death: %+v, want open with 2025-05-01", reopened)
	}
	pub := &hubPublisher{t: t}
	done, err := Complete(ctx, b.store, pub, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	ev := pub.inputs[0].Event
	end := ev.Payload.(*schemas.InsuranceTerminatedData).End
	if ev.ID == first || end != "2025-05-01" {
		t.Errorf("completion of the reopened task sent event %s (the first completion's: %v) ending %s; task now %s date_of_death %s corrected %q: want a new event ending 2025-05-01",
			ev.ID, ev.ID == first, end, done.Status, done.DateOfDeath, done.CorrectedDateOfDeath)
	}
}

// timeoutAfterPublish delivers the event, then reports a timeout: a
// failure that may have delivered it.
type timeoutAfterPublish struct{ pub *hubPublisher }

func (p *timeoutAfterPublish) Publish(ctx context.Context, events ...schemas.Event) ([]publisher.Result, error) {
	if _, err := p.pub.Publish(ctx, events...); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("sending 1 events: %w", context.DeadlineExceeded)
}
