package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pophub/pophub/internal/durable"
	"github.com/pophub/pophub/schemas"
)

// File is the audit log as an append-only JSON-lines file, for the
// embedded single-process hub: one Entry per line in its JSON form, the
// first line possibly {"anchor":{…}} after a purge.
//
// Each Append writes its batch with one write and fsyncs before returning,
// so a stored batch survives a crash. A torn last line (a crash during a
// write that was never acknowledged) is cut off by the next writer, under
// the file lock: an unterminated last line seen without the lock may be
// another process's batch still being written, so opening the file and
// reading it only leave that line out.
// Purge is the one operation that rewrites the file: it writes the
// retained entries (expired ones after the first retained entry as
// stubs) behind the new anchor line to a temporary file, fsyncs it and
// renames it over the log. Writers in several processes take turns
// on an flock of the file (on Unix) and pick up each other's entries and
// purges before appending, so `pophub audit who-read` may record itself
// while the hub runs; readers need no lock.
type File struct {
	path string

	mu     sync.Mutex
	f      *os.File // opened O_APPEND
	size   int64    // bytes known good
	head   Link
	anchor Link
	closed bool
	buf    []byte // the lines of a batch, reused
}

// anchorLine is the form of the first line after a purge.
type anchorLine struct {
	Anchor *Link `json:"anchor"`
}

// OpenFile opens or creates the log file at path, creating its directory
// too: the hub's own log.
func OpenFile(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating audit directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit file: %w", err)
	}
	return openedFile(path, f)
}

// OpenFileExisting opens the log file at path, which must exist: the
// tools that read a hub's log (and may append their own access to it)
// use it, so that a mistyped path is ErrNoLog rather than a new, empty
// log that verifies.
func OpenFileExisting(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", ErrNoLog, path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening audit file: %w", err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = errors.New("not a regular file")
		}
		return nil, fmt.Errorf("opening audit file %s: %w", path, err)
	}
	return openedFile(path, f)
}

// openedFile loads the log of the open file f.
func openedFile(path string, f *os.File) (*File, error) {
	l := &File{path: path, f: f}
	if err := l.load(false); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// load reads the anchor and the head. An unterminated last line is left
// out of size; it is cut off only when locked (the caller holds the file
// lock, so no writer is in the middle of a batch and the line is torn).
// Without the lock it may be a batch another process is writing, and
// cutting it would leave that writer's rest behind a hole.
func (l *File) load(locked bool) error {
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("opening audit file: %w", err)
	}
	l.size = st.Size()
	if l.size == 0 {
		return nil
	}
	// The first line: the anchor, or the first entry.
	first, err := readLineAt(l.f, 0)
	if err != nil {
		return err
	}
	if bytes.HasPrefix(first, []byte(`{"anchor"`)) {
		var a anchorLine
		if err := json.Unmarshal(first, &a); err != nil || a.Anchor == nil {
			return fmt.Errorf("opening audit file: malformed anchor line")
		}
		l.anchor = *a.Anchor
	}
	l.head = l.anchor
	// The last complete line.
	tail := min(l.size, 1<<20)
	buf := make([]byte, tail)
	if _, err := l.f.ReadAt(buf, l.size-tail); err != nil {
		return fmt.Errorf("reading audit file: %w", err)
	}
	if buf[len(buf)-1] != '\n' {
		cut := bytes.LastIndexByte(buf, '\n') + 1
		if cut == 0 && tail < l.size {
			return errors.New("opening audit file: last line longer than 1 MiB")
		}
		l.size -= int64(len(buf) - cut)
		buf = buf[:cut]
		if locked {
			if err := l.f.Truncate(l.size); err != nil {
				return fmt.Errorf("cutting a torn audit line: %w", err)
			}
		}
	}
	if len(buf) == 0 {
		return nil
	}
	buf = buf[:len(buf)-1]
	lastLine := buf[bytes.LastIndexByte(buf, '\n')+1:]
	if bytes.HasPrefix(lastLine, []byte(`{"anchor"`)) {
		return nil
	}
	var e Entry
	if err := json.Unmarshal(lastLine, &e); err != nil {
		return fmt.Errorf("reading the last audit entry: %w", err)
	}
	l.head = e.link()
	return nil
}

