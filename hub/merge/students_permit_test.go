package merge

import (
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestStudentPermitFromACountyOfTheSamePrefecture: a student whose hukou
// stays in a village of a county (依兰县, 永吉县) goes to university in the
// districts of the prefecture that county belongs to (哈尔滨市南岗区,
// 吉林市昌邑区) and is issued a residence permit on the basis of study.
//
// Seed 000 二（二） admits a permit for a move "到其他设区的市、县级市、县人民政府驻地镇",
// and seed 003 （十五） for "离开常住户口所在地，到吉林市城市居住"; the hub's own
// residence-permit policies read both so that "a move between two units of
// one prefecture counts" (README, Eligibility; residence-permit/jilin:
// "a villager of 永吉县 moving into 昌邑区 has left the hukou place";
// hub/eligibility TestResidencePermitPlaceUnits decides such a person
// eligible). The golden record and the permit statistics must then hold the
// permit the police issued on that very basis. They drop it instead, as "a
// permit of the city the hukou is in", keyed on the first four digits of
// the address: the student vanishes from /v1/stats/residence-permits and
// from the record's residence_permits, though the hub says they qualify.
func TestStudentPermitFromACountyOfTheSamePrefecture(t *testing.T) {
	tests := []struct {
		name, hukou, cityCode, permitAddr string
	}{
		{"依兰县 village student at a 南岗区 university", "230123100200", "230100", "230103001001"},
		{"永吉县 village student at a 昌邑区 college", "220221100200", "220200", "220202001001"},
		{"南岗区 student at a 五常市 campus", "230103001001", "230184", "230184100063"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := id(t, male)
			in := []hub.Input{
				registered(t, p, "ps-r1", "2004-01-01T08:00:00+08:00", tt.hukou, "1", "1990-01-01"),
				ev(t, schemas.ResidencePermitIssued, p, "ps-p1", "2022-10-01T08:00:00+08:00",
					map[string]any{"city_code": tt.cityCode, "address_code": tt.permitAddr, "basis": "study", "valid_until": "2026-07-31"}),
			}
			states, _ := run(in)
			st := states[p]
			if got := st.Record().ResidencePermits; len(got) != 1 {
				t.Errorf("hukou %s, permit issued in %s on the basis of study: record lists %d residence permits, want 1 (the hub's eligibility decides this person eligible for it)",
					tt.hukou, tt.cityCode, len(got))
			}
			if spans := st.PermitSpans(); len(spans) == 0 {
				t.Errorf("hukou %s, permit issued in %s: no permit span, so /v1/stats/residence-permits never counts the student", tt.hukou, tt.cityCode)
			}
		})
	}
}
