package postgres

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"

	"github.com/pophub/pophub/hub/merge"
)

// The state column holds a person's merge state (merge.Marshal's JSON)
// behind a format byte. JSON compresses about threefold with S2 at a few
// microseconds a state; writing a third of the bytes cuts what every
// update sends, what PostgreSQL writes to WAL and the full-page images
// after each checkpoint. Rows that begin with '{' are plain JSON (written
// before compression). With keys, the encoded state is sealed as a whole
// (seal.go), after compression, since ciphertext does not compress.
const (
	formatS2JSON = 0x01
)

// encodeState encodes a state for the state column.
func encodeState(st *merge.State) ([]byte, error) {
	raw, err := merge.Marshal(st)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+s2.MaxEncodedLen(len(raw)))
	out[0] = formatS2JSON
	n := len(s2.Encode(out[1:], raw))
	return out[:1+n], nil
}

// decodeState decodes the state column.
func decodeState(b []byte) (*merge.State, error) {
	if len(b) == 0 {
		return nil, errors.New("decoding stored state: empty")
	}
	switch b[0] {
	case '{':
		return merge.Unmarshal(b)
	case formatS2JSON:
		raw, err := s2.Decode(nil, b[1:])
		if err != nil {
			return nil, fmt.Errorf("decoding stored state: %w", err)
		}
		return merge.Unmarshal(raw)
	}
	return nil, fmt.Errorf("decoding stored state: unknown format %#x", b[0])
}
