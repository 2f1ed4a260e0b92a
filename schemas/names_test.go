package schemas

import (
	"strings"
	"testing"
	"unicode"

	"github.com/pophub/pophub/schemas/citizenid"
)

// TestFixNameSeparators: pophub import and pophub cdc send a two-part
// name with the middle dot of the register and the ID card, whichever
// look-alike the clerk typed between its parts; a look-alike that joins
// no two parts (at an edge, beside a space, doubled) is left for the hub
// to refuse, and an ASCII full stop is replaced only between two Han
// characters, as a Latin name's initials keep theirs.
func TestFixNameSeparators(t *testing.T) {
	tests := []struct {
		name, in, want string
		n              int
	}{
		{"katakana middle dot", "阿依古丽・买买提", "阿依古丽·买买提", 1},
		{"bullet", "阿依古丽•买买提", "阿依古丽·买买提", 1},
		{"fullwidth full stop", "阿依古丽．买买提", "阿依古丽·买买提", 1},
		{"hyphenation point", "阿依古丽‧买买提", "阿依古丽·买买提", 1},
		{"halfwidth katakana middle dot", "阿依古丽･买买提", "阿依古丽·买买提", 1},
		{"bullet operator", "阿依古丽∙买买提", "阿依古丽·买买提", 1},
		{"dot operator", "阿依古丽⋅买买提", "阿依古丽·买买提", 1},
		{"three parts, two look-alikes", "买买提・艾力•阿不都热合曼", "买买提·艾力·阿不都热合曼", 2},
		{"a look-alike and the middle dot", "买买提・艾力·阿不都热合曼", "买买提·艾力·阿不都热合曼", 1},
		{"ASCII full stop between Han characters", "阿依古丽.买买提", "阿依古丽·买买提", 1},
		{"beyond the BMP", "𠮷・野", "𠮷·野", 1},
		{"the middle dot already", "阿依古丽·买买提", "阿依古丽·买买提", 0},
		{"initials", "J. Smith", "J. Smith", 0},
		{"ASCII full stop beside a Latin letter", "阿依古丽.M", "阿依古丽.M", 0},
		{"at the start", "・买买提", "・买买提", 0},
		{"at the end", "买买提・", "买买提・", 0},
		{"beside a space", "阿依古丽 ・买买提", "阿依古丽 ・买买提", 0},
		{"beside an ideographic space", "阿依古丽・\u3000买买提", "阿依古丽・\u3000买买提", 0},
		{"doubled", "阿依古丽・・买买提", "阿依古丽・・买买提", 0},
		{"beside the middle dot", "阿依古丽·・买买提", "阿依古丽·・买买提", 0},
		{"alone", "・", "・", 0},
		{"empty", "", "", 0},
		{"no separator", "张三", "张三", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, n := FixNameSeparators(tc.in)
			if got != tc.want || n != tc.n {
				t.Errorf("FixNameSeparators(%+q) = %+q, %d; want %+q, %d", tc.in, got, n, tc.want, tc.n)
			}
			if n > 0 && nameProblem(got) != "" {
				t.Errorf("FixNameSeparators(%+q) = %+q, which the hub refuses: %s", tc.in, got, nameProblem(got))
			}
		})
	}
}

// TestNameCharacterSets: the characters a name may not begin or end with
// are those citizenid.TrimTyped trims, with which pophub import reads
// every cell, so a name the importer sends is never refused as padded;
// each has a name in the reject. The invisible characters refused
// anywhere are Unicode's Bidi_Control and the zero-width space, word
// joiner and byte order mark, not the joiners and U+180E, which scripts
// need; the look-alikes of the middle dot are refused naming U+00B7,
// which is not one of them.
func TestNameCharacterSets(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r == 0x30000 {
			r = 0xE0000 // nothing between is space or format
		}
		c := string(r)
		if trimmed := citizenid.TrimTyped(c) == ""; trimmed && invisibleInName(r) == "" && edgeNames[r] == "" {
			t.Errorf("U+%04X: TrimTyped trims it, and it has no name for the reject", r)
		} else if !trimmed && edgeNames[r] != "" {
			t.Errorf("U+%04X: named as an edge character, but TrimTyped keeps it", r)
		}
		want := unicode.Is(unicode.Bidi_Control, r) || r == '\u200B' || r == '\u2060' || r == '\uFEFF'
		if got := invisibleInName(r) != ""; got != want {
			t.Errorf("U+%04X: refused as invisible: %v, want %v", r, got, want)
		}
	}
	for _, r := range []rune{'\u200C', '\u200D', '\u180E', '\u00B7'} {
		if p := nameProblem("张" + string(r) + "三"); p != "" {
			t.Errorf("张U+%04X三: refused (%s); scripts need it inside a name", r, p)
		}
	}
	for _, r := range []rune{'\u30FB', '\u2022', '\uFF0E', '\u2027', '\uFF65', '\u2219', '\u22C5'} {
		p := nameProblem("张" + string(r) + "三")
		if !strings.Contains(p, "U+00B7") || separatorLookalike(r) == "" {
			t.Errorf("张U+%04X三: %q; want it refused as a look-alike of U+00B7", r, p)
		}
	}
	if separatorLookalike(MiddleDot) != "" {
		t.Error("the middle dot is its own look-alike")
	}
}
