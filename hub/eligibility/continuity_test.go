package eligibility_test

import (
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

func contractIn230602(id, start, end string) eligibility.CaseEvent {
	d := map[string]any{"contract_id": id, "employer_id": "91230100MA1234567X", "employer_name": "示例公司", "work_region": "230602", "start": start}
	if end != "" {
		d["end"] = end
	}
	return eligibility.CaseEvent{Type: schemas.ContractStarted, Time: start, Data: d}
}

// TestBreakOfUpToACalendarMonth: contracts one after another count as one
// stretch of living across a break of up to a month, counted as the
// policies count months (calendar months from the break's first day), not
// 31 days whatever the month: a break of all February is one, a break
// into March is not.
func TestBreakOfUpToACalendarMonth(t *testing.T) {
	p := policy(t, "residence-permit/heilongjiang")
	tests := []struct {
		name, end, next string
		continuous      bool
	}{
		{"no break", "2026-01-31", "2026-02-01", true},
		{"a break of February", "2026-01-31", "2026-03-01", true},
		{"a break of February and a day", "2026-01-31", "2026-03-02", false},
		{"a break of February and three days", "2026-01-31", "2026-03-04", false},
		{"a break of April", "2026-03-31", "2026-05-01", true},
		{"a break of April and a day", "2026-03-31", "2026-05-02", false},
		{"a break from 10 January to 9 February", "2026-01-09", "2026-02-10", true},
		{"a break from 10 January to 10 February", "2026-01-09", "2026-02-11", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := eligibility.RunCase(p, eligibility.Case{
				Name: tc.name, AsOf: "2026-06-30",
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "230102001001"},
				Events: []eligibility.CaseEvent{contractIn230602("C1", "2026-01-01", tc.end), contractIn230602("C2", tc.next, "")},
				Expect: eligibility.CaseExpect{Eligible: tc.continuous, Conditions: map[string]bool{"living": tc.continuous}},
			})
			if !r.Passed {
				t.Errorf("%v", r.Problems)
			}
		})
	}
}

// TestNoDayAfterADeathInAPastDecision: a decision as of a past day gives
// no day on or after a death the hub already holds, neither as
// qualifies_on nor in a condition's missing text; the text says the day
// is not reached instead.
func TestNoDayAfterADeathInAPastDecision(t *testing.T) {
	p := policy(t, "residence-permit/heilongjiang")
	rental := eligibility.CaseEvent{Type: schemas.RentalRegistered, Time: "2025-12-01",
		Data: map[string]any{"lease_id": "L1", "address_code": "230602013001", "start": "2025-12-01"}}
	death := eligibility.CaseEvent{Type: schemas.DeathCertified, Time: "2026-04-01",
		Data: map[string]any{"date_of_death": "2026-04-01", "certificate_no": "D1"}}
	tests := []struct {
		name        string
		events      []eligibility.CaseEvent
		qualifiesOn string
		missing     string
	}{
		{"alive", []eligibility.CaseEvent{rental}, "2026-05-31",
			"3 more months of living (home, job or school) in 大庆市市区, due 2026-05-31"},
		{"died before the six months were full", []eligibility.CaseEvent{rental, death}, "none",
			"3 more months of living (home, job or school) in 大庆市市区, not reached: the person's status is deceased by then"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := eligibility.RunCase(p, eligibility.Case{
				Name: tc.name, AsOf: "2026-03-01",
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "230102001001"},
				Events: tc.events,
				Expect: eligibility.CaseExpect{Eligible: false, QualifiesOn: tc.qualifiesOn},
			})
			if !r.Passed {
				t.Fatalf("%v", r.Problems)
			}
			var found bool
			for _, c := range r.Decision.Conditions {
				if c.ID == "living" {
					found = true
					if c.Missing != tc.missing {
						t.Errorf("living: missing %q, want %q", c.Missing, tc.missing)
					}
				}
			}
			if !found {
				t.Errorf("no living condition in %+v", r.Decision.Conditions)
			}
		})
	}
}
