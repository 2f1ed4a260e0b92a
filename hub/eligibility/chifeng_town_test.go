package eligibility_test

import (
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestChifengLongResidenceNeedsTownLiving: README (hub/eligibility rules):
// a villager of the place settles without a home "on a route whose seed
// settles without a home (… Chifeng's talent category and its 3 years of
// work and living in its towns …)"; the seed, 赤政发〔2016〕50号 二（一）2:
// "在城镇就业、连续居住3年以上的农牧业转移人口……可以在现实际居住生活城市、建制镇
// 申请落户". A herdsman of 阿鲁科尔沁旗 who lives in his own village home
// (registered at the village's address) and has worked under a labour
// contract in his banner for four years has not lived in any town: he is
// no 转移人口. Since home_waived and work_and_study, nothing on the route
// asks for a town: the hub tells him he may settle.
func TestChifengLongResidenceNeedsTownLiving(t *testing.T) {
	person := eligibility.CasePerson{BirthDate: "1985-03-01", Hukou: chifengVillage}
	events := evs(home("P1", chifengVillage, "2015-01-01"),
		contract("C1", "150421", "2020-03-01", ""))
	r := runShipped(t, "chifeng/central", eligibility.Case{Name: "village herdsman", AsOf: "2024-06-01", Person: person, Events: events})
	if r.Decision.Eligible {
		t.Errorf("eligible by route %q with no town address on record (二（一）2: 在城镇就业、连续居住):\n%s", r.Decision.Route, decisionText(r.Decision))
	}
}
