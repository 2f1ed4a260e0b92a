package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestRuralGraduateNeedsNoHome: the graduate routes of the seeds admit a
// graduate without a home, and say so in so many words:
//
//   - 吉市政发〔2015〕5号 （十三）: "大中专和职业院校毕业生……在全市各类城镇落户不受稳定住所和稳定职业等限制，
//     凭毕（结）业证书或相关专业证书即可办理落户手续";
//   - 绍政发〔2016〕38号 二（二）2: "在城镇无合法稳定住所但已落实工作岗位的大(中)专院校毕业生……可以在当地申请
//     登记常住户口";
//   - 赤政发〔2016〕50号 二（一）1（4）: "取得国家认可的大专以上学历毕业未满5年的高校毕业生……农村学生升学……
//     可以在就（创）业地、建制镇申请登记常住户口，不受合法稳定住所、合法稳定职业、参加城镇社会保险等其他条件的限制".
//
// A student from a village of the place itself (永吉县 for Jilin City, a
// village of 柯桥区, a 旗 of Chifeng) who graduates and, for Shaoxing, takes
// a job there, but lives in the employer's or school's dormitory with no
// lease of their own, was refused by the hub for want of exactly the home
// the seeds waive: hukou_elsewhere (rural_to_urban) asked a villager for a
// registered home at a town address on every route, the graduate routes
// included; those now have one with home_waived.
func TestRuralGraduateNeedsNoHome(t *testing.T) {
	const keqiaoVillage = "330603002232" // 柯桥区 河塔村委会 (rural)
	tests := []struct {
		policy, name, hukou string
		events              []eligibility.CaseEvent
		conds               map[string]bool
	}{
		{"jilin/talent", "永吉县 villager with a bachelor's diploma", yongjiVillage,
			evs(graduated("21", "2024-07-01")),
			map[string]bool{"hukou_elsewhere": true, "diploma": true}},
		{"shaoxing/city", "柯桥区 villager, college graduate with a job in 柯桥区, no home", keqiaoVillage,
			evs(graduated("31", "2024-07-01"), contract("C1", "330603", "2024-08-01", "")),
			map[string]bool{"hukou_elsewhere_graduate": true, "graduate": true, "job": true}},
		{"chifeng/central", "阿鲁科尔沁旗 villager, college graduate (农村学生升学)", chifengVillage,
			evs(graduated("31", "2024-07-01")),
			map[string]bool{"hukou_elsewhere_no_home": true, "talent": true}},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"/"+tt.name, func(t *testing.T) {
			r := runShipped(t, tt.policy, eligibility.Case{
				Name: tt.name, AsOf: "2024-12-01",
				Person: eligibility.CasePerson{BirthDate: "2002-03-01", Hukou: tt.hukou},
				Events: tt.events,
				Expect: eligibility.CaseExpect{Eligible: true, Conditions: tt.conds},
			})
			if !r.Passed {
				var missing []string
				for _, c := range r.Decision.Conditions {
					if !c.Met {
						missing = append(missing, c.ID+": "+c.Missing)
					}
				}
				t.Errorf("%s\n  route %s, missing: %s", strings.Join(r.Problems, "; "), r.Decision.Route, strings.Join(missing, "; "))
			}
		})
	}
}
