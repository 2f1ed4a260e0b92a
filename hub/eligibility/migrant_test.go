package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// decisionText joins a decision's conditions for a failure message.
func decisionText(d eligibility.Decision) string {
	var b strings.Builder
	b.WriteString("route " + d.Route + "\n")
	for _, c := range d.Conditions {
		b.WriteString(c.ID + ": ")
		if c.Met {
			b.WriteString("met")
		} else {
			b.WriteString("NOT met: " + c.Missing)
		}
		b.WriteString("\n")
		for _, f := range c.Facts {
			b.WriteString("    " + f.Text + "\n")
		}
	}
	return b.String()
}

// TestMigrantChifengLongResidenceWithoutLease: 赤政发〔2016〕50号 二（一）2
// settles "在城镇就业、连续居住3年以上……的农牧业转移人口……不受合法稳定住所、合法稳定就业、
// 参加城镇社会保险等其他条件的限制", and the policy's own note says 二（一）2 is
// "不受合法稳定住所……的限制". A worker from outside Chifeng who has worked
// there under labour contracts for over three years, housed in the
// employer's dormitory (no lease of their own), meets it; the residence
// permit policies of the same hub count a labour contract as evidence of
// living for exactly that worker.
func TestMigrantChifengLongResidenceWithoutLease(t *testing.T) {
	person := eligibility.CasePerson{BirthDate: "1985-03-01", Hukou: innerMongol}
	events := evs(contract("C1", "150402", "2020-03-01", "2022-02-28"),
		contract("C2", "150402", "2022-03-10", ""))
	r := runShipped(t, "chifeng/central", eligibility.Case{Name: "dormitory worker", AsOf: "2024-06-01", Person: person, Events: events})
	if !r.Decision.Eligible || r.Decision.Route != "long_residence" {
		t.Errorf("eligible = %t by route %q, want eligible by long_residence (四年 of work in Chifeng's towns, 不受合法稳定住所限制):\n%s",
			r.Decision.Eligible, r.Decision.Route, decisionText(r.Decision))
	}
}

// TestMigrantTransferFromCityBureau: a worker paid pension, medical and
// unemployment insurance in Harbin's 南岗区 (recorded by the district,
// 230103) for a year, then moved to Jilin City; Harbin's city-level agency
// completed the transfer (转移接续) of the account, writing its own
// prefecture-level code 230100 as from_region. The README: "insurance
// months count only in the policy's place where the seed says 当地 (Jilin
// City, Hunan), months a transfer (转移接续) carried there included", and "a
// region recorded at a city's own prefecture-level code (220200 for Jilin
// City, as a city-level bureau records it) names no district, so it counts
// in every place of that city". The account held in 230103 is Harbin's
// account: the transfer from 230100 carries it.
func TestMigrantTransferFromCityBureau(t *testing.T) {
	for _, from := range []string{"230103", "230100"} {
		t.Run("from "+from, func(t *testing.T) {
			events := evs(contrib("230103", "2022-01..2022-12", "pension", "medical", "unemployment"),
				insuranceTransferred("2023-01-05", from, "220202"),
				contract("C1", "220202", "2023-01-01", ""), lease("L1", jilinCity, "2021-01-01", ""),
				contrib("220202", "2023-01..2023-02", "pension", "medical", "unemployment"))
			r := runShipped(t, "jilin/city", eligibility.Case{Name: "transferred", AsOf: "2023-03-20", Person: outsider, Events: events})
			for _, c := range r.Decision.Conditions {
				if c.ID == "insurance" && !c.Met {
					t.Errorf("insurance not met: %s\n%s", c.Missing, decisionText(r.Decision))
				}
			}
		})
	}
}

// TestMigrantRuralResidentPensionIsNoUrbanInsurance: 黑政发〔2014〕25号
// 一（二） asks for "参加城镇社会保险满2年" (urban social insurance); the
// policy's clause says "24 months of urban social insurance, in any city".
// A migrant worker employed and renting in Daqing who has paid no urban
// insurance, only the rural residents' pension at home (enrolled in scheme
// resident at his village's county, 望奎县 231221, the contributions
// recorded there), has no urban social insurance at all; the hub counted
// his village pension months as the 24 months of urban insurance and
// found him eligible.
func TestMigrantRuralResidentPensionIsNoUrbanInsurance(t *testing.T) {
	events := evs(
		eligibility.CaseEvent{Type: "social_insurance.enrolled", Time: "2021-01-01",
			Data: map[string]any{"scheme": "resident", "insurances": []any{"pension", "medical"}, "region": "231221", "start": "2021-01-01"}},
		contrib("231221", "2021-01..2023-12", "pension", "medical"),
		contract("C1", "230602", "2022-01-01", ""), lease("L1", daqingAddr, "2021-06-01", ""))
	r := runShipped(t, "heilongjiang/daqing", eligibility.Case{Name: "village pension", AsOf: "2024-01-20", Person: outsider, Events: events})
	for _, c := range r.Decision.Conditions {
		if c.ID == "insurance" && c.Met {
			t.Errorf("参加城镇社会保险满2年 met (eligible = %t) by the rural residents' scheme paid in the village county: %s", r.Decision.Eligible, c.Facts[0].Text)
		}
	}
}
