package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestReunionWithoutAHomeOfOnesOwn: 赤政发〔2016〕50号 二（一）1 counts as a
// 合法稳定住所 a titled home the person "实际居住", "政府、单位或个人授权使用的各类商品房"
// included, and （1）投靠类 is "不受投靠人年龄、婚否、参加城镇社会保险和住房面积等其他条件限制":
// a spouse who lives in the partner's home joins them without owning or
// renting anything. The hub cannot see which home the couple lives in, so
// the family-reunion route does not ask for the applicant's own, and the
// met clause names the home as a fact for a clerk to confirm.
func TestReunionWithoutAHomeOfOnesOwn(t *testing.T) {
	wife := eligibility.CasePerson{BirthDate: "1992-03-01", Hukou: ruralSuihua}
	husband := func(hukou string) []eligibility.CasePerson {
		return []eligibility.CasePerson{{BirthDate: "1990-01-01", Hukou: hukou, Household: "H7", MarriedOn: "2020-01-01"}}
	}
	tests := []struct {
		name     string
		family   []eligibility.CasePerson
		eligible bool
	}{
		{"joins a husband registered in 红山区, living in his home", husband(chifengAddr), true},
		{"a husband registered in a village is no one to join", husband(chifengVillage), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runShipped(t, "chifeng/central", eligibility.Case{
				Name: tt.name, AsOf: "2024-07-01", Person: wife, Family: tt.family,
				Expect: eligibility.CaseExpect{Eligible: tt.eligible, Conditions: map[string]bool{"family_reunion": tt.eligible}},
			})
			if !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
			if !tt.eligible {
				return
			}
			if r.Decision.Route != "family_reunion" {
				t.Errorf("route is %s, want family_reunion", r.Decision.Route)
			}
			confirm := false
			for _, c := range r.Decision.Conditions {
				for _, f := range c.Facts {
					confirm = confirm || c.ID == "family_reunion" && strings.Contains(f.Text, "to confirm")
				}
			}
			if !confirm {
				t.Error("family_reunion names no home for a clerk to confirm")
			}
		})
	}
}
