package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

// TestRegistrationAfterADeathRestores: a registration stamped after a
// death certificate (a death certified in error, the hukou restored)
// makes the person active again, as the merge derives the status, so a
// decision neither refuses the person as deceased nor says a day is not
// reached; a death certified after the restoration ends it again, from
// its own date, not the first certificate's.
func TestRegistrationAfterADeathRestores(t *testing.T) {
	p := policy(t, "residence-permit/heilongjiang")
	rental := eligibility.CaseEvent{Type: schemas.RentalRegistered, Time: "2025-12-01",
		Data: map[string]any{"lease_id": "L1", "address_code": "230602013001", "start": "2025-12-01"}}
	death := func(at, date string) eligibility.CaseEvent {
		return eligibility.CaseEvent{Type: schemas.DeathCertified, Time: at,
			Data: map[string]any{"date_of_death": date, "certificate_no": "D-" + at}}
	}
	restored := eligibility.CaseEvent{Type: schemas.HukouRegistered, Time: "2025-08-01",
		Data: map[string]any{"name": "张三", "gender": "1", "birth_date": "1990-01-01", "ethnicity": "01",
			"address_code": "230102001001", "household_id": "H230102000001", "reason": "restored"}}
	tests := []struct {
		name        string
		events      []eligibility.CaseEvent
		asOf        string
		status      string // the merged record's
		qualifiesOn string
		deceased    bool // the decision refuses the person as deceased then
		notReached  bool // a missing text says the day is not reached
	}{
		{"restored after a death certified in error", []eligibility.CaseEvent{rental, death("2025-06-01", "2025-06-01"), restored},
			"2026-03-01", "active", "2026-05-31", false, false},
		// As of a day between the two, the person was deceased then.
		{"as of a day before the restoration", []eligibility.CaseEvent{rental, death("2025-06-01", "2025-06-01"), restored},
			"2025-07-01", "active", "none", true, false},
		// The later death does not undo the earlier one before the
		// restoration: deaths are told apart by the registrations between.
		{"died again after the restoration, as of a day of the first death", []eligibility.CaseEvent{rental, death("2025-06-01", "2025-06-01"), restored, death("2026-04-10", "2026-04-05")},
			"2025-07-01", "deceased", "none", true, false},
		{"died again after the restoration, as of a day before", []eligibility.CaseEvent{rental, death("2025-06-01", "2025-06-01"), restored, death("2026-04-10", "2026-04-05")},
			"2026-01-15", "deceased", "none", false, true},
		{"died again after the restoration, as of a day after", []eligibility.CaseEvent{rental, death("2025-06-01", "2025-06-01"), restored, death("2026-04-10", "2026-04-05")},
			"2026-04-06", "deceased", "none", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := eligibility.Case{Name: tc.name, AsOf: tc.asOf,
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "230102001001"},
				Events: tc.events,
				Expect: eligibility.CaseExpect{Eligible: false, QualifiesOn: tc.qualifiesOn}}
			subj, _, err := c.Build()
			if err != nil {
				t.Fatal(err)
			}
			if string(subj.Record.Status) != tc.status {
				t.Fatalf("premise: the merged record's status is %q, want %q", subj.Record.Status, tc.status)
			}
			r := eligibility.RunCase(p, c)
			if !r.Passed {
				t.Errorf("%v", r.Problems)
			}
			var deceased, notReached bool
			for _, cond := range r.Decision.Conditions {
				deceased = deceased || cond.ID == "status"
				notReached = notReached || strings.Contains(cond.Missing, "not reached")
			}
			if deceased != tc.deceased || notReached != tc.notReached {
				t.Errorf("refused as deceased %v, a day not reached %v; want %v, %v: %+v", deceased, notReached, tc.deceased, tc.notReached, r.Decision.Conditions)
			}
		})
	}
}

// TestDeathCancellationOutlivesAnotherCancellation: a hukou cancelled for
// death stays deceased until a registration restores it, whatever other
// cancellation follows (hub/merge, deathInForce); a decision as of a day
// after both says so too, for the applicant and for a spouse.
func TestDeathCancellationOutlivesAnotherCancellation(t *testing.T) {
	p := policy(t, "residence-permit/heilongjiang")
	cancel := func(at, reason string) eligibility.CaseEvent {
		return eligibility.CaseEvent{Type: schemas.HukouCancelled, Time: at, Data: map[string]any{"reason": reason}}
	}
	tests := []struct {
		name   string
		events []eligibility.CaseEvent
	}{
		{"death, then emigration", []eligibility.CaseEvent{cancel("2025-06-01", "death"), cancel("2025-07-01", "emigration")}},
		{"death, then other", []eligibility.CaseEvent{cancel("2025-06-01", "death"), cancel("2025-06-02", "other")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := eligibility.Case{Name: tc.name, AsOf: "2026-01-01",
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "230102001001"},
				Events: tc.events}
			subj, _, err := c.Build()
			if err != nil {
				t.Fatal(err)
			}
			if subj.Record.Status != hub.StatusDeceased {
				t.Fatalf("premise: the merged record's status is %q, want deceased", subj.Record.Status)
			}
			r := eligibility.RunCase(p, c)
			var got string
			for _, cond := range r.Decision.Conditions {
				if cond.ID == "status" && len(cond.Facts) > 0 {
					got = cond.Facts[0].Text
				}
			}
			if !strings.HasPrefix(got, "status "+hub.StatusDeceased) {
				t.Errorf("decision's status fact = %q, want %q… (the record's)", got, "status "+hub.StatusDeceased)
			}
		})
	}
}
