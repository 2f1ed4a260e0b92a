package codes

import "testing"

func TestUSCC(t *testing.T) {
	c, ok := USCCCheckChar("91350100M000100Y4")
	if !ok {
		t.Fatal("alphabet rejected")
	}
	valid := "91350100M000100Y4" + string(c)
	tests := []struct {
		in   string
		want bool
	}{
		{valid, true},
		{valid[:17] + "Z", false}, // Z is not in the alphabet
		{valid[:17], false},
		{"91350100M000100I4" + string(c), false}, // I is not in the alphabet
	}
	for _, tc := range tests {
		if got := ValidUSCC(tc.in); got != tc.want {
			t.Errorf("ValidUSCC(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	// A published example code: 91350100M000100Y43 (GB 32100 annex).
	if !ValidUSCC("91350100M000100Y43") {
		t.Error("the standard's example code is rejected")
	}
}

func TestEducationRank(t *testing.T) {
	order := []string{"11", "14", "21", "31", "41", "61", "71", "81", "90"}
	for i := 1; i < len(order); i++ {
		if EducationRank(order[i-1]) >= EducationRank(order[i]) {
			t.Errorf("%s does not rank above %s", order[i-1], order[i])
		}
	}
	if len(Ethnicity) != 58 {
		t.Errorf("%d ethnicity codes, want 56 groups + 97 + 98", len(Ethnicity))
	}
}
