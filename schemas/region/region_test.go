package region

import "testing"

func TestTokensAndFilters(t *testing.T) {
	tests := []struct{ code, tokens, filter string }{
		{"230102001001", "23.2301.230102", "23.2301.230102"},
		{"230102", "23.2301.230102", "23.2301.230102"},
		{"2301", Unknown, "23.2301.*"},
		{"23", Unknown, "23.*.*"},
		{"", Unknown, "*.*.*"},
	}
	for _, tc := range tests {
		if got := Tokens(tc.code); got != tc.tokens {
			t.Errorf("Tokens(%q) = %q, want %q", tc.code, got, tc.tokens)
		}
		if got := Filter(tc.code); got != tc.filter {
			t.Errorf("Filter(%q) = %q, want %q", tc.code, got, tc.filter)
		}
	}
}

func TestCodeShapes(t *testing.T) {
	tests := []struct {
		code          string
		address, cnty bool
	}{
		{"230102001001", true, false},
		{"230102", false, true},
		{"990102001001", false, false}, // no province 99
		{"230000000000", false, false}, // a province is not an address
		{"23010200100", false, false},
		{"2301020010a1", false, false},
	}
	for _, tc := range tests {
		if got := IsAddressCode(tc.code); got != tc.address {
			t.Errorf("IsAddressCode(%q) = %v", tc.code, got)
		}
		if got := IsCountyCode(tc.code); got != tc.cnty {
			t.Errorf("IsCountyCode(%q) = %v", tc.code, got)
		}
	}
	if !IsLevelCode("230102001") || IsLevelCode("2301020") {
		t.Error("IsLevelCode disagrees on 9 and 7 digits")
	}
}

// TestPermitCity: a permit's city_code names its city whichever county of
// it was written, except the county-level cities a province administers
// directly, which are cities of their own.
func TestPermitCity(t *testing.T) {
	for _, tc := range []struct{ code, want string }{
		{"230100", "230100"},
		{"230102", "230100"},
		{"2301", "230100"},
		{"429004", "429004"}, // 仙桃市, under 4290 省直辖县级行政区划
		{"429006", "429006"}, // 天门市: not the same city as 仙桃
		{"659001", "659001"}, // 石河子市, under 6590 自治区直辖县级行政区划
	} {
		if got := PermitCity(tc.code); got != tc.want {
			t.Errorf("PermitCity(%q) = %q, want %q", tc.code, got, tc.want)
		}
	}
}
