package citizenid

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
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

// MaskText masks the citizen IDs in free text, legacy or not, as their
// first four and last four characters around asterisks, e.g.
// 2301**********1230. It guards what must show text that may carry an ID
// despite the rule that none should: error messages in problem details and
// logs, dead-letter reasons, reports, the declared purposes of the audit
// trail. It recognises
//
//   - every unbroken run of 15 or more digits, a trailing X or x included,
//     valid or not: a mistyped ID is still personal data, and a run that
//     long is rarely anything else — but for a zero-padded counter (a run
//     of more than 18 digits, fewer than 15 of them after its leading
//     zeros; see zeroPadded);
//   - the written forms of an ID: 18 characters (the last may be X) in
//     groups of 6-8-4, 6-4-4-4, 6-4-2-2-4, 6-8-3-1, 6-12, 4-4-4-4-2 or
//     10-2-2-4, and 15 digits in groups of 6-6-3, each group parted from
//     the next by one to three of '-', ' ', '.', '/', '_', an en or em
//     dash (or their full-width forms, or the ideographic space),
//     when the digits are a plausible ID (plausibleID: the MOD 11-2 check
//     character and a real birth date; a real YYMMDD date for 15 digits).
//     Short groups of digits are what other numbers are made of, so
//     without that test these groupings would mask region codes followed
//     by address codes ("230102 230102001001", as %v prints a []string),
//     a []int64 of offsets, region-date-serial case numbers
//     ("230102-2026-12-04-0001"), which are no IDs;
//   - full-width digits and Ｘ/ｘ, as Chinese input methods type them,
//     alone or mixed with ASCII ones (unbroken, they are a run as above).
//
// A masked ID is written in ASCII without its separators, so that every
// form of one ID masks alike. Other numbers are left alone: phone
// numbers (11 digits, grouped 3-4-4 or not), dates, case numbers, ports,
// offsets, region and address codes, separated groups of 15 or 18 digits
// that fail the test above (about one grouping in eleven passes the check
// character by chance and is masked too). Names and other personal data
// in the text are not recognised (no code can do that reliably).
func MaskText(s string) string {
	var b strings.Builder
	var buf [8]group
	last := 0 // s[:last] is already in b
	for i := 0; i < len(s); {
		if _, ok := digitAt(s, i); !ok {
			i++
			continue
		}
		chain, end := scanGroups(s, i, buf[:0])
		for k := 0; k < len(chain); {
			n := matchWritten(s, chain[k:])
			if n > 0 && inPath(s, chain[k].start, chain[k+n-1].end) {
				n = 0
			}
			if n == 0 {
				if chain[k].n < 15 || zeroPadded(s[chain[k].start:chain[k].end]) {
					k++
					continue
				}
				n = 1 // a run of 15 digits or more
			}
			from, to := chain[k].start, chain[k+n-1].end
			b.WriteString(s[last:from])
			b.WriteString(maskSpan(s[from:to]))
			last = to
			k += n
		}
		i = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// zeroPadded reports a run of more than 18 digits that is zero padding
// before fewer than 15 digits: a counter written zero-padded, as the
// memdb store names its log files (wal-00000000000000000002.log), which
// an operator must be able to read in an error. What follows the zeros
// is too short to be an ID, valid or mistyped, legacy or not; a run with
// 15 digits or more after its zeros (an ID padded to a fixed width) is
// masked.
func zeroPadded(run string) bool {
	chars := spanChars(run)
	return len(chars) > 18 && len(strings.TrimLeft(string(chars), "0")) < 15
}

// inPath reports whether the written form s[from:to] is parted by '/',
// '_' or '.' and stands in a path or a file name: right after a '/',
// '\\' or '_', or right before a '/', a '\\' that starts no escape (\",
// \n in quoted text), or a '.' or '_' and a letter or digit (an
// extension, the rest of a name). Region, date and sequence make paths
// and batch names ("imports/230102/20260101/0009.csv") that pass the
// check character about once in eleven; an ID written with those
// separators stands alone ("id 230102.19851021.0103", "No.230102…", a
// quoted "\"230102.19851021.0103\"").
func inPath(s string, from, to int) bool {
	if !strings.ContainsAny(s[from:to], "/_.／＿．") {
		return false
	}
	if from > 0 {
		switch s[from-1] {
		case '/', '\\', '_':
			return true
		}
	}
	if to < len(s) {
		switch s[to] {
		case '/':
			return true
		case '\\':
			return !(to+1 < len(s) && strings.IndexByte(`"'nrtu`, s[to+1]) >= 0)
		case '.', '_':
			return to+1 < len(s) && isAlnum(s[to+1])
		}
	}
	return false
}

func isAlnum(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// group is a run of digits in free text, with the X that may end it:
// s[start:end], n characters. A group that is a lone X has n == 1.
type group struct {
	start, end int
	n          int
	x          bool // ends with X or x
}

// writtenForms are the groupings of an ID MaskText recognises, as the
// number of characters of each group.
var writtenForms = [][]int{
	{6, 8, 4},
	{6, 4, 4, 4},
	{6, 4, 2, 2, 4},
	{6, 8, 3, 1},
	{6, 12},
	{4, 4, 4, 4, 2},
	{10, 2, 2, 4}, // the birth date written as a date: 2301021990-01-01-1230
	{6, 6, 3},     // legacy 15 digits
}

// matchWritten returns how many groups of s at the head of chain form an
// ID in one of writtenForms, or 0. Only the last group may end with X, and
// only an 18-character form may have one; the digits joined must be a
// plausibleID.
func matchWritten(s string, chain []group) int {
forms:
	for _, f := range writtenForms {
		if len(f) > len(chain) {
			continue
		}
		total := 0
		for j, want := range f {
			g := chain[j]
			if g.n != want || g.x && (j < len(f)-1) {
				continue forms
			}
			total += want
		}
		if chain[len(f)-1].x && total != 18 {
			continue
		}
		if !plausibleID(spanChars(s[chain[0].start:chain[len(f)-1].end])) {
			continue
		}
		return len(f)
	}
	return 0
}

// scanGroups appends to chain the groups that start at s[i] (a digit),
// each parted from the next by exactly one separator, and returns them
// with the end of the last. An X ends the chain; a lone X after a
// separator is a group of its own (6-8-3-1).
func scanGroups(s string, i int, chain []group) ([]group, int) {
	for {
		g := group{start: i}
		for {
			if _, ok := digitAt(s, i); !ok {
				break
			}
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w
			g.n++
		}
		if w, ok := xAt(s, i); ok {
			i += w
			g.n++
			g.x = true
		}
		g.end = i
		chain = append(chain, g)
		if g.x {
			return chain, i
		}
		w, ok := separatorAt(s, i)
		if !ok {
			return chain, i
		}
		if _, ok := digitAt(s, i+w); ok {
			i += w
			continue
		}
		if xw, ok := xAt(s, i+w); ok && !wordAt(s, i+w+xw) {
			chain = append(chain, group{start: i + w, end: i + w + xw, n: 1, x: true})
			return chain, i + w + xw
		}
		return chain, i
	}
}

// plausibleID reports whether the characters of a written form (ASCII
// digits, the last of 18 perhaps X or x) could be a citizen ID: 18 with
// the MOD 11-2 check character (in either case: a lower-case x is still
// someone's ID) and a birth date Parse would take, or a legacy 15 with a
// real YYMMDD birth date (of the 1900s, as Upgrade15 reads it). The
// province is not asked for, to err on the side of masking.
func plausibleID(chars []byte) bool {
	switch len(chars) {
	case 18:
		check := chars[17]
		if check == 'x' {
			check = 'X'
		}
		if CheckChar(string(chars[:17])) != check {
			return false
		}
		birth, ok := parseDate(string(chars[6:14]))
		return ok && !birth.After(Today(time.Now()))
	case 15:
		_, ok := parseDate("19" + string(chars[6:12]))
		return ok
	}
	return false
}

// spanChars is the characters of an ID found in free text (its groups and
// separators), in ASCII without the separators.
func spanChars(span string) []byte {
	chars := make([]byte, 0, 18)
	for i := 0; i < len(span); {
		r, w := utf8.DecodeRuneInString(span[i:])
		i += w
		if d, ok := digitValue(r); ok {
			chars = append(chars, d)
		} else if r == 'X' || r == 'Ｘ' {
			chars = append(chars, 'X')
		} else if r == 'x' || r == 'ｘ' {
			chars = append(chars, 'x')
		}
	}
	return chars
}

// maskSpan masks one ID found in free text (its groups and separators):
// the first and last four of its characters in ASCII around one '*' for
// each character between them.
func maskSpan(span string) string {
	chars := spanChars(span)
	n := len(chars)
	return string(chars[:4]) + strings.Repeat("*", n-8) + string(chars[n-4:])
}

// digitAt reports whether s[i:] starts with an ASCII or full-width digit.
func digitAt(s string, i int) (byte, bool) {
	if i >= len(s) {
		return 0, false
	}
	if s[i] < utf8.RuneSelf {
		return s[i], isDigit(s[i])
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return digitValue(r)
}

// digitValue is the ASCII digit of an ASCII or full-width digit.
func digitValue(r rune) (byte, bool) {
	switch {
	case '0' <= r && r <= '9':
		return byte(r), true
	case '０' <= r && r <= '９':
		return byte('0' + r - '０'), true
	}
	return 0, false
}

// xAt returns the width of the X, x, Ｘ or ｘ s[i:] starts with.
func xAt(s string, i int) (int, bool) {
	if i >= len(s) {
		return 0, false
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return w, r == 'X' || r == 'x' || r == 'Ｘ' || r == 'ｘ'
}

// separatorAt returns the width of the group separator s[i:] starts with:
// one to three of '-', ' ', '.', '/', '_', an en or em dash, their
// full-width forms, or the ideographic space ("230102 - 19900101").
func separatorAt(s string, i int) (int, bool) {
	width := 0
	for n := 0; n < 3 && i+width < len(s); n++ {
		r, w := utf8.DecodeRuneInString(s[i+width:])
		if !isSeparator(r) {
			break
		}
		width += w
	}
	return width, width > 0
}

func isSeparator(r rune) bool {
	switch r {
	case '-', ' ', '.', '/', '_', '\u2013', '\u2014', '－', '．', '／', '＿', '\u3000':
		return true
	}
	return false
}

// wordAt reports whether s[i:] starts with an ASCII letter or digit, which
// makes an X before it part of a word rather than a check character.
func wordAt(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
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
