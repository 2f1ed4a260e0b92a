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
