package memdb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
)

// closedStore applies in to a store in a new directory, sealed when keys
// is not nil, closes it (its final snapshot holds everything and no log
// is left) and returns the directory, the snapshot's contents and the
// stats before the close.
func closedStore(t *testing.T, in []hub.Input, keys *sealing.Keyring) (string, []byte, hub.StoreStats) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, in, 97)
	before := storeStats(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if gens, _ := walGens(dir); len(gens) != 0 {
		t.Fatalf("log generations %v left after Close", gens)
	}
	data, err := os.ReadFile(filepath.Join(dir, snapshotName))
	if err != nil {
		t.Fatal(err)
	}
	return dir, data, before
}

// snapshotDir writes data as the snapshot of a new directory, with the
// sealing mode files of the directory from, if any, and returns the
// directory and the snapshot's path.
func snapshotDir(t *testing.T, from string, data []byte) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	for _, name := range []string{checkName, versionsName} {
		if b, err := os.ReadFile(filepath.Join(from, name)); err == nil {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	path = filepath.Join(dir, snapshotName)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

// releasedFormat rewrites a snapshot as the released format wrote it:
// no format version on its meta line and no end line.
func releasedFormat(t *testing.T, data []byte) []byte {
	t.Helper()
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) < 3 || !bytes.HasPrefix(lines[len(lines)-2], []byte(`{"k":"end",`)) || len(lines[len(lines)-1]) != 0 {
		t.Fatalf("snapshot does not end in its end line: %.80q", lines[len(lines)-2])
	}
	version := []byte(`"v":2,`)
	if !bytes.HasPrefix(lines[0], []byte(`{"k":"meta",`)) || !bytes.Contains(lines[0], version) {
		t.Fatalf("snapshot's first line is not a meta line of format 2: %.80q", lines[0])
	}
	lines[0] = bytes.Replace(lines[0], version, nil, 1)
	return bytes.Join(lines[:len(lines)-2], nil)
}

// TestTruncatedSnapshotRefused: the snapshot is the only copy of what it
// holds (the log files it covers were removed when it was written). Cut
// at a line boundary or inside a line, with a line removed or added, or
// with one byte changed, it is refused, naming the file and what to do,
// rather than opened as a smaller store without a word.
func TestTruncatedSnapshotRefused(t *testing.T) {
	in := storetest.Population(t, 80, 21)
	src, data, before := closedStore(t, in, nil)
	if before.OutboxPending == 0 {
		t.Fatal("no pending notifications to lose")
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	endLine := lines[len(lines)-2]
	body := bytes.Index(data, []byte(`"Body":"`)) + len(`"Body":"`)
	tests := []struct {
		name   string
		damage func(d []byte) []byte
		want   string
	}{
		{"cut at a line boundary", func(d []byte) []byte {
			return d[:bytes.LastIndexByte(d[:len(d)/4], '\n')+1]
		}, "cut short"},
		{"cut inside a line", func(d []byte) []byte { return d[:len(d)/2] }, "cut short"},
		{"end line cut off", func(d []byte) []byte { return d[:len(d)-len(endLine)] }, "cut short"},
		{"empty", func(d []byte) []byte { return d[:0] }, "does not start with its meta line (it is empty or was cut short)"},
		{"one byte changed inside a line", func(d []byte) []byte {
			// A notification's body is opaque base64: the line still
			// reads, with another body.
			d[body] ^= 0x01
			return d
		}, "checksum"},
		{"a line of notifications removed", func(d []byte) []byte {
			i := slices.IndexFunc(lines, func(l []byte) bool { return bytes.HasPrefix(l, []byte(`{"k":"o"`)) })
			return bytes.Join(slices.Concat(lines[:i], lines[i+1:]), nil)
		}, "lines are missing"},
		{"a line after the end line", func(d []byte) []byte { return append(d, lines[1]...) }, "after its end line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := snapshotDir(t, src, tc.damage(bytes.Clone(data)))
			r, err := Open(context.Background(), Config{Dir: dir})
			if err == nil {
				defer r.Close()
				pending, _ := r.PendingOutbox(context.Background(), 0, 1<<20)
				t.Fatalf("opened from a damaged snapshot: pending %d, before %d; persons %d, before %d",
					len(pending), before.OutboxPending, storeStats(t, r).Persons, before.Persons)
			}
			t.Log(err)
			for _, want := range []string{path, tc.want, "restore it from a backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestSealedSnapshotErrorsNameFile: a cut or altered sealed snapshot is
// refused (its chunks are numbered and the last one marked) and the
// error names the file.
func TestSealedSnapshotErrorsNameFile(t *testing.T) {
	keys := storetest.Keyring(t, storetest.Keys(t))
	src, data, _ := closedStore(t, storetest.Population(t, 30, 21), keys)
	tests := []struct {
		name   string
		damage func(d []byte) []byte
	}{
		{"cut", func(d []byte) []byte { return d[:len(d)/2] }},
		{"one byte changed", func(d []byte) []byte { d[len(d)/2] ^= 0x01; return d }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := snapshotDir(t, src, tc.damage(bytes.Clone(data)))
			r, err := Open(context.Background(), Config{Dir: dir, Keys: keys})
			if err == nil {
				r.Close()
				t.Fatal("opened from a damaged sealed snapshot")
			}
			t.Log(err)
			for _, want := range []string{path, "restore it from a backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestSnapshotOfReleasedFormatOpens: a snapshot the released format wrote,
// in clear or sealed, without a format version or an end line, opens
// with every record and pending notification, and the next snapshot is
// written in the current format.
func TestSnapshotOfReleasedFormatOpens(t *testing.T) {
	in := storetest.Population(t, 80, 21)
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "in clear", true: "sealed"}[sealed], func(t *testing.T) {
			var keys *sealing.Keyring
			if sealed {
				keys = storetest.Keyring(t, storetest.Keys(t))
			}
			src, data, before := closedStore(t, in, keys)
			released := sealSnapshot(t, keys, releasedFormat(t, unsealSnapshot(t, keys, data)))
			dir, path := snapshotDir(t, src, released)
			r, err := Open(context.Background(), Config{Dir: dir, Keys: keys})
			if err != nil {
				t.Fatalf("opening a snapshot of the released format: %v", err)
			}
			storetest.CompareRecords(t, r, storetest.Expected(in))
			storetest.CompareHistory(t, r, storetest.ExpectedHistory(in))
			if after := storeStats(t, r); after != before {
				t.Errorf("stats %+v, before %+v", after, before)
			}
			pending, err := r.PendingOutbox(context.Background(), 0, 1<<20)
			if err != nil || int64(len(pending)) != before.OutboxPending {
				t.Errorf("pending %d (%v), before %d", len(pending), err, before.OutboxPending)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			rewritten, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			releasedFormat(t, unsealSnapshot(t, keys, rewritten)) // fails unless it has a version and an end line
		})
	}
}

// unsealSnapshot returns the lines of a snapshot sealed with keys, or
// data when keys is nil.
func unsealSnapshot(t *testing.T, keys *sealing.Keyring, data []byte) []byte {
	t.Helper()
	if keys == nil {
		return data
	}
	plain, err := io.ReadAll(&chunkReader{r: bufio.NewReader(bytes.NewReader(data)), k: keys})
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// sealSnapshot seals a snapshot's lines with keys, or returns them when
// keys is nil.
func sealSnapshot(t *testing.T, keys *sealing.Keyring, plain []byte) []byte {
	t.Helper()
	if keys == nil {
		return plain
	}
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := &chunkWriter{w: bw, k: keys}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(w.Close(), bw.Flush()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSnapshotLinesLongerThanBuffer: a line longer than the read buffer
// (a batch's notifications are one line, megabytes for a large batch)
// reads back whole: the end line's checksum covers its bytes.
func TestSnapshotLinesLongerThanBuffer(t *testing.T) {
	_, data, _ := closedStore(t, storetest.Population(t, 20, 21), nil)
	want := int64(bytes.Count(data, []byte("\n")) - 1) // not the end line
	sr := &snapshotReader{r: bufio.NewReaderSize(bytes.NewReader(data), 16)}
	for {
		_, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d lines: %v", sr.lines, err)
		}
	}
	if sr.lines != want || !sr.ended {
		t.Errorf("read %d lines (end line read: %v), want %d and the end line", sr.lines, sr.ended, want)
	}
}
