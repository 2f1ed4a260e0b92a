package citizenid

import (
	"fmt"
	"log/slog"
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
