package schemas

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
