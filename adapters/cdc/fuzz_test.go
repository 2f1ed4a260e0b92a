package cdc

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseList: a PostgreSQL array literal of any elements, as
// array_out prints it (with its bounds when the lower one is not 1),
// reads back as the elements.
func FuzzParseList(f *testing.F) {
	f.Add("a", "b c", "", int8(1))
	f.Add(`x"y`, `\`, "NULL", int8(0))
	f.Add("pension", "medical", "injury", int8(-3))
	f.Fuzz(func(t *testing.T, a, b, c string, lower int8) {
		els := []string{a, b, c}
		for _, e := range els {
			if !utf8.ValidString(e) || strings.ContainsRune(e, 0) {
				return // PostgreSQL text is UTF-8 without NUL
			}
		}
		lit := pgArray(els)
		if lower != 1 {
			lit = fmt.Sprintf("[%d:%d]=", lower, int(lower)+len(els)-1) + lit
		}
		got, err := parseList(lit)
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		if len(got) != len(els) {
			t.Fatalf("%s: %q", lit, got)
		}
		for i := range got {
			if got[i] != els[i] {
				t.Fatalf("%s: %q, want %q", lit, got, els)
			}
		}
	})
}

// pgArray writes elements as PostgreSQL's array_out does.
func pgArray(els []string) string {
	out := "{"
	for i, e := range els {
		if i > 0 {
			out += ","
		}
		q := e == "" || strings.EqualFold(e, "NULL")
		for _, r := range e {
			if strings.ContainsRune("{},\"\\ \t\n\r\v\f", r) {
				q = true
			}
		}
		if !q {
			out += e
			continue
		}
		out += `"`
		for _, r := range e {
			if r == '"' || r == '\\' {
				out += `\`
			}
			out += string(r)
		}
		out += `"`
	}
	return out + "}"
}