func readLineAt(f *os.File, off int64) ([]byte, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, 1<<62), 64<<10)
	line, err := r.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading audit file: %w", err)
	}
	return bytes.TrimSuffix(line, []byte("\n")), nil
}

// Close closes the file. Safe to call twice.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.f.Close()
}

// Head implements Store: the head as of opening the file or the last
// Append or Purge through l (another process may have appended since).
func (l *File) Head(ctx context.Context) (Link, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head, nil
}

// Path is the file's path.
func (l *File) Path() string { return l.path }

// Append implements Appender: one write and one fsync per batch.
func (l *File) Append(ctx context.Context, batch []Entry, link func(head Link) Link) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.lock(); err != nil {
		return err
	}
	defer unlockFile(l.f)
	head := link(l.head)
	buf := l.buf[:0]
	var mark *policyMark // the batch's last policy change
	for i := range batch {
		if batch[i].Action == ActionPolicyChange {
			mark = &policyMark{Offset: l.size + int64(len(buf)), Seq: batch[i].Seq}
		}
		var err error
		if buf, err = appendLine(buf, &batch[i]); err != nil {
			return err
		}
	}
	l.buf = buf
	if mark != nil {
		// No mark while the batch is in flight: a crash leaves none
		// rather than one naming an older change.
		if err := l.writePolicyMark(nil); err != nil {
			return err
		}
	}
	if _, err := l.f.Write(buf); err != nil {
		// Take back a partial write so that the next batch starts on a
		// line of its own.
		l.f.Truncate(l.size)
		return fmt.Errorf("writing audit entries: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		l.f.Truncate(l.size)
		return fmt.Errorf("syncing audit file: %w", err)
	}
	l.size += int64(len(buf))
	l.head = head
	if mark != nil {
		// The batch is stored; without the mark the next look-up reads
		// the file backwards instead.
		l.writePolicyMark(mark)
	}
	return nil
}

// jsonLine is e's line in a log file.
func jsonLine(e *Entry) ([]byte, error) { return appendLine(nil, e) }

// appendLine appends e's line: the JSON object encoding/json writes for
// an Entry (and reads back unchanged), then a newline. Written by hand
// because the writer encodes an entry for every audited read.
func appendLine(b []byte, e *Entry) ([]byte, error) {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"time":`...)
	var ok bool
	if b, ok = schemas.AppendJSONTime(b, e.Time); !ok {
		t, err := e.Time.MarshalJSON()
		if err != nil {
			return b, fmt.Errorf("encoding audit entry %d: %w", e.Seq, err)
		}
		b = append(b, t...)
	}
	b = appendField(b, "identity", e.Identity)
	b = appendField(b, "action", string(e.Action))
	if e.Subject != "" {
		b = appendField(b, "subject", e.Subject)
	}
	if len(e.Sections) > 0 {
		b = append(b, `,"sections":[`...)
		for i, s := range e.Sections {
			if i > 0 {
				b = append(b, ',')
			}
			b = schemas.AppendJSONString(b, s)
		}
		b = append(b, ']')
	}
	b = appendField(b, "purpose", e.Purpose)
	if e.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(e.Status), 10)
	}
	b = appendField(b, "result", e.Result)
	if e.Detail != "" {
		b = appendField(b, "detail", e.Detail)
	}
	for _, f := range [...]struct {
		name string
		sum  *Sum
	}{{"prev", &e.Prev}, {"hash", &e.Hash}, {"seal", &e.Seal}} {
		b = append(b, `,"`...)
		b = append(b, f.name...)
		b = append(b, `":"`...)
		b = hex.AppendEncode(b, f.sum[:])
		b = append(b, '"')
	}
	if e.Redacted {
		b = append(b, `,"redacted":true`...)
	}
	return append(b, "}\n"...), nil
}

// appendField appends ,"name":value with value as a JSON string.
func appendField(b []byte, name, value string) []byte {
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return schemas.AppendJSONString(b, value)
}

