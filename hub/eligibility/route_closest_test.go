package eligibility_test

import (
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestGraduateRouteIsTheClosest: the answer's route is "the set of clauses
// the person qualifies by, or comes closest to" (openapi.yaml,
// EligibilityDecision.route; hub/eligibility Decision.Route "the way the
// person qualifies (or comes closest to)"), and `pophub eligibility` prints
// it to the clerk. For a graduate under chifeng/central:
//
//   - a college graduate of 2017 registered in 土默特左旗 (Inner Mongolia,
//     outside Chifeng), whose diploma is past the 5 years of 赤政发〔2016〕50号
//     二（一）1（4）, lacks one clause of the talent route (talent) and two of
//     the business route (a home, a business licence);
//   - a villager of Chifeng who graduated in 2017 lacks one clause of the
//     talent route (the diploma's recency) and three of the business route
//     (a town home, a business licence, and the home the hukou moves to).
//
// Both were told "route: business", the route they are furthest from:
// Evaluate compared routes by how many clauses they meet, not by how many
// they lack, and region_resident (本自治区内人员) counted as a met clause of
// the business route.
func TestGraduateRouteIsTheClosest(t *testing.T) {
	routes := map[string][]string{
		"family_reunion": {"hukou_elsewhere_reunion", "family_reunion"},
		"home_purchase":  {"hukou_elsewhere", "home_purchase"},
		"business":       {"hukou_elsewhere", "residence", "business", "region_resident"},
		"talent":         {"hukou_elsewhere_no_home", "talent"},
		"long_residence": {"hukou_elsewhere", "long_residence", "working"},
	}
	tests := []struct {
		name   string
		person eligibility.CasePerson
		grad   string
	}{
		{"Inner Mongolian outsider, diploma 7 years old", eligibility.CasePerson{BirthDate: "1995-03-01", Hukou: innerMongol}, "2017-07-01"},
		{"Chifeng villager, diploma 7 years old", eligibility.CasePerson{BirthDate: "1995-03-01", Hukou: chifengVillage}, "2017-07-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runShipped(t, "chifeng/central", eligibility.Case{Name: tt.name, AsOf: "2024-12-01", Person: tt.person,
				Events: evs(graduated("31", tt.grad)), Expect: eligibility.CaseExpect{Eligible: false}})
			if !r.Passed {
				t.Fatalf("setup: %v", r.Problems)
			}
			met := map[string]bool{}
			for _, c := range r.Decision.Conditions {
				met[c.ID] = c.Met
			}
			lacks := func(route string) int {
				n := 0
				for _, id := range routes[route] {
					if !met[id] {
						n++
					}
				}
				return n
			}
			fewest := 99
			for rt := range routes {
				fewest = min(fewest, lacks(rt))
			}
			if got := lacks(r.Decision.Route); got > fewest {
				t.Errorf("route %q lacks %d clauses; the talent route lacks %d (clauses met: %v)", r.Decision.Route, got, lacks("talent"), met)
			}
		})
	}
}

// TestPermitSixMonthsAwayFromTheHukou: 黑政发〔2014〕25号 二（二） "公民离开常住户口
// 所在地到其他设区的市……居住半年以上的，可在居住地申请居住证" (and 吉市政发〔2015〕5号
// （十五）): the half year is one of living away from the hukou place. A
// student from 望奎县 moves the hukou into the university's collective
// household in 南岗区 (reason study), graduates, moves it back home on
// 2026-07-10 and stays in Harbin with a job from 2026-07-15. Until
// 2026-07-10 Harbin was the hukou place, so the half year away from it
// ends on 2027-01-09 at the earliest; the hub counts the four years of
// study while registered in Harbin and says eligible on 2026-08-01, three
