package eligibility_test

import (
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

// catalogPolicy is the shipped policy id.
func catalogPolicy(t *testing.T, id string) *eligibility.Policy {
	t.Helper()
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := cat.Policy(id)
	if !ok {
		t.Fatalf("no policy %s", id)
	}
	return p
}

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
	p := catalogPolicy(t, "residence-permit/heilongjiang")
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
