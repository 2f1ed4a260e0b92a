package codes

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// uscc completes 17 characters with their GB 32100 check character.
func uscc(t *testing.T, first17 string) string {
	t.Helper()
	c, ok := USCCCheckChar(first17)
	if !ok {
		t.Fatalf("USCCCheckChar(%s): outside the alphabet", first17)
	}
	return first17 + string(c)
}

// TestUSCCConstructed: codes built from their parts (registration
// authority, organisation kind, division code, organisation code) with the
// computed check character are valid, and every single-character error is
// caught, as a MOD 31 check with these weights guarantees.
func TestUSCCConstructed(t *testing.T) {
	codes := []string{
		uscc(t, "91230102MA1B2C3D4"), // 9 industry and commerce, 1 enterprise
		uscc(t, "92230102MA00X1Y2K"), // 2 individual business
		uscc(t, "11100000000013127"), // 1 organisation establishment, 1 government body
		uscc(t, "52440304MJL0001XY"), // 5 civil affairs, 2 private non-enterprise unit
		uscc(t, "Y1330602MA2AAAAAA"), // Y other authorities
		"91350100M000100Y43",         // the standard's example
		"93440304MA5FXW7G24",
		"91230102MA1B2C3D46",
	}
	for _, code := range codes {
		if !ValidUSCC(code) {
			t.Errorf("ValidUSCC(%s) = false", code)
			continue
		}
		for i := 0; i < 18; i++ {
			for j := 0; j < len(uscsChars); j++ {
				if uscsChars[j] == code[i] {
					continue
				}
				bad := code[:i] + string(uscsChars[j]) + code[i+1:]
				if ValidUSCC(bad) {
					t.Fatalf("%s (position %d of %s changed) is valid", bad, i, code)
				}
			}
		}
	}
}

// TestUSCCCheckCharIsZero: a weighted sum divisible by 31 gives the check
// character '0' (31 - 0 wraps), not an out-of-range index.
func TestUSCCCheckCharIsZero(t *testing.T) {
	found := false
	for n := 0; n < 1000 && !found; n++ {
		first17 := fmt.Sprintf("91230102MA1B2C%03d", n)
		c, ok := USCCCheckChar(first17)
		if !ok {
			t.Fatal(first17)
		}
		if c == '0' {
			found = true
			if !ValidUSCC(first17 + "0") {
				t.Errorf("%s0 rejected", first17)
			}
		}
	}
	if !found {
		t.Error("no code with check character 0 among 1000")
	}
}

// TestUSCCRejects: lengths, lower case, and the letters GB 32100 leaves
// out (I, O, S, V, Z) anywhere in the code.
func TestUSCCRejects(t *testing.T) {
	valid := "91350100M000100Y43"
	tests := []string{
		"",
		valid[:17],
		valid + "3",
		strings.ToLower(valid),
		"91350100m000100Y43",
	}
	for _, letter := range "IOSVZ" {
		tests = append(tests, "91350100"+string(letter)+"000100Y43", valid[:17]+string(letter))
	}
	for _, s := range tests {
		if ValidUSCC(s) {
			t.Errorf("ValidUSCC(%q) = true", s)
		}
	}
	for _, letter := range "IOSVZa " {
		if _, ok := USCCCheckChar("91350100" + string(letter) + "000100Y4"); ok {
			t.Errorf("USCCCheckChar accepts %q", letter)
		}
	}
}

// TestEducationRankOrdering: postgraduate above undergraduate above
// college … above other; within a stage graduation above completion above
// incomplete study; anything not a 2-digit code ranks last.
func TestEducationRankOrdering(t *testing.T) {
	var levels []string
	for code := range Education {
		levels = append(levels, code)
	}
	sort.Slice(levels, func(i, j int) bool { return EducationRank(levels[i]) < EducationRank(levels[j]) })
	if levels[0] != "10" || levels[len(levels)-1] != "90" {
		t.Errorf("highest %s, lowest %s", levels[0], levels[len(levels)-1])
	}
	higher := [][2]string{
		{"11", "14"}, {"14", "21"}, {"21", "31"}, {"31", "41"}, {"47", "61"}, {"61", "71"}, {"71", "81"}, {"81", "90"},
		{"21", "22"}, {"22", "23"}, {"61", "63"},
	}
	for _, p := range higher {
		if EducationRank(p[0]) >= EducationRank(p[1]) {
			t.Errorf("%s (%s) does not rank above %s (%s)", p[0], Education[p[0]], p[1], Education[p[1]])
		}
	}
	for _, bad := range []string{"", "1", "100"} {
		if r := EducationRank(bad); r <= EducationRank("90") {
			t.Errorf("EducationRank(%q) = %d ranks above a real level", bad, r)
		}
	}
}

// TestCodeTables: the sizes and anchors of the national tables.
func TestCodeTables(t *testing.T) {
	if len(Gender) != 4 || Gender["1"] != "男性" || Gender["2"] != "女性" {
		t.Errorf("Gender %v", Gender)
	}
	for _, c := range []string{MaritalUnmarried, MaritalMarried, MaritalWidowed, MaritalDivorced} {
		if Marital[c] == "" {
			t.Errorf("marital constant %s not in the table", c)
		}
	}
	if Ethnicity["01"] != "汉族" || Ethnicity["56"] != "基诺族" {
		t.Errorf("ethnicity anchors")
	}
	for code := range Education {
		if len(code) != 2 || code[0] < '1' || code[0] > '9' {
			t.Errorf("education code %q", code)
		}
	}
}
