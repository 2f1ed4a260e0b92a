package eligibility_test

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
)

// runShipped runs one case against a shipped policy.
func runShipped(t *testing.T, id string, c eligibility.Case) eligibility.CaseResult {
	t.Helper()
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := cat.Policy(id)
	if !ok {
		t.Fatalf("no policy %s", id)
	}
	return eligibility.RunCase(p, c)
}

// TestResidencePermitPlaceUnits checks the unit a residence permit's
// "离开常住户口所在地" is judged at. 黑政发〔2014〕25号 二（二） admits a move
// "到其他设区的市、县级市、县人民政府驻地镇": a county, a county-level city and the
// districts of a city are each a place of their own, so a move between two
// of one prefecture qualifies and a move within a city's districts does
// not. 吉市政发〔2015〕5号 （十五） "到吉林市城市居住" and its task split （六）
// "到吉林市市区居住": a villager of one of the five counties moving into the
// city districts has left the hukou place.
func TestResidencePermitPlaceUnits(t *testing.T) {
	const (
		wangkuiVillage = "231221100200" // 望奎县, 绥化市
		anda           = "231281001001" // 安达市 (county-level city), 绥化市
		beilin         = "231202001001" // 北林区, 绥化市
		nangang        = "230103001001" // 南岗区, 哈尔滨市
		daoli          = "230102001001" // 道里区, 哈尔滨市
		wuchang        = "230184001001" // 五常市 (county-level city), 哈尔滨市
		chuanying      = "220204001001" // 船营区, 吉林市
		jiaohe         = "220281001001" // 蛟河市 (county-level city), 吉林市
	)
	tests := []struct {
		policy, name, hukou, home string
		eligible                  bool
		place                     string
	}{
		{"residence-permit/heilongjiang", "望奎县 village to 安达市", wangkuiVillage, anda, true, "安达市"},
		{"residence-permit/heilongjiang", "望奎县 village to 绥化市 districts", wangkuiVillage, beilin, true, "绥化市市区"},
		{"residence-permit/heilongjiang", "南岗区 to 五常市", nangang, wuchang, true, "五常市"},
		{"residence-permit/heilongjiang", "南岗区 to 道里区: one city's districts", nangang, daoli, false, "哈尔滨市市区"},
		{"residence-permit/heilongjiang", "within 望奎县", wangkuiVillage, "231221001001", false, "望奎县"},
		{"residence-permit/jilin", "永吉县 village to 昌邑区", yongjiVillage, jilinCity, true, "吉林市市区"},
		{"residence-permit/jilin", "永吉县 village to 蛟河市", yongjiVillage, jiaohe, true, "蛟河市"},
		{"residence-permit/jilin", "昌邑区 to 船营区: one city's districts", jilinCity, chuanying, false, "吉林市市区"},
		{"residence-permit/jilin", "within 永吉县", yongjiVillage, yongjiTown, false, "永吉县"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runShipped(t, tt.policy, eligibility.Case{
				Name: tt.name, AsOf: "2024-09-01",
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: tt.hukou},
				Events: evs(lease("L1", tt.home, "2023-09-01", "")),
				Expect: eligibility.CaseExpect{Eligible: tt.eligible, Conditions: map[string]bool{"hukou_elsewhere": tt.eligible, "living": true, "basis": true}},
			})
			if !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
			if r.Decision.Place != tt.place {
				t.Errorf("decided in %q, want %q", r.Decision.Place, tt.place)
			}
		})
	}
}

// TestHarbinPointsInsuranceAnywhere: 黑政发〔2014〕25号 一（三） scores
// "参加城镇社会保险年限" without 当地, as 一（一） and 一（二） ask for
// insurance without it: months paid in Daqing count in Harbin's table.
func TestHarbinPointsInsuranceAnywhere(t *testing.T) {
	r := runShipped(t, "heilongjiang/harbin", eligibility.Case{
		Name: "insured in Daqing", AsOf: "2025-01-15", Person: outsider,
		Events: evs(contract("C1", "230103", "2022-01-01", ""), lease("L1", harbinAddr, "2022-01-01", ""),
			contrib("230602", "2020-01..2024-12", "pension")),
		// 15 (employment) + 15 (rental) + 25 (insurance) + 9 (residence) = 64.
		Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"points": true}},
	})
	if !r.Passed {
		t.Errorf("%s", strings.Join(r.Problems, "; "))
	}
	var facts []string
	for _, c := range r.Decision.Conditions {
		if c.ID == "points" {
			for _, f := range c.Facts {
				facts = append(facts, f.Text)
			}
		}
	}
	for _, want := range []string{"insurance: 60 months → 25 points", "pension insurance (employee scheme): 60 months anywhere", "64 points of 50 needed"} {
		if !slices.Contains(facts, want) {
			t.Errorf("points facts lack %q:\n%s", want, strings.Join(facts, "\n"))
		}
	}
}

