package eligibility_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestPrefectureLevelRegions: a labour contract or contributions recorded
// by a prefecture-level agency carry the city's own code (220200 for Jilin
// City, 230600 for Daqing), which names no district. Such a record lies in
// every place that covers a division of that prefecture, under every
// policy alike, as jilin/talent's place "2202" already reads it; a
// prefecture-level code of another city does not.
func TestPrefectureLevelRegions(t *testing.T) {
	tests := []struct {
		policy string
		c      eligibility.Case
		// wantFacts are facts of the decision's conditions.
		wantFacts []string
	}{
		{"jilin/city", eligibility.Case{
			Name: "city-level agency", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "220200", "2022-01-01", ""), lease("L1", jilinCity, "2022-01-01", ""),
				contrib("220200", "2023-01..2024-06", "pension", "medical", "unemployment")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"job": true, "insurance": true}}},
			[]string{"employment C1 in 220200 (prefecture-level, no district named: counted in 吉林市市区) from 2022-01-01 open-ended",
				"pension, medical and unemployment insurance at the same time: 18 months in 吉林市市区 (2023-01 … 2024-06), " +
					"18 of them recorded at 220200 (prefecture-level, no district named: counted in 吉林市市区)"}},
		{"heilongjiang/daqing", eligibility.Case{
			Name: "Daqing's city-level agency", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "230600", "2022-01-01", ""), lease("L1", daqingAddr, "2022-01-01", ""),
				contrib("230600", "2022-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"contract": true, "insurance": true}}},
			[]string{"labour contract C1 in 230600 (prefecture-level, no district named: counted in 大庆市市区) from 2022-01-01 open-ended"}},
		{"jilin/city", eligibility.Case{
			Name: "another prefecture's code", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "220100", "2022-01-01", ""), lease("L1", jilinCity, "2022-01-01", ""),
				contrib("220100", "2023-01..2024-06", "pension", "medical", "unemployment")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"job": false, "insurance": false}}},
			nil},
		{"jilin/city", eligibility.Case{
			Name: "a province-level code is no city", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "220000", "2022-01-01", ""), lease("L1", jilinCity, "2022-01-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"job": false}}},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"/"+tt.c.Name, func(t *testing.T) {
			r := runShipped(t, tt.policy, tt.c)
			if !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
			var facts []string
			for _, c := range r.Decision.Conditions {
				for _, f := range c.Facts {
					facts = append(facts, f.Text)
				}
			}
			for _, w := range tt.wantFacts {
				if !slices.Contains(facts, w) {
					t.Errorf("facts lack %q:\n%s", w, strings.Join(facts, "\n"))
				}
			}
		})
	}
}
