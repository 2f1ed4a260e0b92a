package memdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
)

// TestFailedLogWriteThenStop: a log write fails part way (a full disk),
// the hub is stopped, and its final snapshot may fail too (the disk is
// still full). The next start must open with every acknowledged batch,
// as it does after kill -9 at the same point. A failed write is cut off
// (TestPartialLogWriteIsCutOff); here the cut failed too and the torn
// frame is left behind, which recovery cuts only in the newest
// generation, so Close must not start a newer one. Close says when its
// snapshot failed, and what that means for the data.
func TestFailedLogWriteThenStop(t *testing.T) {
	ctx := context.Background()
	in := storetest.Population(t, 60, 5)
	tests := []struct {
		name          string
		torn          bool // a torn frame is left behind
		snapshotFails bool
	}{
		{"torn frame, snapshot fails", true, true},
		{"torn frame, snapshot written", true, false},
		{"whole frames, snapshot fails", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(ctx, Config{Dir: dir, SnapshotEvery: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			apply(t, s, in[:100], 50)
			if tc.torn {
				// What ENOSPC part way through a frame leaves when it
				// cannot be cut off, even when retried: a header and part
				// of the payload, and a log that refuses every write.
				if _, err := s.wal.f.Write([]byte{0x00, 0x10, 0x00, 0x00, 1, 2, 3, 4, frameBatch, 9, 9}); err != nil {
					t.Fatal(err)
				}
				s.wal.err = errors.New("no space left on device")
				if _, err := s.Apply(ctx, in[100:150]); err == nil {
					t.Fatal("Apply succeeded after the log failed")
				}
			}
			tmp := filepath.Join(dir, snapshotName+".tmp")
			if tc.snapshotFails {
				// The snapshot cannot be created; writeSnapshot removes
				// the (empty) directory as it gives up.
				if err := os.Mkdir(tmp, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			err = s.Close()
			switch {
			case tc.snapshotFails && (err == nil || !strings.Contains(err.Error(), "nothing is lost")):
				t.Errorf("Close with a failing final snapshot: %v; want the snapshot's error, saying nothing is lost", err)
			case !tc.snapshotFails && err != nil:
				t.Errorf("Close: %v", err)
			}
			os.Remove(tmp)
			r, err := Open(ctx, Config{Dir: dir})
			if err != nil {
				t.Fatalf("restart: %v", err)
			}
			defer r.Close()
			storetest.CompareRecords(t, r, storetest.Expected(in[:100]))
		})
	}
}

// TestLogGenerationGaps: the generations from the snapshot's on must all
// be there. Removing one from the middle loses acknowledged batches
// without a trace, so the store refuses to open, naming it; the gaps the
// store leaves itself (older generations a snapshot holds, left or
// removed) open.
func TestLogGenerationGaps(t *testing.T) {
	ctx := context.Background()
	in := storetest.Population(t, 60, 9)
	// run opens dir, applies in[from:to] and crashes or closes.
	run := func(t *testing.T, dir string, from, to int, close bool) {
		t.Helper()
		s, err := Open(ctx, Config{Dir: dir, SnapshotEvery: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		apply(t, s, in[from:to], 25)
		if close {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return
		}
		crash(s)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string // in the error; "" opens with every batch
	}{
		{"middle generation removed", func(t *testing.T, dir string) {
			run(t, dir, 0, 50, false)    // generation 0
			run(t, dir, 50, 100, false)  // 1
			run(t, dir, 100, 150, false) // 2
			os.Remove(walPath(dir, 1))
		}, "wal-00000000000000000001.log is missing"},
		{"first generation after the snapshot removed", func(t *testing.T, dir string) {
			run(t, dir, 0, 50, true)     // a snapshot holding generation 0
			run(t, dir, 50, 100, false)  // 1
			run(t, dir, 100, 150, false) // 2
			os.Remove(walPath(dir, 1))
		}, "wal-00000000000000000001.log is missing"},
		{"snapshot removed", func(t *testing.T, dir string) {
			run(t, dir, 0, 50, true)
			run(t, dir, 50, 150, false)
			os.Remove(filepath.Join(dir, snapshotName))
		}, "wal-00000000000000000000.log is missing"},
		{"older generation left by a crash after the snapshot", func(t *testing.T, dir string) {
			run(t, dir, 0, 50, false)
			old, err := os.ReadFile(walPath(dir, 0))
			if err != nil {
				t.Fatal(err)
			}
			run(t, dir, 50, 100, true) // removes generations 0 and 1
			if err := os.WriteFile(walPath(dir, 0), old, 0o600); err != nil {
				t.Fatal(err)
			}
			run(t, dir, 100, 150, false)
		}, ""},
		{"background snapshots", func(t *testing.T, dir string) {
			s, err := Open(ctx, Config{Dir: dir, SnapshotEvery: 20})
			if err != nil {
				t.Fatal(err)
			}
			apply(t, s, in[:150], 10)
			crash(s)
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			s, err := Open(ctx, Config{Dir: dir})
			if tc.want != "" {
				if err == nil {
					s.Close()
					t.Fatal("opened with a log generation missing")
				}
				if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "restore the data directory from a backup") {
					t.Fatalf("error %q does not say %q and what to do", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			storetest.CompareRecords(t, s, storetest.Expected(in[:150]))
		})
	}
}

// faultyFile is a log file whose writes, fsyncs and truncations fail the
// given number of times each (-1: every time). A failing write writes half
// of what it was given first, as a disk that fills part way does.
type faultyFile struct {
	logFile
	writes, syncs, truncates int
}

var errNoSpace = errors.New("no space left on device")

// fails reports whether the next call fails, counting it.
func fails(n *int) bool {
	if *n == 0 {
		return false
	}
	if *n > 0 {
		*n--
	}
	return true
}

func (f *faultyFile) Write(b []byte) (int, error) {
	if fails(&f.writes) {
		n, _ := f.logFile.Write(b[:len(b)/2])
		return n, errNoSpace
	}
	return f.logFile.Write(b)
}

func (f *faultyFile) Sync() error {
	if fails(&f.syncs) {
		return errors.New("input/output error")
	}
	return f.logFile.Sync()
}

func (f *faultyFile) Truncate(size int64) error {
	if fails(&f.truncates) {
		return errors.New("input/output error")
	}
	return f.logFile.Truncate(size)
}

// TestLogWriteFailure: a batch whose log write failed is neither applied
// nor acknowledged, and Ping says so. Once writes succeed again (space was
// freed) the store takes batches again by itself: the failed frame is cut
// off, and the next batch follows the last whole frame. After a failed
// fsync, or a frame that could not be cut off even when retried, the
// store refuses every batch and says to restart the hub. Either way a
// restart after kill -9 holds every acknowledged batch, once.
func TestLogWriteFailure(t *testing.T) {
	ctx := context.Background()
	in := storetest.Population(t, 30, 3)
	tests := []struct {
		name    string
		fault   faultyFile
		resumes bool
	}{
		{"write fails part way", faultyFile{writes: 1}, true},
		{"write fails part way, its cut too", faultyFile{writes: 1, truncates: 1}, true},
		{"write fails part way, its cut twice", faultyFile{writes: 1, truncates: 2}, false},
		{"write fails part way, the fsync after its cut too", faultyFile{writes: 1, syncs: 1}, false},
		{"fsync fails", faultyFile{syncs: 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(ctx, Config{Dir: dir, SnapshotEvery: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			apply(t, s, in[:40], 20)
			before := storeStats(t, s)
			f := tc.fault
			f.logFile = s.wal.f
			s.wal.f = &f

			if _, err := s.Apply(ctx, in[40:60]); err == nil {
				t.Fatal("Apply succeeded although its log write failed")
			}
			if after := storeStats(t, s); after != before {
				t.Errorf("stats after a failed log write %+v, before %+v: the batch was applied", after, before)
			}
			if err := s.Ping(ctx); err == nil {
				t.Error("Ping reports a store whose log write failed as healthy")
			}

			_, err = s.Apply(ctx, in[40:60]) // ingest's retry
			want := in[:40]
			if tc.resumes {
				if err != nil {
					t.Fatalf("Apply once writes succeed again: %v", err)
				}
				if err := s.Ping(ctx); err != nil {
					t.Errorf("Ping once writes succeed again: %v", err)
				}
				apply(t, s, in[60:], 20)
				want = in
			} else {
				for what, err := range map[string]error{"Apply": err, "Ping": s.Ping(ctx)} {
					if err == nil || !strings.Contains(err.Error(), "restart the hub (pophub serve)") || !strings.Contains(err.Error(), "nothing acknowledged is lost") {
						t.Errorf("%s after the log failed for good: %v; want it to say to restart the hub and that nothing acknowledged is lost", what, err)
					}
				}
				f.writes, f.syncs, f.truncates = 0, 0, 0 // the disk works again
				if _, err := s.Apply(ctx, in[40:60]); err == nil {
					t.Error("Apply succeeded after the log failed for good")
				}
			}
			if got := storeStats(t, s).Changes; got != int64(len(want)) {
				t.Errorf("%d changes, want %d", got, len(want))
			}

			crash(s)
			r, err := Open(ctx, Config{Dir: dir})
			if err != nil {
				t.Fatalf("restart: %v", err)
			}
			defer r.Close()
			storetest.CompareRecords(t, r, storetest.Expected(want))
			if got := storeStats(t, r).Changes; got != int64(len(want)) {
				t.Errorf("%d changes after a restart, want %d", got, len(want))
			}
		})
	}
}

// TestFailedPublishedRecordIsRetried: MarkPublished's log frame is not
// fsynced; when its write fails the entries stay pending, and the relay's
// next round records them once writes succeed again.
func TestFailedPublishedRecordIsRetried(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	apply(t, s, storetest.Population(t, 10, 4), 100)
	pending, err := s.PendingOutbox(ctx, 0, 1000)
	if err != nil || len(pending) == 0 {
		t.Fatalf("pending outbox: %d entries, %v", len(pending), err)
	}
	seqs := make([]int64, len(pending))
	for i, e := range pending {
		seqs[i] = e.Seq
	}
	s.wal.f = &faultyFile{logFile: s.wal.f, writes: 1}
	if err := s.MarkPublished(ctx, seqs); err == nil {
		t.Fatal("MarkPublished succeeded although its log write failed")
	}
	if n, _ := s.CountPendingOutbox(ctx); n != int64(len(seqs)) {
		t.Fatalf("%d pending after a failed MarkPublished, want %d", n, len(seqs))
	}
	if err := s.MarkPublished(ctx, seqs); err != nil {
		t.Fatalf("MarkPublished once writes succeed again: %v", err)
	}
	if n, _ := s.CountPendingOutbox(ctx); n != 0 {
		t.Errorf("%d pending after MarkPublished, want 0", n)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping once writes succeed again: %v", err)
	}
}

// TestFailedLogWriteKeepsTheTurn: ingest applies two batches of one
// partition at once, each with its turn. When the first one's log write
// fails (a full disk) the second must not be applied before the first
// one's retry, even though the log takes writes again: history versions,
// their sections and the notifications follow the partition's offsets.
func TestFailedLogWriteKeepsTheTurn(t *testing.T) {
	ctx := context.Background()
	in := storetest.Population(t, 20, 9)
	s, err := Open(ctx, Config{Dir: t.TempDir(), SnapshotEvery: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, second := in[:len(in)/2], in[len(in)/2:]
	s.wal.f = &faultyFile{logFile: s.wal.f, writes: 1}

	passed := make(chan struct{})
	ctxFirst := hub.WithTurn(ctx, nil, func() { close(passed) })
	ctxSecond := hub.WithTurn(ctx, passed, func() {})
	secondDone := make(chan error, 1)
	go func() { _, err := s.Apply(ctxSecond, second); secondDone <- err }()
	if _, err := s.Apply(ctxFirst, first); err == nil {
		t.Fatal("the first batch's log write was meant to fail")
	}
	select {
	case err := <-secondDone:
		t.Fatalf("the second batch went ahead of the first one's retry (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := s.Apply(ctxFirst, first); err != nil { // ingest's retry
		t.Fatal(err)
	}
	if err := <-secondDone; err != nil {
		t.Fatalf("second batch: %v", err)
	}
	storetest.CompareRecords(t, s, storetest.Expected(in))
	storetest.CompareHistory(t, s, storetest.ExpectedHistory(in))
}
