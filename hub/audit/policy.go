package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pophub/pophub/internal/durable"
)

// The newest policy_change entry is what a starting hub compares its
// policy with, so both stores find it without reading the trail: Postgres
// through a partial index of policy changes, File through a small mark
// file beside the log (policyMarkSuffix) that locates the entry's line.

// policyMarkSuffix names the File's mark: <log>.last-policy holds
// {"offset":N,"seq":S}, the byte offset and Seq of the newest
// policy_change line. It is a cache, checked against the line it names:
// a writer removes it before storing a batch with a policy change and
// writes it after the fsync, so a crash leaves no mark rather than a stale
// one, and without a usable mark the log is read backwards from its end.
const policyMarkSuffix = ".last-policy"

// Sidecars lists the files beside the log at path that a File writes
// only once the log holds entries: the policy mark, and the temporary
// file a crash left while replacing it. Any of them beside a missing or
// empty log shows that the log held entries there and was lost. It
// returns nil when there are none (or the directory cannot be read).
func Sidecars(path string) []string {
	des, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil
	}
	mark := filepath.Base(path) + policyMarkSuffix
	var out []string
	for _, de := range des {
		if name := de.Name(); name == mark || strings.HasPrefix(name, mark+".") {
			out = append(out, filepath.Join(filepath.Dir(path), name))
		}
	}
	return out
}

type policyMark struct {
	Offset int64 `json:"offset"`
	Seq    int64 `json:"seq"`
}

// LastPolicyChange implements Store: the mark's line when it checks out,
// else the newest policy_change line found reading the file backwards.
func (l *File) LastPolicyChange(ctx context.Context) (Entry, bool, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return Entry{}, false, fmt.Errorf("opening audit file: %w", err)
	}
	defer f.Close()
	if e, _, ok := l.markedPolicyChange(f); ok {
		return e, true, nil
	}
	st, err := f.Stat()
	if err != nil {
		return Entry{}, false, fmt.Errorf("opening audit file: %w", err)
	}
	e, _, ok, err := lastPolicyLine(ctx, f, st.Size(), 1<<20)
	return e, ok, err
}

// PolicyChangesBefore implements Store: it reads backwards from the line
// of the policy change seq (located by the mark when it names it), so
// parts written just before it cost a few lines' reading.
func (l *File) PolicyChangesBefore(ctx context.Context, seq int64, n int) ([]Entry, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("opening audit file: %w", err)
	}
	defer f.Close()
	end := int64(-1)
	if e, off, ok := l.markedPolicyChange(f); ok && e.Seq == seq {
		end = off
	}
	if end < 0 {
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("opening audit file: %w", err)
		}
		end = st.Size()
	}
	var out []Entry
	for len(out) < n && end > 0 {
		e, off, ok, err := lastPolicyLine(ctx, f, end, 1<<20)
		if err != nil || !ok {
			return out, err
		}
		if e.Seq < seq {
			out = append(out, e)
		}
		end = off
	}
	return out, nil
}

// markedPolicyChange reads the entry the mark names, and its line's
// offset; false when there is no mark or it does not name a policy_change
// entry of that Seq (a purge or a tool rewrote the file).
func (l *File) markedPolicyChange(f *os.File) (Entry, int64, bool) {
	b, err := os.ReadFile(l.path + policyMarkSuffix)
	if err != nil {
		return Entry{}, 0, false
	}
	var m policyMark
	if json.Unmarshal(b, &m) != nil || m.Offset < 0 {
		return Entry{}, 0, false
	}
	line, err := readLineAt(f, m.Offset)
	if err != nil {
		return Entry{}, 0, false
	}
	var e Entry
	if json.Unmarshal(line, &e) != nil || e.Action != ActionPolicyChange || e.Seq != m.Seq {
		return Entry{}, 0, false
	}
	return e, m.Offset, true
}

// policyNeedle is how a policy_change entry's line names its action
// (appendLine; a string value cannot hold it unescaped).
var policyNeedle = []byte(`"action":"` + string(ActionPolicyChange) + `"`)

