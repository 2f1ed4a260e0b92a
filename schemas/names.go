package schemas

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas/citizenid"
)

// A person's name is kept byte for byte as sent (never NFC- or
// width-folded: 𠮷 and 吉 are two names), so what the hub accepts decides
// whether two doors give one person one name. The rules here are those
// of data.name in hukou.registered and identity.corrected, the JSON
// Schema's $defs/name says the same (schemas/jsonschema tests that they
// agree), and pophub import and pophub cdc prepare a name with
// citizenid.TrimTyped and FixNameSeparators before the hub judges it.

// MiddleDot joins the parts of a two-part name (阿依古丽·买买提, as the
// register and the ID card print it: GB 2312 and GBK A1A4).
const MiddleDot = '\u00B7'

// PersonName reports whether the data field of an event type is a
// person's name, judged by the name rules (the JSON Schema's
// $defs/name): tax.business_registered's name is a business's, free
// text.
func PersonName(t Type, field string) bool {
	return field == "name" && (t == HukouRegistered || t == IdentityCorrected)
}

// FixNameSeparators returns name with every look-alike of the middle dot
// that stands between two parts of it replaced by MiddleDot, and how many
// it replaced. A look-alike is one the hub refuses in a name (U+30FB ・ of
// a Japanese input method and Word, U+2022 •, U+FF0E ．, U+2027 ‧, U+FF65
// ･, U+2219 ∙, U+22C5 ⋅, and U+3002 。, what a Chinese input method types
// for ".") or an ASCII full stop between two Han ideographs (a Latin
// name's initials keep theirs), which the hub refuses too. It stands between
// two parts when the characters on both sides of it are neither white
// space nor a separator: one at an edge, or doubled, is left for the hub
// to refuse, as no one can tell what was meant. pophub import and pophub
// cdc apply it to what clerks type; systems that send events are told,
// by the reject, to send U+00B7.
func FixNameSeparators(name string) (string, int) {
	if isASCII(name) || !strings.ContainsFunc(name, func(r rune) bool { return r == '.' || separatorLookalike(r) != "" }) {
		return name, 0
	}
	rs := []rune(name)
	n := 0
	for i := 1; i < len(rs)-1; i++ {
		r, prev, next := rs[i], rs[i-1], rs[i+1]
		part := func(r rune) bool { return !unicode.IsSpace(r) && !isSeparator(r) }
		switch {
		case !part(prev) || !part(next):
		case separatorLookalike(r) != "",
			r == '.' && hanIdeograph(prev) && hanIdeograph(next):
			rs[i] = MiddleDot
			n++
		}
	}
	if n == 0 {
		return name, 0
	}
	return string(rs), n
}

// isSeparator reports whether r is the middle dot or one typed for it.
func isSeparator(r rune) bool {
	return r == MiddleDot || r == '.' || separatorLookalike(r) != ""
}

// separatorLookalike names r when it is a character typed for the middle
// dot that is not it; most are outside GBK, so that a department system
// in GBK keeping the name would write ? for it. "" otherwise.
func separatorLookalike(r rune) string {
	switch r {
	case '\u30FB':
		return "katakana middle dot"
	case '\u2022':
		return "bullet"
	case '\uFF0E':
		return "fullwidth full stop"
	case '\u2027':
		return "hyphenation point"
	case '\uFF65':
		return "halfwidth katakana middle dot"
	case '\u2219':
		return "bullet operator"
	case '\u22C5':
		return "dot operator"
	case '\u3002':
		return "ideographic full stop"
	}
	return ""
}

// hanIdeograph reports whether r is a Han ideograph, between two of
// which an ASCII full stop stands for the middle dot: the CJK Unified
// Ideographs, Extension A and the compatibility ideographs of the Basic
// Multilingual Plane, the ranges the JSON Schema's $defs/name lists, and
// every Han character beyond it, which the schema cannot list alike with
// and without a regular expression engine's Unicode flag.
func hanIdeograph(r rune) bool {
	switch {
	case r >= 0x3400 && r <= 0x4DBF, r >= 0x4E00 && r <= 0x9FFF, r >= 0xF900 && r <= 0xFAFF:
		return true
	}
	return r > 0xFFFF && unicode.Is(unicode.Han, r)
}

// invisibleInName names r when it is a character that shows as nothing
// and that no name holds, or "" otherwise: a format character of Unicode
// (Cf: the zero-width space, word joiner and byte order mark, the soft
// hyphen that Word and web pages paste, the invisible operators, and the
// direction controls, which reorder what follows them on screen: ‮三张
// shows as 张三), and the Hangul fillers, which show as a blank ("ㅤㅤ")
// and are no part of a name written in Hangul syllables. The joiners
// U+200C and U+200D, and the Mongolian vowel separator U+180E, are not
// among them: Persian, Indic and Mongolian names need them between their
// letters (betweenOnly).
func invisibleInName(r rune) string {
	switch r {
	case '\u200C', '\u200D', '\u180E':
		return ""
	case '\u00AD':
		return "soft hyphen"
	case '\u200B':
		return "zero width space"
	case '\u2060':
		return "word joiner"
	case '\u2061':
		return "function application"
	case '\u2062':
		return "invisible times"
	case '\u2063':
		return "invisible separator"
	case '\u2064':
		return "invisible plus"
	case '\uFEFF':
		return "zero width no-break space, a byte order mark"
	case '\u061C':
		return "arabic letter mark"
	case '\u200E':
		return "left-to-right mark"
	case '\u200F':
		return "right-to-left mark"
	case '\u202A':
		return "left-to-right embedding"
	case '\u202B':
		return "right-to-left embedding"
	case '\u202C':
		return "pop directional formatting"
	case '\u202D':
		return "left-to-right override"
	case '\u202E':
		return "right-to-left override"
	case '\u2066':
		return "left-to-right isolate"
	case '\u2067':
		return "right-to-left isolate"
	case '\u2068':
		return "first strong isolate"
	case '\u2069':
		return "pop directional isolate"
	case '\u115F':
		return "hangul choseong filler"
	case '\u1160':
		return "hangul jungseong filler"
	case '\u3164':
		return "hangul filler"
	case '\uFFA0':
		return "halfwidth hangul filler"
	}
	if unicode.Is(unicode.Cf, r) {
		return "a format character"
	}
	return ""
}

