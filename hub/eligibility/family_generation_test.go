package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestFamilyGenerations: a household member born 15 to 35 years after the
// applicant is presumed a child (FamilyMember). One born 36 or more years
// after may be a grandchild or the child of an older parent: where the
// seed names grandchildren (Chifeng's 孙子女) they are listed as a
// grandchild; where it names only children (黑政发〔2014〕25号 一（二） "本人及其
// 共同居住生活的配偶、未成年子女、父母等", 吉市政发〔2015〕5号 （十二） 未婚子女) they are listed
// as a child within the age or marital limit, with a basis asking a clerk
// to confirm which, never left out.
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
		toConfirm    bool // the basis asks whether a child or a grandchild
	}{
		{"heilongjiang/daqing", "a minor child", "1985-01-01", "2015-03-01", daqingWorker, true, []string{"child"}, false},
		{"heilongjiang/daqing", "father of 41 with a son born 36 years after him", "1983-05-01", "2019-06-01", daqingWorker, true, []string{"child"}, true},
		{"heilongjiang/daqing", "born 55 years after, a minor: child or grandchild", "1960-01-01", "2015-03-01", daqingWorker, true, []string{"child"}, true},
		{"heilongjiang/daqing", "born 36 years after, now an adult: no minor child", "1970-01-01", "2006-03-01", daqingWorker, true, []string{}, false},
		{"jilin/city", "born 35 years after: an unmarried child", "1955-01-01", "1990-06-01", nil, false, []string{"child"}, false},
		{"jilin/city", "born 36 years after, unmarried: child or grandchild", "1954-01-01", "1990-06-01", nil, false, []string{"child"}, true},
		{"chifeng/central", "a grandchild where the seed names them", "1950-01-01", "1990-06-01", nil, false, []string{"grandchild"}, false},
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
			for _, m := range r.Decision.Family {
				if got := strings.Contains(m.Basis, "a child or a grandchild, to confirm on the register"); got != tt.toConfirm {
					t.Errorf("%s basis %q: asks to confirm child or grandchild is %t, want %t", m.Relation, m.Basis, got, tt.toConfirm)
				}
			}
		})
	}
}
