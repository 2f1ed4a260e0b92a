package socialinsurance

import (
	"cmp"
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestMoveOutBeforeTheDeathLeavesStopBenefitsToTheNewCounty: a 方正县
// (230124) resident dies on 2026-04-20 (certified 2026-04-25). A move to
// 道里区 (230102) that took effect before the death may reach the hub
// after the certificate; the hub then announces the death again under
// 道里区, whose bureau stops the benefits. One insurance relationship is
// held in one place, so 方正县's bureau must not terminate it too: its
// open stop_benefits task is cancelled (not completable), a done one
// flagged for review. A move after the death leaves the task alone, and
// a move back before the death gives the task back. Each bureau ends the
// same whether it handles the move or the death first (consumers per
// filter), and the same notifications again change nothing.
func TestMoveOutBeforeTheDeathLeavesStopBenefitsToTheNewCounty(t *testing.T) {
	const (
		fangzheng = "230124100013"
		daoliAddr = "230102001001"
	)
	// outcome is a bureau's stop_benefits task: its status ("" for no
	// task) and whether it is flagged as moved out before the death.
	type outcome struct {
		status   string
		movedOut bool
	}
	tests := []struct {
		name string
		// steps are events applied at the hub in arrival order, or
		// "complete": 方正县's bureau completes its open stop_benefits task.
		steps     []string
		fangzheng outcome
		daoli     outcome
		// dates are a bureau's task's date of death where it is not
		// 2026-04-20.
		dates map[string]string
	}{
		{name: "move before the death arrives after it", steps: []string{"death", "move-march"},
			fangzheng: outcome{StatusCancelled, true}, daoli: outcome{StatusOpen, false}},
		{name: "move before the death arrives first", steps: []string{"move-march", "death"},
			daoli: outcome{StatusOpen, false}},
		{name: "completed before the move arrived", steps: []string{"death", "complete", "move-march"},
			fangzheng: outcome{StatusDone, true}, daoli: outcome{StatusOpen, false}},
		{name: "move on the day of the death", steps: []string{"death", "move-that-day"},
			fangzheng: outcome{StatusCancelled, true}, daoli: outcome{StatusOpen, false}},
		{name: "move after the death", steps: []string{"death", "move-may"},
			fangzheng: outcome{StatusOpen, false}},
		// Stamped at the certificate's very time: the hub orders changes of
		// one time by source, and public_security's move is after health's
		// certificate, so it leaves the death in 方正县.
		{name: "move at the certificate's time", steps: []string{"death", "move-at-death"},
			fangzheng: outcome{StatusOpen, false}},
		// Against a cancellation for death of the same time, both public
		// security's, the event ids decide: "a-move" sorts before "cancel"
		// (the move is before the death, which the hub announces again in
		// 道里区), "move-at-death" after it.
		{name: "move before a cancellation of the same time", steps: []string{"cancel", "a-move-at-death"},
			fangzheng: outcome{StatusCancelled, true}, daoli: outcome{StatusOpen, false},
			dates: map[string]string{"230124": "2026-04-25", "230102": "2026-04-25"}},
		{name: "move after a cancellation of the same time", steps: []string{"cancel", "move-at-death"},
			fangzheng: outcome{StatusOpen, false}, dates: map[string]string{"230124": "2026-04-25"}},
		// A corrected certificate (2026-04-21, certified 05-10) after the
		// completion: the hub's death is the correction, so a move on 05-01
		// is before it and the hub announces the death in 道里区; 方正县's
		// done task, which keeps the date its completion reported, is
		// flagged for review, whether the bureau hears of the correction
		// or the move first.
		{name: "completed, corrected, then a move before the correction", steps: []string{"death", "complete", "correction", "move-may"},
			fangzheng: outcome{StatusDone, true}, daoli: outcome{StatusOpen, false}, dates: map[string]string{"230102": "2026-04-21"}},
		// Back in 方正县 on 04-01: the death is 方正县's again, and 道里区's
		// task (from the re-announcement) is the one left to the other.
		{name: "moved back before the death", steps: []string{"death", "move-march", "back-april"},
			fangzheng: outcome{StatusOpen, false}, daoli: outcome{StatusCancelled, true}},
		// The hub then never moves the death: 道里区 hears of none.
		{name: "moved back before the death, arriving first", steps: []string{"death", "back-april", "move-march"},
			fangzheng: outcome{StatusOpen, false}},
	}
	for i, tt := range tests {
		for _, order := range []string{"in order", "moves first"} {
			t.Run(tt.name+"/"+order, func(t *testing.T) {
				ctx := context.Background()
				id := sdktest.CitizenID(980 + i)
				bureaus := map[string]bureau{"230124": openBureau(t, "230124"), "230102": openBureau(t, "230102")}
				migrated := func(name, at, from, to string) hub.Input {
					return hubEvent(t, schemas.HukouMigrated, id, name, at, schemas.HukouMigratedData{FromAddressCode: from, ToAddressCode: to, Reason: "housing"})
				}
				events := map[string]hub.Input{
					"death": hubEvent(t, schemas.DeathCertified, id, "death", "2026-04-25T09:00:00+08:00",
						schemas.DeathCertifiedData{DateOfDeath: "2026-04-20", CertificateNo: "D8"}),
					"move-march":      migrated("move-march", "2026-03-01T09:00:00+08:00", fangzheng, daoliAddr),
					"move-that-day":   migrated("move-that-day", "2026-04-20T08:00:00+08:00", fangzheng, daoliAddr),
					"move-may":        migrated("move-may", "2026-05-01T09:00:00+08:00", fangzheng, daoliAddr),
					"back-april":      migrated("back-april", "2026-04-01T09:00:00+08:00", daoliAddr, fangzheng),
					"move-at-death":   migrated("move-at-death", "2026-04-25T09:00:00+08:00", fangzheng, daoliAddr),
					"a-move-at-death": migrated("a-move", "2026-04-25T09:00:00+08:00", fangzheng, daoliAddr),
					"cancel": hubEvent(t, schemas.HukouCancelled, id, "cancel", "2026-04-25T09:00:00+08:00",
						schemas.HukouCancelledData{Reason: "death"}),
					"correction": hubEvent(t, schemas.DeathCertified, id, "correction", "2026-05-10T09:00:00+08:00",
						schemas.DeathCertifiedData{DateOfDeath: "2026-04-21", CertificateNo: "D8"}),
				}
				h := newHubSim(t)
				h.apply(hubEvent(t, schemas.HukouRegistered, id, "reg", "2020-01-01T09:00:00+08:00", schemas.HukouRegisteredData{
					Name: "王伟", Gender: "1", BirthDate: "1980-01-01", Ethnicity: "01", AddressCode: fangzheng, HouseholdID: "H8", Reason: "birth"}))

				delivered := map[string][]hub.OutboxEntry{}
				deliver := func(reg string, entries []hub.OutboxEntry) {
					entries = subscribed(Filters(reg), entries)
					if order == "moves first" {
						// Separate consumers may hand the bureau the migrations
						// before the deaths (of those announced since the last
						// completion: completing needs the death handled).
						slices.SortStableFunc(entries, func(a, b hub.OutboxEntry) int {
							return boolCmp(!strings.HasPrefix(a.Subject, "pop.migration."), !strings.HasPrefix(b.Subject, "pop.migration."))
						})
					}
					bureaus[reg].deliverEntries(t, entries)
					delivered[reg] = append(delivered[reg], entries...)
				}
				pub := &hubPublisher{t: t}
				var pending []hub.OutboxEntry
				for _, step := range tt.steps {
					if step != "complete" {
						pending = append(pending, h.apply(events[step])...)
						if order == "in order" {
							for reg := range bureaus {
								deliver(reg, pending)
							}
							pending = nil
						}
						continue
					}
					for reg := range bureaus {
						deliver(reg, pending)
					}
					pending = nil
					task := stopBenefits(t, bureaus["230124"], id)
					if _, err := Complete(ctx, bureaus["230124"].store, pub, task.ID); err != nil {
						t.Fatal(err)
					}
				}
				for reg := range bureaus {
					deliver(reg, pending)
				}

				for reg, want := range map[string]outcome{"230124": tt.fangzheng, "230102": tt.daoli} {
					b := bureaus[reg]
					task := stopBenefits(t, b, id)
					got := outcome{task.Status, !task.MovedOutAt.IsZero()}
					if got != want {
						t.Errorf("%s's stop_benefits task: %+v (%+v), want %+v", reg, got, task, want)
					}
					if task.Status == "" {
						continue
					}
					wantDate := cmp.Or(tt.dates[reg], "2026-04-20")
					if task.DateOfDeath != wantDate {
						t.Errorf("%s's task: date of death %s, want %s", reg, task.DateOfDeath, wantDate)
					}
					if (task.Status == StatusCancelled) != (task.CancelReason != "") {
						t.Errorf("%s's task: status %s with cancel reason %q", reg, task.Status, task.CancelReason)
					}
					if task.Status == StatusCancelled {
						other := "230102"
						if reg == other {
							other = "230124"
						}
						if !strings.Contains(task.CancelReason, other) {
							t.Errorf("%s's cancel reason %q does not name %s", reg, task.CancelReason, other)
						}
						sent := len(pub.inputs)
						if _, err := Complete(ctx, b.store, pub, task.ID); !errors.Is(err, ErrTaskCancelled) {
							t.Errorf("completing %s's cancelled task: %v, want ErrTaskCancelled", reg, err)
						}
						if len(pub.inputs) != sent {
							t.Errorf("completing %s's cancelled task published an event", reg)
						}
					}
					listed, err := b.store.Tasks(ctx, TaskFilter{MovedOut: true})
					if err != nil {
						t.Fatal(err)
					}
					if got := len(listed) == 1 && listed[0].ID == task.ID; got != want.movedOut {
						t.Errorf("%s lists the task as moved out: %v, want %v", reg, got, want.movedOut)
					}
				}

				// The same notifications again, in the same order: nothing changes.
				for reg, b := range bureaus {
					before, err := b.store.Tasks(ctx, TaskFilter{CitizenID: id})
					if err != nil {
						t.Fatal(err)
					}
					b.deliverEntries(t, delivered[reg])
					after, err := b.store.Tasks(ctx, TaskFilter{CitizenID: id})
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(after, before) {
						t.Errorf("redelivery changed %s's tasks:\n%+v\nto\n%+v", reg, before, after)
					}
				}
			})
		}
	}
}

// stopBenefits is the bureau's stop_benefits task of the person, the zero
// Task when there is none.
func stopBenefits(t *testing.T, b bureau, id citizenid.ID) Task {
	t.Helper()
	tasks, err := b.store.Tasks(context.Background(), TaskFilter{CitizenID: id})
	if err != nil {
		t.Fatal(err)
	}
	var found []Task
	for _, task := range tasks {
		if task.Kind == StopBenefits {
			found = append(found, task)
		}
	}
	switch len(found) {
	case 0:
		return Task{}
	case 1:
		return found[0]
	}
	t.Fatalf("%d stop_benefits tasks of one person: %+v", len(found), found)
	return Task{}
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// TestOrderKeyOrdersAsTheHub: at equal times, keys compare byte by byte
// as merge.Stamp.After orders events: by source, then an id of the
// versioned form after any other, then by id.
func TestOrderKeyOrdersAsTheHub(t *testing.T) {
	at := time.Date(2026, 4, 25, 9, 0, 0, 0, schemas.CST())
	versioned := publisher.EventID(schemas.PublicSecurity, "move", 1)
	events := []struct {
		src schemas.Source
		id  string
	}{
		{schemas.Health, "death"},
		{schemas.Health, "zz"},
		{schemas.PublicSecurity, "a-move"},
		{schemas.PublicSecurity, "cancel"},
		{schemas.PublicSecurity, "zzzz-unversioned"},
		{schemas.PublicSecurity, versioned},
		{schemas.PublicSecurity, publisher.EventID(schemas.PublicSecurity, "cancel", 2)},
		{schemas.SocialInsurance, "a"},
		{schemas.Source("public"), "z"}, // a source that is a prefix of another
	}
	for _, a := range events {
		for _, b := range events {
			hub := merge.Stamp{T: at, Src: a.src, ID: a.id}.After(merge.Stamp{T: at, Src: b.src, ID: b.id})
			if got := orderKey(a.src, a.id) > orderKey(b.src, b.id); got != hub {
				t.Errorf("%s %s after %s %s: key says %v, the hub %v", a.src, a.id, b.src, b.id, got, hub)
			}
		}
	}
}
