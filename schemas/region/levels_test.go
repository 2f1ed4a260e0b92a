package region

import (
	"strings"
	"testing"
)

// TestTokensAtEveryLength: the province.city.county triple for codes of 6,
// 9 and 12 digits; Unknown for anything shorter or not digits.
func TestTokensAtEveryLength(t *testing.T) {
	tests := []struct{ code, want string }{
		{"440304001002", "44.4403.440304"},
		{"440304001", "44.4403.440304"},
		{"440304", "44.4403.440304"},
		{"110105001001", "11.1101.110105"},
		{"820001", "82.8200.820001"},
		{"23010", Unknown},
		{"2301x2001001", Unknown},
		{" 230102", Unknown},
		{"", Unknown},
	}
	for _, tc := range tests {
		got := Tokens(tc.code)
		if got != tc.want {
			t.Errorf("Tokens(%q) = %q, want %q", tc.code, got, tc.want)
		}
		if n := strings.Count(got, "."); n != 2 {
			t.Errorf("Tokens(%q) = %q has %d dots, want 2", tc.code, got, n)
		}
	}
}

// TestFilterIsThreeTokens: a filter is always three tokens, so that it
// slots into the subject families; surrounding blanks are ignored and
// anything that is not a 2-, 4- or 6-digit prefix matches everything.
func TestFilterIsThreeTokens(t *testing.T) {
	tests := []struct{ code, want string }{
		{"23", "23.*.*"},
		{"2301", "23.2301.*"},
		{"230102", "23.2301.230102"},
		{"230102001001", "23.2301.230102"},
		{" 2301 ", "23.2301.*"},
		{"230", "*.*.*"},
		{"23a1", "*.*.*"},
		{"2x", "*.*.*"},
		{"", "*.*.*"},
	}
	for _, tc := range tests {
		got := Filter(tc.code)
		if got != tc.want {
			t.Errorf("Filter(%q) = %q, want %q", tc.code, got, tc.want)
		}
		if n := strings.Count(got, "."); n != 2 {
			t.Errorf("Filter(%q) = %q has %d dots", tc.code, got, n)
		}
	}
	// A filter matches the tokens of every code below it and no other.
	matches := func(filter, tokens string) bool {
		f, s := strings.Split(filter, "."), strings.Split(tokens, ".")
		for i := range f {
			if f[i] != "*" && f[i] != s[i] {
				return false
			}
		}
		return true
	}
	codes := []string{"230102001001", "230103002001", "230602002003", "440304001002", "110105001001"}
	for _, prefix := range []string{"23", "2301", "230102", "44", "4403", "11"} {
		for _, code := range codes {
			if got, want := matches(Filter(prefix), Tokens(code)), strings.HasPrefix(code, prefix); got != want {
				t.Errorf("Filter(%s) matches Tokens(%s) = %v, want %v", prefix, code, got, want)
			}
		}
	}
}

// TestAddressCodesInEveryProvince: a 12-digit code is an address in each
// of the 34 provinces, never in a code that is not one, and never when it
// names a whole province (digits 3-6 all zero).
func TestAddressCodesInEveryProvince(t *testing.T) {
	if len(provinces) != 34 {
		t.Errorf("%d provinces, want 34", len(provinces))
	}
	for p := 0; p < 100; p++ {
		code := string([]byte{byte('0' + p/10), byte('0' + p%10)})
		_, known := provinces[code]
		if IsProvince(code) != known || (ProvinceName(code) != "") != known {
			t.Errorf("province %s: IsProvince %v, name %q", code, IsProvince(code), ProvinceName(code))
		}
		for _, tc := range []struct {
			rest string
			want bool
		}{
			{"0102001001", known},
			{"0100000000", known}, // a city's own code is still a division
			{"0001001001", known},
			{"0000001001", false},
			{"0000000000", false},
		} {
			if got := IsAddressCode(code + tc.rest); got != tc.want {
				t.Errorf("IsAddressCode(%s%s) = %v, want %v", code, tc.rest, got, tc.want)
			}
		}
		if got := IsCountyCode(code + "0102"); got != known {
			t.Errorf("IsCountyCode(%s0102) = %v", code, got)
		}
	}
	for _, bad := range []string{"23010200100", "2301020010011", "23010200100a", "２３0102001001", "-30102001001"} {
		if IsAddressCode(bad) {
			t.Errorf("IsAddressCode(%q) = true", bad)
		}
	}
}

// TestLevelCodesAndCounty: the lengths a region filter accepts, and the
// county of a longer code.
func TestLevelCodesAndCounty(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{
		{"23", true}, {"2301", true}, {"230102", true}, {"230102001", true}, {"230102001001", true},
		{"2", false}, {"230", false}, {"23010", false}, {"2301020", false}, {"99", false}, {"990102", false}, {"23a1", false},
	} {
		if got := IsLevelCode(tc.code); got != tc.want {
			t.Errorf("IsLevelCode(%q) = %v, want %v", tc.code, got, tc.want)
		}
	}
	for _, tc := range []struct{ code, want string }{
		{"230102001001", "230102"}, {"230102001", "230102"}, {"230102", "230102"}, {"2301", ""}, {"", ""},
	} {
		if got := County(tc.code); got != tc.want {
			t.Errorf("County(%q) = %q, want %q", tc.code, got, tc.want)
		}
	}
}
