package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestHomeInATown: the settlement seeds open settlement only to a home in
// a town. 赤政发〔2016〕50号 二（一）1 "在我市中心城区、县政府驻地镇和其他建制镇有合法稳定住所",
// the home "在城镇范围内"; 吉市政发〔2015〕5号 （十一） "在五县（市）城区、县政府驻地镇和其他建制镇有合法
// 稳定住所（含租赁房屋）"; Hunan 三（一） "…县人民政府驻地镇和其他建制镇有合法稳定住所（含租赁）". A person
// registered outside the place who owns or rents at a village address does
// not settle on it, and the missing text says the home lies in a village;
// the same home at a town address still qualifies.
func TestHomeInATown(t *testing.T) {
	const (
		shijiazhuang     = "130102001001"
		ningchengVillage = "150429100200" // 宁城县 富家窝铺村民委员会 (rural)
		shatianVillage   = "430802002202" // 永定区 沙田村委会 (rural)
	)
	fromShijiazhuang := eligibility.CasePerson{BirthDate: "1980-01-01", Hukou: shijiazhuang}
	fromHarbin := eligibility.CasePerson{BirthDate: "1980-01-01", Hukou: harbinAddr}
	tests := []struct {
		policy, name string
		person       eligibility.CasePerson
		events       []eligibility.CaseEvent
		clause       string // the clause the home decides
		eligible     bool
	}{
		{"chifeng/central", "owns a house in a village of 宁城县", fromShijiazhuang,
			evs(home("P1", ningchengVillage, "2024-01-10")), "home_purchase", false},
		{"chifeng/central", "owns a flat in 红山区", fromShijiazhuang,
			evs(home("P1", chifengAddr, "2024-01-10")), "home_purchase", true},
		{"jilin/counties", "rents in a village of 永吉县", fromHarbin,
			evs(lease("L1", yongjiVillage, "2024-01-10", "")), "residence", false},
		{"jilin/counties", "owns a house in a village of 永吉县", fromHarbin,
			evs(home("P1", yongjiVillage, "2024-01-10")), "residence", false},
		{"jilin/counties", "rents in 口前镇, the county seat", fromHarbin,
			evs(lease("L1", yongjiTown, "2024-01-10", "")), "residence", true},
		{"hunan/under-500k", "rents in a village of 永定区", fromHarbin,
			evs(lease("L1", shatianVillage, "2024-01-10", "")), "residence", false},
		{"hunan/under-500k", "rents in 永定区's urban area", fromHarbin,
			evs(lease("L1", zhangjiajie, "2024-01-10", "")), "residence", true},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"/"+tt.name, func(t *testing.T) {
			r := runShipped(t, tt.policy, eligibility.Case{
				Name: tt.name, AsOf: "2024-07-01", Person: tt.person, Events: tt.events,
				Expect: eligibility.CaseExpect{Eligible: tt.eligible, Conditions: map[string]bool{tt.clause: tt.eligible}},
			})
			if !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
			if tt.eligible {
				return
			}
			for _, c := range r.Decision.Conditions {
				if c.ID == tt.clause && !strings.Contains(c.Missing, "lies in a village") {
					t.Errorf("%s missing is %q, want it to say the home lies in a village", c.ID, c.Missing)
				}
			}
		})
	}
}