// betweenOnly names r when it is a character that shows as nothing and
// that a name holds only between two characters, where it joins or
// separates letters: the joiners U+200C and U+200D, and the Mongolian
// vowel separator U+180E. At a name's edge, or alone, it is padding.
func betweenOnly(r rune) string {
	switch r {
	case '\u200C':
		return "zero width non-joiner"
	case '\u200D':
		return "zero width joiner"
	case '\u180E':
		return "mongolian vowel separator"
	}
	return ""
}

// edgeNames name the characters citizenid.TrimTyped trims from a value's
// edges that invisibleInName does not: Unicode's White_Space, and the
// joiners.
var edgeNames = map[rune]string{
	'\t': "tab", '\n': "line feed", '\v': "line tabulation", '\f': "form feed", '\r': "carriage return",
	' ': "space", '\u0085': "next line", '\u00A0': "no-break space", '\u1680': "ogham space mark",
	'\u2000': "en quad", '\u2001': "em quad", '\u2002': "en space", '\u2003': "em space",
	'\u2004': "three-per-em space", '\u2005': "four-per-em space", '\u2006': "six-per-em space",
	'\u2007': "figure space", '\u2008': "punctuation space", '\u2009': "thin space", '\u200A': "hair space",
	'\u2028': "line separator", '\u2029': "paragraph separator", '\u202F': "narrow no-break space",
	'\u205F': "medium mathematical space", '\u3000': "ideographic space",
	'\u200C': "zero width non-joiner", '\u200D': "zero width joiner",
}

// codePoint writes r as U+XXXX with its name, if it has one here.
func codePoint(r rune) string {
	name := edgeNames[r]
	if name == "" {
		name = invisibleInName(r)
	}
	if name == "" {
		name = betweenOnly(r)
	}
	if name == "" {
		name = separatorLookalike(r)
	}
	if name == "" {
		return fmt.Sprintf("U+%04X", r)
	}
	return fmt.Sprintf("U+%04X (%s)", r, name)
}

// nameProblem says what is wrong with a name that passed the checks of
// length, control characters, garbling and private use (see
// validator.name), or "" if nothing is. A name is refused when:
//   - it is blank: it holds nothing but what citizenid.TrimTyped trims
//     (as "　　" of a fixed-width field a GBK-era system padded), invisible
//     characters and joiners ("ㅤㅤ" of Hangul fillers);
//   - it is padded: it begins or ends with what TrimTyped trims (white
//     space, U+3000 and U+00A0 among it; a byte order mark; a joiner), or
//     with U+180E, so that " 张三" and "张三　" would be names other than
//     张三, which pophub import sends for the same cells;
//   - it holds an invisible character (invisibleInName) anywhere;
//   - it holds a look-alike of the middle dot (separatorLookalike), or an
//     ASCII full stop between two Han ideographs (阿依古丽.买买提), which
//     pophub import and pophub cdc send as 阿依古丽·买买提: kept from the
//     other doors, one person would have two names.
func nameProblem(s string) string {
	trimmed := citizenid.TrimTyped(s)
	if !strings.ContainsFunc(trimmed, func(r rune) bool { return invisibleInName(r) == "" && betweenOnly(r) == "" }) {
		r, _ := utf8.DecodeRuneInString(s)
		return fmt.Sprintf("is blank: it holds nothing but white space or invisible characters, beginning with %s", codePoint(r))
	}
	if r, _ := utf8.DecodeRuneInString(s); !strings.HasPrefix(s, trimmed) || betweenOnly(r) != "" {
		return fmt.Sprintf("begins with %s: remove the padding", codePoint(r))
	}
	if r, _ := utf8.DecodeLastRuneInString(s); trimmed != s || betweenOnly(r) != "" {
		return fmt.Sprintf("ends with %s: remove the padding", codePoint(r))
	}
	for _, r := range s {
		if invisibleInName(r) != "" {
			return fmt.Sprintf("holds %s, an invisible character: no name holds one (it shows as nothing, or reorders what follows, so the name would look like another and never match it); retype the name without it", codePoint(r))
		}
	}
	for _, r := range s {
		if separatorLookalike(r) != "" {
			return fmt.Sprintf("holds %c, %s, a look-alike of the middle dot: the parts of a name are joined by the middle dot U+00B7 (·), as the register and the ID card print it; use U+00B7", r, codePoint(r))
		}
	}
	if fullStopBetweenHan(s) {
		return "holds a full stop U+002E (.) between two Han characters: the parts of a name are joined by the middle dot U+00B7 (·), as the register and the ID card print it; use U+00B7"
	}
	return ""
}

// fullStopBetweenHan reports whether an ASCII full stop in s stands
// between two Han ideographs.
func fullStopBetweenHan(s string) bool {
	for i := strings.IndexByte(s, '.'); i >= 0; {
		prev, _ := utf8.DecodeLastRuneInString(s[:i])
		next, _ := utf8.DecodeRuneInString(s[i+1:])
		if hanIdeograph(prev) && hanIdeograph(next) {
			return true
		}
		j := strings.IndexByte(s[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// isASCII reports whether s holds only ASCII characters.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
