package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

// TestEndDateCitesTheEndEvent: a contract or lease ended early by its own
// end event (employment.contract_ended, housing.rental_ended) is shown
// "until <end>", but the fact cites only the start event, whose data has
// no such end (or another one): the appeal cannot trace the end day the
// answer used to the department record that set it.
func TestEndDateCitesTheEndEvent(t *testing.T) {
	contractEnded := eligibility.CaseEvent{Type: schemas.ContractEnded, Time: "2025-02-20",
		Data: map[string]any{"contract_id": "C1", "end": "2025-02-20", "reason": "resigned"}}
	tests := []struct {
		name   string
		policy string
		asOf   string
		events []eligibility.CaseEvent
		cond   string
		end    schemas.Type
		text   string // the fact showing the end
	}{
		{"a contract ended early, as of its last day", "heilongjiang/daqing", "2025-02-20",
			evs(contract("C1", "230602", "2024-01-01", "2026-12-31"), contractEnded, lease("L1", daqingAddr, "2023-01-01", ""),
				contrib("230602", "2023-01..2025-01", "pension")),
			"contract", schemas.ContractEnded, "until 2025-02-20"},
		{"a lease ended early, as of its last day", "residence-permit/heilongjiang", "2024-09-30",
			evs(lease("L1", daqingAddr, "2024-01-01", "2025-12-31"), leaseEnded("L1", "2024-09-30")),
			"living", schemas.RentalEnded, "until 2024-09-30"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := eligibility.Case{Name: tc.name, AsOf: tc.asOf, Person: outsider, Events: tc.events}
			subj, _, err := c.Build()
			if err != nil {
				t.Fatal(err)
			}
			endID := ""
			for _, ch := range subj.History {
				if ch.Type == tc.end {
					endID = ch.EventID
				}
			}
			d := eligibility.RunCase(policy(t, tc.policy), c).Decision
			var shown []eligibility.Fact
			for _, cr := range d.Conditions {
				if cr.ID != tc.cond {
					continue
				}
				for _, f := range cr.Facts {
					if strings.Contains(f.Text, tc.text) {
						shown = append(shown, f)
					}
				}
			}
			if len(shown) == 0 {
				t.Fatalf("premise: no fact %q in %+v", tc.text, d.Conditions)
			}
			for _, f := range shown {
				if f.EventID != endID {
					t.Errorf("fact %q cites event %s (the start); the end day comes from %s (%s)", f.Text, f.EventID, endID, tc.end)
				}
			}
		})
	}
}
