package sdk

import "testing"

// TestRegionCodeCountyLikeItsCity: a 6-digit code the region table has is
// a county though it ends in 00 (东莞市 441900, 中山市 442000, 儋州市
// 460400: the one county of a city without districts), as the hub reads
// it; the subscription is the county's, the subject a caller fixed to that
// county may read. A city written in six digits that is no county is
// still the city.
func TestRegionCodeCountyLikeItsCity(t *testing.T) {
	for _, tc := range []struct {
		region, code, deaths string
	}{
		{"441900", "441900", "pop.death.44.4419.441900"},
		{"442000", "442000", "pop.death.44.4420.442000"},
		{"460400", "460400", "pop.death.46.4604.460400"},
		{"230100", "2301", "pop.death.23.2301.*"},
		{"4419", "4419", "pop.death.44.4419.*"},
	} {
		if got := RegionCode(tc.region); got != tc.code {
			t.Errorf("RegionCode(%q) = %q, want %q", tc.region, got, tc.code)
		}
		if got := (Filter{Kind: Deaths, Region: tc.region}).Subject("pop"); got != tc.deaths {
			t.Errorf("deaths in %s: subject %s, want %s", tc.region, got, tc.deaths)
		}
		if err := CheckRegion(tc.region); err != nil {
			t.Errorf("CheckRegion(%q): %v", tc.region, err)
		}
	}
}