// lock takes the file lock and catches up with other processes: a purge
// (the path names another file now) or appends (the size changed). The
// caller holds l.mu and unlocks l.f.
func (l *File) lock() error {
	for {
		if err := lockFile(l.f); err != nil {
			return fmt.Errorf("locking audit file: %w", err)
		}
		cur, err1 := os.Stat(l.path)
		mine, err2 := l.f.Stat()
		if err := errors.Join(err1, err2); err != nil {
			unlockFile(l.f)
			return fmt.Errorf("locking audit file: %w", err)
		}
		if os.SameFile(cur, mine) {
			if mine.Size() != l.size {
				l.anchor, l.head = Link{}, Link{}
				if err := l.load(true); err != nil {
					unlockFile(l.f)
					return err
				}
			}
			return nil
		}
		// Purged by another process: reopen the new file.
		f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0o600)
		unlockFile(l.f)
		if err != nil {
			return fmt.Errorf("reopening audit file: %w", err)
		}
		l.f.Close()
		l.f, l.size = f, -1
	}
}

// Anchor implements Scanner, reading the file's first line (another
// process may have purged).
func (l *File) Anchor(ctx context.Context) (Link, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return Link{}, fmt.Errorf("opening audit file: %w", err)
	}
	defer f.Close()
	first, err := readLineAt(f, 0)
	if err != nil || !bytes.HasPrefix(first, []byte(`{"anchor"`)) {
		return Link{}, err
	}
	var a anchorLine
	if err := json.Unmarshal(first, &a); err != nil || a.Anchor == nil {
		return Link{}, errors.New("reading audit file: malformed anchor line")
	}
	return *a.Anchor, nil
}

// Scan implements Scanner, in file order. A line that is not an entry
// is an error.
func (l *File) Scan(ctx context.Context, first, last int64, fn func(*Entry) error) error {
	if last <= 0 {
		last = 1<<63 - 1
	}
	return l.scan(ctx, func(e *Entry, _ []byte) error {
		if e.Seq < first || e.Seq > last {
			return nil
		}
		return fn(e)
	})
}

// scan reads every complete entry line of the file as it is when the scan
// starts, whoever wrote it (a purge replaces the file, so the open handle
// keeps reading the old one; a line still being written is left out).
func (l *File) scan(ctx context.Context, fn func(e *Entry, line []byte) error) error {
	return l.scanTo(ctx, -1, fn)
}

// scanTo reads the entry lines in the first size bytes of the file (all
// complete lines when size < 0).
func (l *File) scanTo(ctx context.Context, size int64, fn func(e *Entry, line []byte) error) error {
	f, err := os.Open(l.path)
	if err != nil {
		return fmt.Errorf("opening audit file: %w", err)
	}
	defer f.Close()
	if size < 0 {
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("opening audit file: %w", err)
		}
		size = st.Size()
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20)
	var e Entry
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, io.EOF) {
			return nil // the end, or a line still being written
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("reading audit file: line %d longer than 1 MiB", n)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading audit file: %w", err)
		}
		if n == 1 && bytes.HasPrefix(line, []byte(`{"anchor"`)) {
			continue
		}
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e = Entry{}
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("reading audit file: line %d: %w", n, err)
		}
		if err := fn(&e, line); err != nil {
			return err
		}
	}
}

// SeqRange implements Store by a full scan.
func (l *File) SeqRange(ctx context.Context, from, to time.Time) (first, last int64, ok bool, err error) {
	err = l.scan(ctx, func(e *Entry, _ []byte) error {
		if e.Time.Before(from) || !e.Time.Before(to) {
			return nil
		}
		if !ok || e.Seq < first {
			first = e.Seq
		}
		if !ok || e.Seq > last {
			last = e.Seq
		}
		ok = true
		return nil
	})
	return first, last, ok, err
}

// WhoRead implements Store by a full scan.
func (l *File) WhoRead(ctx context.Context, subject string, from, to time.Time) ([]Entry, error) {
	var out []Entry
	if subject == "" {
		return nil, nil
	}
	err := l.scan(ctx, func(e *Entry, _ []byte) error {
		if e.Subject == subject && !e.Time.Before(from) && e.Time.Before(to) {
			out = append(out, *e)
		}
		return nil
	})
	return out, err
}

