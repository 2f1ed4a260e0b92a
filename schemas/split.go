package schemas

import "fmt"

// SplitArray returns the elements of b, a JSON array, as subslices of b,
// without copying: what json.Unmarshal into []json.RawMessage gives. It
// reports false when b is not a JSON array or holds something its scanner
// does not handle; encoding/json then decides. The HTTP gateway splits a
// CloudEvents batch of a thousand events with it; each element is then
// decoded on its own.
func SplitArray(b []byte) ([][]byte, bool) {
	s := scanner{b: b}
	if s.peek() != '[' {
		return nil, false
	}
	s.i++
	out := [][]byte{}
	if s.peek() == ']' {
		s.i++
		s.skipSpace()
		return out, s.i == len(b)
	}
	for {
		s.skipSpace()
		start := s.i
		if !s.skipValue() {
			return nil, false
		}
		out = append(out, b[start:s.i])
		c := s.peek()
		s.i++
		switch c {
		case ']':
			s.skipSpace()
			return out, s.i == len(b)
		case ',':
		default:
			return nil, false
		}
	}
}

// ArrayError is where a JSON array cannot be delimited into its elements.
type ArrayError struct {
	// Offset is the byte of b at which the array stops being one (len(b)
	// when b ends too soon).
	Offset int
	// Index is the element the error lies in; an error between two
	// elements lies in the one before it. It is -1 outside the elements:
	// before the opening bracket or after the closing one.
	Index  int
	Reason string
}

func (e *ArrayError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("byte %d: %s", e.Offset, e.Reason)
	}
	return fmt.Sprintf("byte %d, element %d: %s", e.Offset, e.Index, e.Reason)
}

// maxDelimitDepth is encoding/json's nesting limit, the outer array
// counted: DelimitArray refuses no array encoding/json reads.
const maxDelimitDepth = 10000

// DelimitArray returns the elements of b, a JSON array, as subslices of b,
// checking the array's structure — brackets, braces, quotes, commas,
// colons — but not its tokens: a string may hold raw control characters,
// bad escapes or bytes that are not UTF-8, and a number or literal may be
// any run of letters, digits, '.', '+' and '-'. It is for a batch that
// encoding/json refuses: when one event has a malformed string, the others
// are still where the department put them, so each can be decoded on its
// own and the malformed one reported at its index rather than the whole
// batch refused with no index at all. Where b is valid JSON it gives the
// elements encoding/json gives; where each element it gives is valid JSON,
// so is b. When the structure itself is broken — an unclosed string or
// bracket, a missing comma or colon, a trailing comma — no element can be
// trusted to be where it was meant to be, and the *ArrayError says where.
func DelimitArray(b []byte) ([][]byte, error) {
	d := delimiter{b: b, index: -1}
	d.space()
	if d.peek() != '[' {
		return nil, d.fail("not a JSON array")
	}
	d.i++
	out := [][]byte{}
	d.index = 0
	if d.space(); d.peek() == ']' {
		d.i++
		return out, d.end()
	}
	for {
		start := d.i
		if err := d.value(1); err != nil {
			return nil, err
		}
		out = append(out, b[start:d.i])
		d.space()
		switch d.peek() {
		case ',':
			d.i++
			d.space()
			d.index++
		case ']':
			d.i++
			d.index = -1
			return out, d.end()
		default:
			return nil, d.unexpected("want ',' or ']' after the element")
		}
	}
}

// delimiter reads the structure of a JSON array for DelimitArray.
type delimiter struct {
	b     []byte
	i     int
	index int // the element being read
}

func (d *delimiter) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek is the byte at i, or 0 at the end.
func (d *delimiter) peek() byte {
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

func (d *delimiter) fail(format string, args ...any) *ArrayError {
	return &ArrayError{Offset: d.i, Index: d.index, Reason: fmt.Sprintf(format, args...)}
}

// unexpected fails at i, naming the byte there, for want.
func (d *delimiter) unexpected(want string) *ArrayError {
	if d.i >= len(d.b) {
		return d.fail("the input ends before the array is closed")
	}
	return d.fail("%s, not %s", want, showByte(d.b[d.i]))
}

// showByte quotes c when it is printable ASCII and gives its hex value
// otherwise: %q would show a byte of a UTF-8 sequence as another character.
func showByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return fmt.Sprintf("%q", c)
}

// end checks that only white space follows the array.
func (d *delimiter) end() error {
	d.space()
	if d.i < len(d.b) {
		return d.fail("%s after the array's closing bracket", showByte(d.b[d.i]))
	}
	return nil
}

// value moves past the value at i (no white space before it), depth
// counting the containers it is in.
func (d *delimiter) value(depth int) *ArrayError {
	switch c := d.peek(); {
	case c == '"':
		return d.string()
	case c == '{' || c == '[':
		if depth >= maxDelimitDepth {
			return d.fail("nested deeper than %d arrays and objects", maxDelimitDepth)
		}
		return d.container(depth + 1)
	case wordByte(c):
		for d.i < len(d.b) && wordByte(d.b[d.i]) {
			d.i++
		}
		return nil
	}
	return d.unexpected("want a value")
}

// string moves past the string at i, whatever it holds: a backslash
// escapes the byte after it, as in JSON, so only an unescaped quote ends
// it. The reasons name no offset but the error's own, which a caller may
// count from elsewhere (the gateway counts a byte order mark).
func (d *delimiter) string() *ArrayError {
	for d.i++; d.i < len(d.b); d.i++ {
		switch d.b[d.i] {
		case '\\':
			d.i++
		case '"':
			d.i++
			return nil
		}
	}
	d.i = len(d.b)
	return d.fail("the input ends inside a string")
}

// container moves past the object or array at i.
func (d *delimiter) container(depth int) *ArrayError {
	object := d.b[d.i] == '{'
	closing := byte(']')
	if object {
		closing = '}'
	}
	d.i++
	d.space()
	if d.peek() == closing {
		d.i++
		return nil
	}
	for {
		if object {
			if d.peek() != '"' {
				return d.unexpected("want a member name in double quotes")
			}
			if err := d.string(); err != nil {
				return err
			}
			if d.space(); d.peek() != ':' {
				return d.unexpected("want ':' after the member name")
			}
			d.i++
			d.space()
		}
		if err := d.value(depth); err != nil {
			return err
		}
		d.space()
		switch d.peek() {
		case ',':
			d.i++
			d.space()
		case closing:
			d.i++
			return nil
		default:
			return d.unexpected(fmt.Sprintf("want ',' or %q", closing))
		}
	}
}

// wordByte reports whether c may be part of a number or literal as
// DelimitArray reads them.
func wordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '+' || c == '-'
}