// TestPointsItemLocal checks the points item option local: by default
// (and with local: true) only months paid in the place count, as before;
// local: false counts them anywhere; and only an insurance item takes it,
// the other measures being facts of the place by nature.
func TestPointsItemLocal(t *testing.T) {
	const policy = `id: test/points
title: test
seed: {doc: 黑政发〔2014〕25号, file: 000_03dd86b7a0fe4cb2.txt}
places: [{name: 哈尔滨市城区, codes: ["230103"]}]
clauses:
  - id: points
    ref: 一（三）
    text: 积分
    condition: {points: {threshold: 10, items: [ITEM]}}
`
	const insurance = "{id: insurance, text: 参加城镇社会保险年限, measure: insurance_months, kinds: [pension], points: 5, per_months: 12, max: 25LOCAL}"
	tests := []struct {
		name, local string
		wantErr     string
		item        string
		eligible    bool
	}{
		{name: "default is local", local: "", eligible: false},
		{name: "local true", local: ", local: true", eligible: false},
		{name: "local false", local: ", local: false", eligible: true},
		{name: "local on a rental item", item: "{id: rental, text: 租赁, measure: rental_months, points: 5, per_months: 12, max: 15, local: false}",
			wantErr: "item rental: local applies to insurance_months only"},
		{name: "unknown item field", item: "{id: rental, text: 租赁, measure: rental_months, points: 5, per_months: 12, max: 15, per_month: 6}",
			wantErr: `points item has no field "per_month"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item := tt.item
			if item == "" {
				item = strings.Replace(insurance, "LOCAL", tt.local, 1)
			}
			fsys := fstest.MapFS{"test/points.yaml": {Data: []byte(strings.Replace(policy, "ITEM", item, 1))}}
			cat, err := eligibility.Load(fsys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, _ := cat.Policy("test/points")
			r := eligibility.RunCase(p, eligibility.Case{
				Name: tt.name, AsOf: "2025-01-15", Person: outsider,
				Events: evs(contrib("230602", "2022-01..2024-12", "pension")),
				Expect: eligibility.CaseExpect{Eligible: tt.eligible},
			})
			if !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
		})
	}
}

// TestSettlementHukouElsewhereExceptions pins the two settlement policies
// that do not let a villager of the place count as from elsewhere, and
// why. 黑政发〔2014〕25号 一（三） admits by points "外来务工人员" (migrant
// workers from outside) to Harbin's districts; a villager of those districts
// is no 外来 worker. Hunan 三（三） is a move between Changsha, Zhuzhou
// and Xiangtan (三市间的迁移落户); a move within one of them is that
// city's own tier, which has rural_to_urban.
func TestSettlementHukouElsewhereExceptions(t *testing.T) {
	const changshaVillage = "430111101202" // 雨花区 跳马镇 白竹村委会 (rural, inside Changsha's districts)
	tests := []struct {
		policy, name string
		c            eligibility.Case
	}{
		{"heilongjiang/harbin", "南岗区 villager renting in town", eligibility.Case{
			AsOf: "2025-01-15", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: harbinVillage},
			Events: evs(lease("L1", harbinAddr, "2022-01-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"hukou_elsewhere": false}},
		}},
		{"hunan/chang-zhu-tan", "雨花区 villager renting in 芙蓉区", eligibility.Case{
			AsOf: "2024-02-20", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: changshaVillage},
			Events: evs(lease("L1", changsha, "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"hukou_in_czt": true, "hukou_elsewhere": false}},
		}},
		// The same villager is from elsewhere under Changsha's own tier.
		{"hunan/over-3m", "雨花区 villager renting in 芙蓉区, Changsha's tier", eligibility.Case{
			AsOf: "2024-02-20", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: changshaVillage},
			Events: evs(lease("L1", changsha, "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"hukou_elsewhere": true}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Name = tt.name
			if r := runShipped(t, tt.policy, tt.c); !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
		})
	}
}
