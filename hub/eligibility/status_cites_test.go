package eligibility_test

import (
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

// TestStatusConditionCitesItsEvent: a refusal because the person was
// deceased (or their hukou cancelled) on the day decided must name the
// event it rests on (the death certificate, the cancellation), as every
// other condition's facts do: an appeal ("I was not dead on that day", "the
// certificate was corrected") starts from that event. statusAsOf already
// returns it.
func TestStatusConditionCitesItsEvent(t *testing.T) {
	p := policy(t, "residence-permit/heilongjiang")
	rental := lease("L1", daqingAddr, "2024-01-01", "")
	tests := []struct {
		name   string
		events []eligibility.CaseEvent
		typ    schemas.Type // the event the status rests on
	}{
		{"death certified", []eligibility.CaseEvent{rental, certified("2024-08-01", "2024-07-30")}, schemas.DeathCertified},
		{"hukou cancelled for emigration", []eligibility.CaseEvent{rental, hukouCancelled("2024-08-01", "emigration")}, schemas.HukouCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := eligibility.Case{Name: tc.name, AsOf: "2024-09-01", Person: outsider, Events: tc.events}
			subj, _, err := c.Build()
			if err != nil {
				t.Fatal(err)
			}
			var want string
			for _, ch := range subj.History {
				if ch.Type == tc.typ {
					want = ch.EventID
				}
			}
			if want == "" {
				t.Fatalf("premise: no %s in the history", tc.typ)
			}
			d := eligibility.RunCase(p, c).Decision
			var status *eligibility.ConditionResult
			for i := range d.Conditions {
				if d.Conditions[i].ID == "status" {
					status = &d.Conditions[i]
				}
			}
			if status == nil {
				t.Fatalf("premise: no status condition in %+v", d.Conditions)
			}
			cites := false
			for _, f := range status.Facts {
				cites = cites || f.EventID == want
			}
			if !cites {
				t.Errorf("the status condition's facts %+v cite no event; want event %s (%s)", status.Facts, want, tc.typ)
			}
		})
	}
}
