package schemas

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/pophub/pophub/schemas/citizenid"
)

// TestFixNameSeparators: pophub import and pophub cdc send a two-part
// name with the middle dot of the register and the ID card, whichever
// look-alike the clerk typed between its parts; a look-alike that joins
// no two parts (at an edge, beside a space, doubled) is left for the hub
// to refuse, and an ASCII full stop is replaced only between two Han
// characters, as a Latin name's initials keep theirs. Whatever it
// replaces, the hub refuses as typed: a name sent through the gateway or
// Publish is the same name as one sent through import or cdc, or none.
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
		{"ideographic full stop", "阿依古丽。买买提", "阿依古丽·买买提", 1},
		{"three parts, two look-alikes", "买买提・艾力•阿不都热合曼", "买买提·艾力·阿不都热合曼", 2},
		{"a look-alike and the middle dot", "买买提・艾力·阿不都热合曼", "买买提·艾力·阿不都热合曼", 1},
		{"ASCII full stop between Han characters", "阿依古丽.买买提", "阿依古丽·买买提", 1},
		{"beyond the BMP", "𠮷・野", "𠮷·野", 1},
		{"ASCII full stop beside Han beyond the BMP", "𠮷.野", "𠮷·野", 1},
		{"ASCII full stop between compatibility ideographs", "豈.更", "豈·更", 1},
		{"ASCII full stop beside a Han radical", "⺀.买", "⺀.买", 0},
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
			if n > 0 && nameProblem(tc.in) == "" {
				t.Errorf("FixNameSeparators(%+q) = %+q, but the hub keeps %+q as sent: one person, two names by door", tc.in, got, tc.in)
			}
		})
	}
}

// TestNameCharacterSets: the characters a name may not begin or end with
// are those citizenid.TrimTyped trims, with which pophub import reads
// every cell, so a name the importer sends is never refused as padded,
// and U+180E; each has a name in the reject. The invisible characters
// refused anywhere are Unicode's format characters (Cf) and the Hangul
// fillers, not the joiners and U+180E, which scripts need between
// letters; the look-alikes of the middle dot are refused naming U+00B7,
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
		want := unicode.Is(unicode.Cf, r) && betweenOnly(r) == "" || r == '\u115F' || r == '\u1160' || r == '\u3164' || r == '\uFFA0'
		if got := invisibleInName(r) != ""; got != want {
			t.Errorf("U+%04X: refused as invisible: %v, want %v", r, got, want)
		}
	}
	for _, r := range []rune{'\u200C', '\u200D', '\u180E', '\u00B7'} {
		if p := nameProblem("张" + string(r) + "三"); p != "" {
			t.Errorf("张U+%04X三: refused (%s); scripts need it inside a name", r, p)
		}
	}
	for _, r := range []rune{'\u200C', '\u200D', '\u180E'} {
		for _, name := range []string{string(r), string(r) + "张三", "张三" + string(r)} {
			if p := nameProblem(name); p == "" {
				t.Errorf("%+q: kept; U+%04X is allowed only between characters", name, r)
			}
		}
	}
	for _, r := range []rune{'\u30FB', '\u2022', '\uFF0E', '\u2027', '\uFF65', '\u2219', '\u22C5', '\u3002'} {
		p := nameProblem("张" + string(r) + "三")
		if !strings.Contains(p, "U+00B7") || separatorLookalike(r) == "" {
			t.Errorf("张U+%04X三: %q; want it refused as a look-alike of U+00B7", r, p)
		}
	}
	if separatorLookalike(MiddleDot) != "" {
		t.Error("the middle dot is its own look-alike")
	}
}

// decodeName sends name in an identity.corrected and returns the hub's
// verdict.
func decodeName(t *testing.T, name string) error {
	t.Helper()
	return checkedAlike(t, Event{ID: "ps-2", Source: PublicSecurity, Type: IdentityCorrected, Subject: validID,
		Time: fixedNow.Add(-time.Hour), Payload: &IdentityCorrectedData{Name: name}})
}

// TestNamesShowingAsAnotherOrAsNothingAreRefused: a name that shows as
// 张三 on screen but holds a character that shows as nothing never
// matches 张三. The soft hyphen (Word and web pages paste it), the
// invisible operators, the Hangul fillers (a name of two is blank on every
// screen) and U+180E at a name's edge or alone are refused as the
// zero-width space is, by every door.
func TestNamesShowingAsAnotherOrAsNothingAreRefused(t *testing.T) {
	for _, name := range []string{
		"张\u00ad三",     // soft hyphen
		"张\u2061三",     // function application
		"张\u2063三",     // invisible separator
		"张\u2064三",     // invisible plus
		"\u3164\u3164", // Hangul filler: a blank name
		"\uffa0",       // halfwidth Hangul filler
		"张三\u115f",     // Hangul choseong filler
		"\u1160张三",     // Hangul jungseong filler
		"김\u3164철수",    // a filler inside a name in Hangul
		"张三\u180e",     // Mongolian vowel separator at the end
		"\u180e张三",     // ... at the start
		"\u180e",       // ... alone
		"张三\U000E0001", // language tag
	} {
		if err := decodeName(t, name); err == nil {
			t.Errorf("name %+q (shows as %q) accepted: it shows as another name, or as nothing", name, name)
		}
	}
	for _, name := range []string{"ᠪᠠᠲᠤ\u180eᠶᠠ", "김철수", "葛\U000E0100"} {
		if err := decodeName(t, name); err != nil {
			t.Errorf("name %+q refused: %v", name, err)
		}
	}
}

// TestFullStopsBetweenHanAreRefused: pophub import and pophub cdc send
// 阿依古丽.买买提 and 阿依古丽。买买提 (。 is what a Chinese input method
// types for ".") as 阿依古丽·买买提; the hub refuses both as sent through
// the other doors, naming U+00B7, so one person has one name whichever
// door the name came through. Latin initials keep their full stops.
func TestFullStopsBetweenHanAreRefused(t *testing.T) {
	for _, typed := range []string{"阿依古丽.买买提", "阿依古丽。买买提", "𠮷.野", "买买提·艾力.阿不都", "。", "张三。"} {
		err := decodeName(t, typed)
		if err == nil || !strings.Contains(err.Error(), "U+00B7") {
			t.Errorf("%+q: %v; want it refused naming U+00B7", typed, err)
		}
		if fixed, n := FixNameSeparators(typed); n > 0 && decodeName(t, fixed) != nil {
			t.Errorf("%+q: import and cdc send %+q, which the hub refuses", typed, fixed)
		}
	}
	for _, name := range []string{"J. R. Smith", "阿依古丽.M", "王.J", "张 .三"} {
		if err := decodeName(t, name); err != nil {
			t.Errorf("%+q refused: %v", name, err)
		}
	}
}