// lastPolicyLine reads the complete lines of the first size bytes of f
// from the end, chunk bytes at a time (at least the longest line), and
// returns the newest policy_change entry and its line's offset.
func lastPolicyLine(ctx context.Context, f *os.File, size, chunk int64) (Entry, int64, bool, error) {
	var carry []byte // the start of a line that began before the chunk read last
	first := true
	for end := size; end > 0; {
		if err := ctx.Err(); err != nil {
			return Entry{}, 0, false, err
		}
		start := max(0, end-chunk)
		seg := make([]byte, end-start, end-start+int64(len(carry)))
		if _, err := f.ReadAt(seg, start); err != nil {
			return Entry{}, 0, false, fmt.Errorf("reading audit file: %w", err)
		}
		seg = append(seg, carry...)
		if first {
			// An unterminated last line is still being written, or torn.
			seg = seg[:bytes.LastIndexByte(seg, '\n')+1]
			first = false
		}
		carry = nil
		base := start // the offset of seg[0] in f
		if start > 0 {
			cut := bytes.IndexByte(seg, '\n') + 1
			if cut == 0 {
				return Entry{}, 0, false, errors.New("reading audit file: a line longer than the chunk read")
			}
			carry, seg = seg[:cut], seg[cut:]
			base += int64(cut)
		}
		for len(seg) > 0 {
			seg = seg[:len(seg)-1] // the newline
			i := bytes.LastIndexByte(seg, '\n') + 1
			line := seg[i:]
			seg = seg[:i]
			if !bytes.Contains(line, policyNeedle) {
				continue
			}
			var e Entry
			if err := json.Unmarshal(line, &e); err != nil {
				return Entry{}, 0, false, fmt.Errorf("reading audit file: %w", err)
			}
			if e.Action == ActionPolicyChange {
				return e, base + int64(i), true, nil
			}
		}
		end = start
	}
	return Entry{}, 0, false, nil
}

// writePolicyMark replaces the mark atomically; nil m removes it. Both
// are made durable (the file, then the directory) before it returns: a
// removal undone by a power loss would bring back a mark naming an older
// policy change, which still matches its line, and the hub would then
// take an older policy for the one last recorded.
func (l *File) writePolicyMark(m *policyMark) error {
	path := l.path + policyMarkSuffix
	if m == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing the policy mark: %w", err)
		}
		return durable.SyncDir(filepath.Dir(path))
	}
	b, _ := json.Marshal(m)
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing the policy mark: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if err = errors.Join(err, tmp.Close()); err != nil {
		return fmt.Errorf("writing the policy mark: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the policy mark: %w", err)
	}
	return durable.SyncDir(filepath.Dir(path))
}

// PolicyChangesBefore implements Store through the partial index
// audit_log_policy_change.
func (p *Postgres) PolicyChangesBefore(ctx context.Context, seq int64, n int) ([]Entry, error) {
	var out []Entry
	err := p.query(ctx, p.pool, "seq IN (SELECT seq FROM "+p.log+" WHERE action = '"+string(ActionPolicyChange)+"' AND seq < $1 ORDER BY seq DESC LIMIT $2)",
		[]any{seq, n}, func(e *Entry) error {
			c := *e
			c.Sections = append([]string(nil), e.Sections...)
			if len(c.Sections) == 0 {
				c.Sections = nil
			}
			out = append(out, c)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("reading the policy changes before %d: %w", seq, err)
	}
	slices.Reverse(out) // newest first, as File returns them
	return out, nil
}

// LastPolicyChange implements Store through the partial index
// audit_log_policy_change.
func (p *Postgres) LastPolicyChange(ctx context.Context) (Entry, bool, error) {
	var out Entry
	found := false
	err := p.query(ctx, p.pool, "seq = (SELECT max(seq) FROM "+p.log+" WHERE action = '"+string(ActionPolicyChange)+"')", nil, func(e *Entry) error {
		out, found = *e, true
		out.Sections = append([]string(nil), e.Sections...)
		if len(out.Sections) == 0 {
			out.Sections = nil
		}
		return nil
	})
	if err != nil {
		return Entry{}, false, fmt.Errorf("finding the last policy change: %w", err)
	}
	return out, found, nil
}
