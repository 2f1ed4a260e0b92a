package codes

import (
	"strings"
	"testing"
)

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

// TestEducationAliases: a short name stands for its stage's code (x0, a
// name ending in 教育) and for graduating from that stage (a code of the
// same stage whose name ends in 毕业); it is never a full name or a code
// itself, so it cannot shadow one.
func TestEducationAliases(t *testing.T) {
	tests := []struct {
		short string
		want  EducationAlias
	}{
		{"小学", EducationAlias{"80", "81"}},
		{"初中", EducationAlias{"70", "71"}},
		{"高中", EducationAlias{"60", "61"}},
		{"中专", EducationAlias{"40", "41"}},
		{"中职", EducationAlias{"40", ""}}, // 中专, 职高 or 技校
		{"大专", EducationAlias{"30", "31"}},
		{"专科", EducationAlias{"30", "31"}},
		{"本科", EducationAlias{"20", "21"}},
		{"大学本科", EducationAlias{"20", "21"}},
		{"硕士", EducationAlias{"10", "14"}},
		{"硕士研究生", EducationAlias{"10", "14"}},
		{"博士", EducationAlias{"10", "11"}},
		{"博士研究生", EducationAlias{"10", "11"}},
		{"研究生", EducationAlias{"10", ""}}, // a doctorate, a master's or a postgraduate class
	}
	for _, tc := range tests {
		if got, ok := EducationAliases[tc.short]; !ok || got != tc.want {
			t.Errorf("EducationAliases[%q] = %+v, %v; want %+v", tc.short, got, ok, tc.want)
		}
	}
	names := map[string]bool{}
	for _, name := range Education {
		names[name] = true
	}
	for short, a := range EducationAliases {
		if _, isCode := Education[short]; isCode || names[short] {
			t.Errorf("%s is a code or full name of the table", short)
		}
		if a.Stage == "" && a.Graduated == "" {
			t.Errorf("%s stands for no code", short)
		}
		if a.Stage != "" && (a.Stage[1] != '0' || !strings.HasSuffix(Education[a.Stage], "教育")) {
			t.Errorf("%s: stage %s (%s) is not a stage of GB/T 4658", short, a.Stage, Education[a.Stage])
		}
		if a.Graduated == "" {
			continue
		}
		if !strings.HasSuffix(Education[a.Graduated], "毕业") {
			t.Errorf("%s: graduated %s (%s) is not a graduation of GB/T 4658", short, a.Graduated, Education[a.Graduated])
		}
		if a.Stage != "" && a.Stage[0] != a.Graduated[0] {
			t.Errorf("%s: graduated %s is not of stage %s", short, a.Graduated, a.Stage)
		}
	}
}
