package memdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
				// What ENOSPC part way through a frame leaves: a header
				// and part of the payload, and the log's sticky error.
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
