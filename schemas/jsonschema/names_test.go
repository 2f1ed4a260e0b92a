package jsonschema

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/pophub/pophub/schemas"
)

// decodeName decodes an identity.corrected carrying name and returns the
// name the hub would keep, or the reject.
func decodeName(name string) (string, error) {
	b, _ := json.Marshal(map[string]string{"name": name})
	ev, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(schemas.PublicSecurity), Value: envelope(schemas.IdentityCorrected, b), Now: decodeNow})
	if err != nil {
		return "", err
	}
	return ev.Payload.(*schemas.IdentityCorrectedData).Name, nil
}

// TestBlankPaddedAndInvisibleNamesAreRefused: a name of nothing but
// spaces (ideographic U+3000, as a GBK-era system pads a fixed-width
// field, or ASCII), one padded at its edges, or one carrying a zero-width
// space, byte order mark or bidi override pasted from a web page or chat,
// is refused on data.name by the hub and by the JSON Schema alike. pophub
// import trims such edges and refuses a blank cell; without the same rule
// at the hub, the gateway, Publish, pophub publish and pophub cdc would
// store "张\u200b三", which shows as 张三 and never matches it, and a
// later correction to 张三 would show in history as a change of name.
// The joiners U+200C and U+200D, and U+180E, inside a name are kept:
// scripts need them.
func TestBlankPaddedAndInvisibleNamesAreRefused(t *testing.T) {
	v := validator(t)
	for _, tc := range []struct {
		name    string
		refused string // what the reject's detail says, "" if kept
	}{
		{"\u3000\u3000", "blank"},
		{"   ", "blank"},
		{"\u200b", "blank"},
		{"\u00a0", "blank"},
		{" 张三", "begins with U+0020 (space)"},
		{"张三\u3000", "ends with U+3000 (ideographic space)"},
		{"\u00a0张三", "begins with U+00A0 (no-break space)"},
		{"张三\u2003", "ends with U+2003"},
		{"\ufeff张三", "U+FEFF (zero width no-break space"},
		{"\u200d张三", "begins with U+200D (zero width joiner)"},
		{"张\u200b三", "holds U+200B (zero width space), an invisible character"},
		{"张\u2060三", "holds U+2060 (word joiner)"},
		{"张\ufeff三", "holds U+FEFF"},
		{"\u202e三张", "U+202E (right-to-left override)"},
		{"张\u00ad三", "holds U+00AD (soft hyphen)"},
		{"张\u2063三", "holds U+2063 (invisible separator)"},
		{"\u3164\u3164", "blank"},
		{"张三\u115f", "U+115F (hangul choseong filler)"},
		{"张三\u180e", "ends with U+180E (mongolian vowel separator)"},
		{"\u180e", "blank"},
		{"阿依古丽.买买提", "full stop U+002E (.) between two Han characters"},
		{"阿依古丽。买买提", "U+3002 (ideographic full stop)"},
		{"张三\u202c", "U+202C"},
		{"张\u200e三", "holds U+200E (left-to-right mark)"},
		{"\u061c张三", "U+061C (arabic letter mark)"},
		{"张\u2066三\u2069", "holds U+2066"},
		{"张 三", ""},           // a space inside: Latin and some transliterated names
		{"John Smith", ""},    // ASCII space inside
		{"ᠪᠠᠲᠤ\u180eᠶᠠ", ""},  // Mongolian vowel separator, which the script needs
		{"क्\u200dष", ""},     // zero width joiner inside
		{"می\u200cخواهم", ""}, // zero width non-joiner inside
		{"阿依古丽·买买提", ""},      // the middle dot U+00B7
		{"𠮷", ""},             // one character beyond the BMP
		{"A", ""},             // one character
		{"𠮷野家", ""},           // beyond the BMP, first
		{"野家𠮷", ""},           // beyond the BMP, last
		{"买买提·艾力·阿不都热合曼", ""}, // two separators
		{"J. R. Smith", ""},   // initials
		{"阿依古丽.M", ""},        // a full stop beside a Latin letter
	} {
		got, err := decodeName(tc.name)
		b, _ := json.Marshal(map[string]string{"name": tc.name})
		schemaErr := v.ValidateData(schemas.IdentityCorrected, b)
		if tc.refused == "" {
			if err != nil || got != tc.name {
				t.Errorf("name %+q: the hub keeps %+q (err %v); want it kept as sent", tc.name, got, err)
			}
			if schemaErr != nil {
				t.Errorf("name %+q: the JSON Schema refuses it: %v", tc.name, schemaErr)
			}
			continue
		}
		if err == nil || schemas.ReasonOf(err) != schemas.ReasonInvalidData || !strings.Contains(err.Error(), "data.name") || !strings.Contains(err.Error(), tc.refused) {
			t.Errorf("name %+q: the hub keeps %+q (err %v); want it refused on data.name saying %q", tc.name, got, err, tc.refused)
		}
		if schemaErr == nil {
			t.Errorf("name %+q: the JSON Schema accepts it", tc.name)
		}
	}
}

