package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas/region"
)

// TestResidencePermitPoliciesDrawTheRecordsUnits: the golden record drops a
// residence permit "for the unit the hukou is in" (region.ResidenceUnit:
// in Heilongjiang, Inner Mongolia and Jilin a city's districts together,
// or a county, banner or county-level city on its own; elsewhere a city),
// and counts its holder nowhere. The
// residence-permit policies must draw the same line: a person they call
// eligible in a unit must be able to hold that unit's permit, and one
// whose hukou lies in another unit must meet hukou_elsewhere.
func TestResidencePermitPoliciesDrawTheRecordsUnits(t *testing.T) {
	tests := []struct {
		policy, name, hukou, home string
	}{
		// Zhejiang's and Hunan's units are cities (the national rule).
		{"residence-permit/shaoxing", "越城区 to 柯桥区", "330602001001", "330603001001"},
		{"residence-permit/shaoxing", "柯桥区 to 上虞区", "330603001001", "330604001001"},
		{"residence-permit/hunan", "浏阳市 to 岳麓区", "430181001001", "430104001001"},
		{"residence-permit/hunan", "长沙县 to 芙蓉区", "430121001001", "430102001001"},
		{"residence-permit/shaoxing", "杭州 to 越城区", "330106001001", "330602001001"},
		// Heilongjiang's and Inner Mongolia's are a city's districts, or a
		// county or banner.
		{"residence-permit/heilongjiang", "依兰县 to 南岗区", "230123001001", "230103001001"},
		{"residence-permit/chifeng", "红山区 to 松山区", "150402001001", "150404001001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			away := region.ResidenceUnit(tt.hukou) != region.ResidenceUnit(tt.home)
			r := runShipped(t, tt.policy, eligibility.Case{
				Name: tt.name, AsOf: "2024-09-01",
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: tt.hukou},
				Events: evs(lease("L1", tt.home, "2023-09-01", "")),
				Expect: eligibility.CaseExpect{Eligible: away, Conditions: map[string]bool{"hukou_elsewhere": away}},
			})
			if !r.Passed {
				t.Errorf("merge's unit of %s is %s, of %s %s (permit held: %v), but the policy decided %s in %s: %s",
					tt.hukou, region.ResidenceUnit(tt.hukou), tt.home, region.ResidenceUnit(tt.home), away,
					map[bool]string{true: "eligible", false: "not eligible"}[r.Decision.Eligible], r.Decision.Place, strings.Join(r.Problems, "; "))
			}
		})
	}
}
