package merge

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestDeathAnnouncedWhereTheHukouWasAtDeath checks that a death is
// announced in the county of the hukou at the death, in the hub's order of
// changes, whatever order the moves and the death arrive in: a 方正县
// (230124) resident moves to 道里区 (230102) in March, dies on 04-20
// (certified 04-25) and moves back on 06-01. The social-insurance
// subscriber of 方正县 cancels its task for the move out before the death
// in every arrival order, so 道里区 must hear of the death in every one,
// and last.
func TestDeathAnnouncedWhereTheHukouWasAtDeath(t *testing.T) {
	p := id(t, male)
	const fangzheng, daoli = "230124100013", "230102001001"
	const atDeath = "pop.death.23.2301.230102"
	moved := func(eventID, at, from, to string) hub.Input {
		return ev(t, schemas.HukouMigrated, p, eventID, at, map[string]any{
			"from_address_code": from, "to_address_code": to, "reason": "housing"})
	}
	reg := registered(t, p, "ps-1", "2020-01-01T09:00:00+08:00", fangzheng, "1", "1980-01-01")
	before := moved("ps-2", "2026-03-01T09:00:00+08:00", fangzheng, daoli)
	cert := ev(t, schemas.DeathCertified, p, "h-1", "2026-04-25T09:00:00+08:00", map[string]any{"date_of_death": "2026-04-20", "certificate_no": "D8"})
	back := moved("ps-3", "2026-06-01T09:00:00+08:00", daoli, fangzheng)
	for _, order := range permutations([]hub.Input{reg, before, cert, back}) {
		ids := make([]string, len(order))
		for i, in := range order {
			ids[i] = in.Event.ID
		}
		for how, batches := range map[string][][]hub.Input{"one by one": oneByOne(order), "in one batch": {order}} {
			name := strings.Join(ids, ", ") + " " + how
			_, outs := run(batches...)
			got := deaths(t, outs)
			if len(got) == 0 {
				t.Errorf("%s: death never announced", name)
				continue
			}
			if last := got[len(got)-1].Subject; last != atDeath {
				t.Errorf("%s: death announced on %v, last in %s; want last in %s, where the hukou was at the death", name, got, last, atDeath)
			}
		}
	}

	// The simple cases keep today's announcements.
	after := moved("ps-4", "2026-06-01T09:00:00+08:00", fangzheng, daoli)
	within := moved("ps-5", "2026-03-01T09:00:00+08:00", fangzheng, "230124100014")
	// A certificate at 04-21 and a correction at 04-25 (same date of
	// death) around a move on 04-22: the correction puts the move before
	// the death, in the hub's order.
	early := ev(t, schemas.DeathCertified, p, "h-2", "2026-04-21T09:00:00+08:00", map[string]any{"date_of_death": "2026-04-20", "certificate_no": "D7"})
	between := moved("ps-6", "2026-04-22T09:00:00+08:00", fangzheng, daoli)
	const home = "pop.death.23.2301.230124"
	tests := []struct {
		name   string
		events []hub.Input
		want   []string
	}{
		{name: "no move", events: []hub.Input{reg, cert}, want: []string{home}},
		{name: "move after the death, arriving after it", events: []hub.Input{reg, cert, after}, want: []string{home}},
		{name: "move after the death, arriving before it", events: []hub.Input{reg, after, cert}, want: []string{home}},
		{name: "move before the death, arriving after it", events: []hub.Input{reg, cert, before}, want: []string{home, atDeath}},
		{name: "move before the death, arriving before it", events: []hub.Input{reg, before, cert}, want: []string{atDeath}},
		{name: "move within the county before the death, arriving after it", events: []hub.Input{reg, cert, within}, want: []string{home}},
		{name: "registration after the death", events: []hub.Input{cert, reg}, want: []string{"pop.death.00.0000.000000", home}},
		{name: "a later certificate puts a move before the death", events: []hub.Input{reg, early, between, cert}, want: []string{home, atDeath}},
		{name: "a later certificate arriving before the move", events: []hub.Input{reg, early, cert, between}, want: []string{home, atDeath}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var batches [][]hub.Input
			for _, e := range tc.events {
				batches = append(batches, []hub.Input{e})
			}
			_, outs := run(batches...)
			var got []string
			for _, d := range deaths(t, outs) {
				got = append(got, d.Subject)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("death announced on %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRestorationAnnouncedWhereTheDeathWas checks where a death ended (a
// hukou restored) is announced. The status change goes to the county of
// the hukou after it, and also to the county where the death was
// announced when that is another one: the social-insurance bureau there
// opened a stop_benefits task from the death and must hear that the
// person is active again. The second announcement is the same
// notification under a change id of its own (a shared Nats-Msg-Id would
// be dropped by JetStream), derived from the event alone.
func TestRestorationAnnouncedWhereTheDeathWas(t *testing.T) {
	p := id(t, male)
	const fangzheng, fangzheng2, daoli = "230124100013", "230124100014", "230102001001"
	const (
		inFangzheng = "pop.changed.23.2301.230124.status"
		inDaoli     = "pop.changed.23.2301.230102.status"
	)
	reg := registered(t, p, "ps-1", "2020-01-01T09:00:00+08:00", fangzheng, "1", "1990-01-01")
	cancelled := ev(t, schemas.HukouCancelled, p, "ps-2", "2025-03-01T09:00:00+08:00", map[string]any{"reason": "death"})
	cert := ev(t, schemas.DeathCertified, p, "h-1", "2025-03-01T09:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D8"})
	moved := ev(t, schemas.HukouMigrated, p, "ps-3", "2024-06-01T09:00:00+08:00", map[string]any{
		"from_address_code": fangzheng, "to_address_code": daoli, "reason": "housing"})
	restored := func(addr string) hub.Input {
		return ev(t, schemas.HukouRegistered, p, "ps-9", "2025-03-10T09:00:00+08:00", map[string]any{"name": "张伟", "gender": "1",
			"birth_date": "1990-01-01", "ethnicity": "01", "address_code": addr, "household_id": "H2", "reason": "restored"})
	}
	tests := []struct {
		name   string
		events []hub.Input // the last one restores the hukou
		// want are the subjects of the restoration's status
		// notifications, the one of the hukou after it first.
		want []string
	}{
		{name: "cancelled for death, restored in another county", events: []hub.Input{reg, cancelled, restored(daoli)},
			want: []string{inDaoli, inFangzheng}},
		{name: "certified dead, restored in another county", events: []hub.Input{reg, cert, restored(daoli)},
			want: []string{inDaoli, inFangzheng}},
		{name: "restored in the county of the death", events: []hub.Input{reg, cancelled, restored(fangzheng2)},
			want: []string{inFangzheng}},
		// The death was announced where the hukou was at it, after a move.
		{name: "moved before the death, restored back home", events: []hub.Input{reg, moved, cert, restored(fangzheng)},
			want: []string{inFangzheng, inDaoli}},
		// Announced under the unknown region, which no bureau follows.
		{name: "death with no address known", events: []hub.Input{cert, restored(daoli)},
			want: []string{inDaoli}},
	}
	for _, tc := range tests {
		for how, batches := range map[string][][]hub.Input{"one by one": oneByOne(tc.events), "in one batch": {tc.events}} {
			t.Run(tc.name+" "+how, func(t *testing.T) {
				states, outs := run(batches...)
				if s := states[p].Status(); s != hub.StatusActive {
					t.Fatalf("status %s, want active", s)
				}
				last := outs[len(outs)-1]
				ids := map[string]bool{}
				var got []string
				var bodies []schemas.Notification
				for _, e := range last.Outbox {
					if ids[e.MsgID] {
						t.Errorf("msg id %s used twice", e.MsgID)
					}
					ids[e.MsgID] = true
					var n schemas.Notification
					if err := schemas.DecodeNotification(e.Body, &n); err != nil {
						t.Fatal(err)
					}
					if n.ChangeID != e.MsgID {
						t.Errorf("%s: change id %s, msg id %s", e.Subject, n.ChangeID, e.MsgID)
					}
					if n.EventID == "ps-9" && n.Section == string(schemas.SecStatus) {
						got = append(got, e.Subject)
						bodies = append(bodies, n)
					}
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("status announced on %v, want %v", got, tc.want)
				}
				if want := ChangeID(schemas.PublicSecurity, "ps-9", string(schemas.SecStatus)); bodies[0].ChangeID != want {
					t.Errorf("change id %s, want %s", bodies[0].ChangeID, want)
				}
				if len(bodies) == 2 {
					again := bodies[1]
					if want := ChangeID(schemas.PublicSecurity, "ps-9", KindStatusAtDeath); again.ChangeID != want {
						t.Errorf("change id where the death was %s, want %s", again.ChangeID, want)
					}
					again.ChangeID = bodies[0].ChangeID
					if !reflect.DeepEqual(again, bodies[0]) {
						t.Errorf("announced where the death was:\n%+v\nwhere the hukou is:\n%+v", bodies[1], bodies[0])
					}
				}
			})
		}
	}
}