// removeStalePurges removes the copies of the log that purges killed
// before their rename left beside it (each a whole copy of what it
// retained). Called under the file's lock, so no purge is writing one.
func removeStalePurges(path string) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+".purge-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // the purge's own CreateTemp reports what is wrong
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Purge implements Store: it rewrites the file behind a new anchor line,
// with the expired entries after the first retained one as stubs. A
// purge with nothing to delete or redact leaves the file as it is.
func (l *File) Purge(ctx context.Context, now time.Time, r Retention) (PurgeResult, error) {
	var res PurgeResult
	if err := r.Validate(); err != nil {
		return res, err
	}
	accessCut, procCut := r.cutoffs(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return res, ErrClosed
	}
	if err := l.lock(); err != nil {
		return res, err
	}
	locked := l.f
	defer func() { unlockFile(locked) }()
	removeStalePurges(l.path)
	tmp, err := os.CreateTemp(filepath.Dir(l.path), filepath.Base(l.path)+".purge-*")
	if err != nil {
		return res, fmt.Errorf("purging the audit log: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	w := bufio.NewWriterSize(tmp, 1<<20)

	// Read the old file under the lock (no append can interleave), and
	// stream the retained lines behind the new anchor.
	anchor, deleting := l.anchor, true
	var written int64    // bytes of the new file so far
	var mark *policyMark // its last policy change
	var stub []byte      // a redacted line, reused
	writeAnchor := func() {
		if anchor.Seq == 0 && anchor.Hash.IsZero() {
			return // never purged, nothing deleted: no anchor line
		}
		a, _ := json.Marshal(anchorLine{Anchor: &anchor})
		w.Write(a)
		w.WriteByte('\n')
		written += int64(len(a)) + 1
	}
	err = l.scanTo(ctx, l.size, func(e *Entry, line []byte) error {
		exp := expired(e, accessCut, procCut)
		if deleting && exp {
			anchor = e.link()
			res.class(e.Action).Deleted++
			return nil
		}
		if deleting {
			deleting = false
			writeAnchor()
		}
		if exp && !e.Redacted {
			redact(e)
			res.class(e.Action).Redacted++
			var err error
			if stub, err = appendLine(stub[:0], e); err != nil {
				return err
			}
			line = stub
		}
		if e.Action == ActionPolicyChange {
			mark = &policyMark{Offset: written, Seq: e.Seq}
		}
		written += int64(len(line))
		_, err := w.Write(line)
		return err
	})
	if err != nil {
		return PurgeResult{}, fmt.Errorf("purging the audit log: %w", err)
	}
	if res.Deleted() == 0 && res.Redacted() == 0 {
		return res, nil
	}
	if deleting {
		writeAnchor()
	}
	if err := w.Flush(); err != nil {
		return PurgeResult{}, fmt.Errorf("purging the audit log: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return PurgeResult{}, fmt.Errorf("purging the audit log: %w", err)
	}
	// The old mark names offsets of the old file.
	if err := l.writePolicyMark(nil); err != nil {
		return PurgeResult{}, fmt.Errorf("purging the audit log: %w", err)
	}
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		return PurgeResult{}, fmt.Errorf("purging the audit log: %w", err)
	}
	// The rename made durable (best effort: the purge is done either way),
	// then the mark, which syncs the directory itself.
	_ = durable.SyncDir(filepath.Dir(l.path))
	if mark != nil {
		l.writePolicyMark(mark) // without it, look-ups read backwards
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return PurgeResult{}, fmt.Errorf("reopening the audit file: %w", err)
	}
	l.f.Close()
	l.f = f
	l.anchor = anchor
	if l.head.Seq <= anchor.Seq {
		l.head = anchor
	}
	st, err := f.Stat()
	if err != nil {
		return PurgeResult{}, fmt.Errorf("reopening the audit file: %w", err)
	}
	l.size = st.Size()
	return res, nil
}
