package citizenid

import (
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// Mask masks a string that ought to be a citizen ID but has not been
// validated (a Kafka record key, a path segment, a line of an import
// file), for logs and traces: the first four and the last four characters
// stay and ten '*' stand for the rest, e.g. 2301**********1234, the same as
// ID.Masked for a valid ID. It is safe on any input:
//
//   - fewer than 15 characters (not even a legacy 15-digit number) give
//     "****", so a short fragment is never shown whole;
//   - at most eight characters of the input are shown, and the output
//     length does not depend on the input's;
//   - a kept character that is not an ASCII letter or digit becomes '*',
//     so no control character, quote or newline reaches a log line, and
//     the output is always valid UTF-8.
func Mask(s string) string {
	n := utf8.RuneCountInString(s)
	if n < 15 {
		return "****"
	}
	out := make([]byte, 0, 18)
	i := 0
	for _, r := range s {
		if i == 4 {
			out = append(out, "**********"...)
		}
		if i < 4 || i >= n-4 {
			if r < utf8.RuneSelf && (r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
				out = append(out, byte(r))
			} else {
				out = append(out, '*')
			}
		}
		i++
	}
	return string(out)
}

// MaskText masks every run of 15 or more digits in free text (a trailing X
// or x included), the shape of a citizen ID valid or not, legacy or not,
// as its first four and last four characters around asterisks, e.g.
// 2301**********1230. It guards what must show text that may carry an ID
// despite the rule that none should: error messages in problem details and
// logs, dead-letter reasons, reports. Shorter numbers (ports, offsets,
// region codes) and text without such runs are returned unchanged.
func MaskText(s string) string {
	var b strings.Builder
	last := 0 // s[:last] is already in b
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j < len(s) && (s[j] == 'X' || s[j] == 'x') {
			j++
		}
		if j-i >= 15 {
			b.WriteString(s[last:i])
			b.WriteString(s[i : i+4])
			b.WriteString(strings.Repeat("*", j-i-8))
			b.WriteString(s[j-4 : j])
			last = j
		}
		i = j
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// Unparsed is a string that should be a citizen ID but may not be one. Like
// ID it masks itself (with Mask) under fmt and slog, so code that logs a
// rejected key or a raw path segment cannot leak it. Convert with
// string(u) where the full value is needed.
type Unparsed string

// String masks.
func (u Unparsed) String() string { return Mask(string(u)) }

// GoString masks in %#v output too.
func (u Unparsed) GoString() string { return fmt.Sprintf("citizenid.Unparsed(%q)", Mask(string(u))) }

// Format masks under every fmt verb (see ID.Format).
func (u Unparsed) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, u.GoString())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), Mask(string(u)))
}

// LogValue masks in structured logs.
func (u Unparsed) LogValue() slog.Value { return slog.StringValue(Mask(string(u))) }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
