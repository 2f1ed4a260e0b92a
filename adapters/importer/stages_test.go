package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

// lineSource yields JSONL rows 1…n, then fails with err (or ends).
type lineSource struct {
	n, line int
	err     error
}

func (s *lineSource) header() []string { return nil }
func (s *lineSource) next() (row, error) {
	if s.line == s.n {
		if s.err != nil {
			return row{}, s.err
		}
		return row{}, io.EOF
	}
	s.line++
	return row{line: s.line, text: []byte(`{"specversion":"1.0"}`)}, nil
}
func (s *lineSource) digest() string  { return "" }
func (s *lineSource) consumed() int64 { return int64(s.line) }
func (s *lineSource) Close() error    { return nil }

// TestValidationStages: the validation pass's stages hand on every row in
// file order, each mapped, stop at a read error with that error after the
// rows read before it, and end when the bookkeeping stops listening.
func TestValidationStages(t *testing.T) {
	broken := errors.New("disk gone")
	for _, tc := range []struct {
		name   string
		rows   int
		err    error
		listen int // chunks taken before the pass stops listening (-1: all)
	}{
		{"whole file", 3*chunkRows + 5, nil, -1},
		{"empty file", 0, nil, -1},
		{"read error mid-file", chunkRows + 100, broken, -1},
		{"read error at a chunk's edge", 2 * chunkRows, broken, -1},
		{"pass stops early", 10 * chunkRows, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			read, done := make(chan *chunk, 2), make(chan *chunk, 2)
			var stages sync.WaitGroup
			stages.Go(func() { readChunks(ctx, &lineSource{n: tc.rows, err: tc.err}, read) })
			stages.Go(func() { mapChunks(ctx, nil, schemas.Housing, time.Now(), read, done) })
			next, chunks := 1, 0
			var gotErr error
			for c := range done {
				if len(c.results) != len(c.rows) {
					t.Fatalf("chunk %d: %d results for %d rows", chunks, len(c.results), len(c.rows))
				}
				for i, r := range c.rows {
					if r.line != next || c.results[i].line != next {
						t.Fatalf("chunk %d: row %d is line %d (result %d), want %d", chunks, i, r.line, c.results[i].line, next)
					}
					if c.results[i].rej == nil {
						t.Fatalf("line %d: an incomplete event was not rejected", next)
					}
					next++
				}
				if c.consumed != int64(next-1) {
					t.Errorf("chunk %d: consumed %d, want %d", chunks, c.consumed, next-1)
				}
				if c.err != nil {
					gotErr = c.err
				}
				if chunks++; chunks == tc.listen {
					cancel()
					break
				}
			}
			stages.Wait() // both stages end, whatever the consumer did
			if tc.listen > 0 {
				return
			}
			if !errors.Is(gotErr, tc.err) {
				t.Errorf("error %v, want %v", gotErr, tc.err)
			}
			if next-1 != tc.rows {
				t.Errorf("%d rows handed on, want %d", next-1, tc.rows)
			}
		})
	}
}

// TestAppendJSONString checks that cells reach the event's data
// (schemas.AppendJSONString) as the same text: escaped where JSON needs
// it, and U+2028/U+2029 escaped so that the event is safe in JavaScript
// too.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "plain", "朝阳区建国路88号", `引号"与\反斜杠`, "tab\tnew\nline\x01", "line\u2028sep\u2029para",
		"\u2027\u202a edge neighbours", "emoji 😀 and ½", `"`, `\`, "\u2028",
	} {
		got := schemas.AppendJSONString([]byte("x"), s)
		if got[0] != 'x' {
			t.Fatalf("%q: the prefix was overwritten", s)
		}
		var back string
		if err := json.Unmarshal(got[1:], &back); err != nil || back != s {
			t.Errorf("%q: encoded %s reads back as %q (%v)", s, got[1:], back, err)
		}
		if bytes.ContainsAny(got, "\u2028\u2029") {
			t.Errorf("%q: %s holds a raw line or paragraph separator", s, got[1:])
		}
		for _, c := range got {
			if c < 0x20 {
				t.Errorf("%q: %s holds a raw control character", s, got[1:])
				break
			}
		}
	}
}