// TestLookalikeSeparatorsAreRefused: a minority name's parts are joined
// by the middle dot U+00B7 (阿依古丽·买买提, GBK A1A4, as the register
// and ID card print it). Clerks type it with whatever their input method
// or font gives: U+30FB ・ (Japanese IME, Word), U+2022 •, U+FF0E ．,
// U+2027 ‧, U+FF65 ･, U+2219 ∙, U+22C5 ⋅, U+3002 。 (a Chinese input
// method's "."). Kept as sent, one person would
// have as many names as separators, and all but U+FF0E are outside GBK:
// a GBK system taking the golden record would store ?, which the hub
// refuses when that system sends the name back. So the hub and the JSON
// Schema refuse each, naming it and the middle dot to use (pophub import
// and pophub cdc replace it before sending: schemas.FixNameSeparators).
func TestLookalikeSeparatorsAreRefused(t *testing.T) {
	v := validator(t)
	for _, sep := range []string{"\u30fb", "\u2022", "\uff0e", "\u2027", "\uff65", "\u2219", "\u22c5", "\u3002"} {
		for _, name := range []string{"阿依古丽" + sep + "买买提", sep + "买买提", "买买提" + sep} {
			got, err := decodeName(name)
			code := fmt.Sprintf("U+%04X", []rune(sep)[0])
			if err == nil || !strings.Contains(err.Error(), "data.name") || !strings.Contains(err.Error(), "U+00B7") || !strings.Contains(err.Error(), code) {
				t.Errorf("name %+q: the hub keeps %+q (err %v); want a reject on data.name naming %s and U+00B7", name, got, err, code)
			}
			b, _ := json.Marshal(map[string]string{"name": name})
			if v.ValidateData(schemas.IdentityCorrected, b) == nil {
				t.Errorf("name %+q: the JSON Schema accepts it", name)
			}
			fixed, n := schemas.FixNameSeparators(name)
			if name == "阿依古丽"+sep+"买买提" && (fixed != "阿依古丽·买买提" || n != 1) {
				t.Errorf("FixNameSeparators(%+q) = %+q, %d; want 阿依古丽·买买提, 1", name, fixed, n)
			}
			if name != "阿依古丽"+sep+"买买提" && (fixed != name || n != 0) {
				t.Errorf("FixNameSeparators(%+q) = %+q, %d; want it unchanged: a separator joins two parts", name, fixed, n)
			}
		}
	}
}

// TestNameRulesAgreeOnEveryCharacter: the hub and the JSON Schema's
// $defs/name judge alike every character of the Basic Multilingual Plane
// and of the supplementary planes names use, alone in a name, at its
// start, at its end and inside it, and beside a full stop next to a Han
// ideograph: a department that validates with the schema sends nothing
// the hub refuses as a name. The documented differences
// (TestKnownDifferences) are left out: the private-use planes 15 and 16,
// the format characters beyond the BMP, and a full stop beside a Han
// ideograph beyond the BMP, which the hub refuses and the schema cannot
// say alike with and without a regular expression engine's Unicode flag.
func TestNameRulesAgreeOnEveryCharacter(t *testing.T) {
	v := validator(t)
	var runes []rune
	for r := rune(0); r <= 0xFFFF; r++ {
		if r < 0xD800 || r > 0xDFFF {
			runes = append(runes, r)
		}
	}
	runes = append(runes, 0x10000, 0x1F600, 0x20BB7, 0x2A6D6, 0x30000, 0xE0100, 0xE01EF)
	if testing.Short() {
		runes = slices.DeleteFunc(runes, func(r rune) bool {
			return r > 0x7F && r%7 != 0 && !unicode.In(r, unicode.White_Space, unicode.Cf, unicode.Han, unicode.Hangul)
		})
	}
	disagree := 0
	for _, r := range runes {
		c := string(r)
		names := []string{c, c + "张", "张" + c, "张" + c + "三"}
		if !(r > 0xFFFF && unicode.Is(unicode.Han, r)) {
			names = append(names, c+".张", "张."+c)
		}
		for _, name := range names {
			b, err := json.Marshal(map[string]string{"name": name})
			if err != nil {
				t.Fatal(err)
			}
			schemaOK := v.ValidateData(schemas.IdentityCorrected, b) == nil
			goOK := decodeData(schemas.IdentityCorrected, b) == nil
			if schemaOK != goOK {
				if disagree++; disagree <= 20 {
					t.Errorf("name %+q: the JSON Schema accepts it: %v, the hub: %v", name, schemaOK, goOK)
				}
			}
		}
	}
	if disagree > 20 {
		t.Errorf("…and %d more", disagree-20)
	}
}

// TestPersonNameFieldsAreTheSchemas: the fields schemas.PersonName calls
// a person's name, which pophub import and pophub cdc prepare with
// schemas.FixNameSeparators, are those whose schema is $defs/name.
func TestPersonNameFieldsAreTheSchemas(t *testing.T) {
	n := 0
	for _, typ := range schemas.Types() {
		s := readDataSchema(t, typ)
		for prop := range s.Properties {
			isName := s.kindOf(prop) == "name"
			if isName {
				n++
			}
			if got := schemas.PersonName(typ, prop); got != isName {
				t.Errorf("%s.%s: PersonName = %v, the schema's $defs/name: %v", typ, prop, got, isName)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d person-name fields, want 2 (hukou.registered and identity.corrected)", n)
	}
}
