package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

// TestPermitSixMonthsAwayFromTheHukou: 黑政发〔2014〕25号 二（二） "公民离开常住户口
// 所在地到其他设区的市……居住半年以上的，可在居住地申请居住证" (and 吉市政发〔2015〕5号
// （十五）): the half year is one of living away from the hukou place. A
// student from 望奎县 moves the hukou into the university's collective
// household in 南岗区 (reason study), graduates, moves it back home on
// 2026-07-10 and stays in Harbin with a job from 2026-07-15. Until
// 2026-07-10 Harbin was the hukou place, so the half year away from it
// ends on 2027-01-09 at the earliest; the hub counts the four years of
// study while registered in Harbin and says eligible on 2026-08-01, three
// weeks after the hukou left.
func TestPermitSixMonthsAwayFromTheHukou(t *testing.T) {
	const wangkuiVillage, hit = "231221100200", "230103001001"
	migrated := func(at, from, to, reason, hh string) eligibility.CaseEvent {
		return eligibility.CaseEvent{Type: schemas.HukouMigrated, Time: at,
			Data: map[string]any{"from_address_code": from, "to_address_code": to, "reason": reason, "household_id": hh}}
	}
	r := runShipped(t, "residence-permit/heilongjiang", eligibility.Case{
		Name: "graduate back on the home hukou", AsOf: "2026-08-01",
		Person: eligibility.CasePerson{BirthDate: "2004-03-01", Hukou: wangkuiVillage},
		Events: evs(enrolled("哈尔滨工业大学", "230103", "2022-09-01"),
			migrated("2022-09-05", wangkuiVillage, hit, "study", "H-HIT-2022"),
			eligibility.CaseEvent{Type: schemas.EducationGraduated, Time: "2026-07-01", Data: map[string]any{
				"institution": "哈尔滨工业大学", "level": "21", "date": "2026-07-01", "certificate_no": "102131202605001234"}},
			migrated("2026-07-10", hit, wangkuiVillage, "family", "H1"),
			contract("C1", "230103", "2026-07-15", "")),
		Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"hukou_elsewhere": true, "living": false}},
	})
	if !r.Passed {
		var facts []string
		for _, c := range r.Decision.Conditions {
			if c.ID == "living" {
				for _, f := range c.Facts {
					facts = append(facts, f.Text)
				}
			}
		}
		t.Errorf("%s; living facts: %s", strings.Join(r.Problems, "; "), strings.Join(facts, " | "))
	}
}
