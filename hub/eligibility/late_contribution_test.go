package eligibility_test

import (
	"encoding/json"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

// TestLateContributionIsCitedInTheAnswer: a contribution for a month the
// count lacked, recorded weeks after a clerk's refusal but effective
// before the day decided, turns "1 more month" into eligible when the day
// is decided again. The answer must cite the events its count rests on, so
// the legal officer can explain the difference; the insurance fact cites
// one event only (the last month's), the same in both answers, and the
// late month's event appears nowhere.
func TestLateContributionIsCitedInTheAnswer(t *testing.T) {
	p := policy(t, "heilongjiang/daqing")
	base := evs(contract("C1", "230602", "2024-01-01", ""), lease("L1", daqingAddr, "2023-01-01", ""),
		contrib("230602", "2023-03..2024-05", "pension"), contrib("230602", "2024-07..2025-02", "pension"))
	late := contrib("230602", "2024-06..2024-06", "pension")
	clerk := eligibility.Case{Name: "as the clerk saw it", AsOf: "2025-03-01", Person: outsider, Events: base}
	appeal := eligibility.Case{Name: "decided again with the late month", AsOf: "2025-03-01", Person: outsider, Events: append(append([]eligibility.CaseEvent(nil), base...), late)}
	subj, _, err := appeal.Build()
	if err != nil {
		t.Fatal(err)
	}
	lateID := ""
	for _, ch := range subj.History {
		var d schemas.ContributionRecordedData
		if ch.Type == schemas.ContributionRecorded && json.Unmarshal(ch.Data, &d) == nil && d.Month == "2024-06" {
			lateID = ch.EventID
		}
	}
	if lateID == "" {
		t.Fatal("premise: no contribution for 2024-06")
	}
	d1, d2 := eligibility.RunCase(p, clerk).Decision, eligibility.RunCase(p, appeal).Decision
	if d1.Eligible || !d2.Eligible {
		t.Fatalf("premise: refused then (%v), eligible now (%v)", d1.Eligible, d2.Eligible)
	}
	var cited []string
	for _, c := range d2.Conditions {
		if c.ID != "insurance" {
			continue
		}
		for _, f := range c.Facts {
			cited = append(cited, f.EventID)
			if f.EventID == lateID {
				return
			}
		}
	}
	t.Errorf("the insurance condition of the new answer cites events %v, not the late contribution %s that made the difference", cited, lateID)
}
