package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestFamilyGenerations: a household member born 15 to 35 years after the
// applicant is presumed a child, 36 or more years after a grandchild
// (FamilyMember). A grandchild settles along only where the seed names
// grandchildren (Chifeng's 孙子女); elsewhere they are not listed as a
// child, however young or unmarried.
func TestFamilyGenerations(t *testing.T) {
	daqingWorker := evs(contract("C1", "230602", "2020-01-01", ""), lease("L1", daqingAddr, "2020-01-01", ""),
		contrib("230602", "2020-01..2024-06", "pension"))
	member := func(born string) []eligibility.CasePerson {
		return []eligibility.CasePerson{{BirthDate: born, Hukou: ruralSuihua, Household: "H1"}}
	}
	applicant := func(born string) eligibility.CasePerson {
		return eligibility.CasePerson{BirthDate: born, Hukou: ruralSuihua, Household: "H1"}
	}
	tests := []struct {
		policy, name string
		born         string // the applicant's birth date
		memberBorn   string
		events       []eligibility.CaseEvent
		eligible     bool
		want         []string
	}{
		{"heilongjiang/daqing", "a minor grandchild is no minor child", "1960-01-01", "2015-03-01", daqingWorker, true, []string{}},
		{"heilongjiang/daqing", "a minor child", "1985-01-01", "2015-03-01", daqingWorker, true, []string{"child"}},
		{"jilin/city", "an unmarried grandchild is no unmarried child", "1950-01-01", "1990-06-01", nil, false, []string{}},
		{"jilin/city", "born 35 years after: an unmarried child", "1955-01-01", "1990-06-01", nil, false, []string{"child"}},
		{"jilin/city", "born 36 years after: a grandchild", "1954-01-01", "1990-06-01", nil, false, []string{}},
		{"chifeng/central", "a grandchild where the seed names them", "1950-01-01", "1990-06-01", nil, false, []string{"grandchild"}},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"/"+tt.name, func(t *testing.T) {
			r := runShipped(t, tt.policy, eligibility.Case{
				Name: tt.name, AsOf: "2024-07-15", Person: applicant(tt.born), Family: member(tt.memberBorn), Events: tt.events,
				Expect: eligibility.CaseExpect{Eligible: tt.eligible, Family: tt.want},
			})
			if !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
		})
	}
}
