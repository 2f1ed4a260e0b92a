package memdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pophub/pophub/hub/storetest"
)

// TestPartialLogWriteIsCutOff makes the kernel stop a log write part way,
// as a full disk does (a file size limit, without a small file system to
// fill), and checks that the log is cut back to its last whole frame, so
// no torn frame is left behind for a newer generation to follow.
func TestPartialLogWriteIsCutOff(t *testing.T) {
	ctx := context.Background()
	in := storetest.Population(t, 60, 5)
	dir := t.TempDir()
	s, err := Open(ctx, Config{Dir: dir, SnapshotEvery: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, in[:100], 50)
	path := walPath(dir, s.wal.gen)
	good := fileSize(t, path)

	withFileSizeLimit(t, good+100, func() { _, err = s.Apply(ctx, in[100:150]) })
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Apply past the file size limit: %v, want EFBIG", err)
	}
	if got := fileSize(t, path); got != good {
		t.Fatalf("log is %d bytes after the failed write, want it cut back to %d", got, good)
	}

	tmp := filepath.Join(dir, snapshotName+".tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil { // the disk is still full
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close succeeded without its final snapshot")
	}
	os.Remove(tmp)
	r, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer r.Close()
	storetest.CompareRecords(t, r, storetest.Expected(in[:100]))
}

// TestLogResumesAfterDiskFreed: the kernel stops a log write part way,
// as a full disk does, and the batch fails; once writes fit again (space
// was freed) the retried batch and the ones after it are taken without a
// restart, and a restart after kill -9 holds each of them once.
func TestLogResumesAfterDiskFreed(t *testing.T) {
	ctx := context.Background()
	in := storetest.Population(t, 60, 6)
	dir := t.TempDir()
	s, err := Open(ctx, Config{Dir: dir, SnapshotEvery: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, in[:100], 50)
	path := walPath(dir, s.wal.gen)
	good := fileSize(t, path)

	var perr error
	withFileSizeLimit(t, good+100, func() {
		_, err = s.Apply(ctx, in[100:150])
		perr = s.Ping(ctx)
	})
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Apply past the file size limit: %v, want EFBIG", err)
	}
	if perr == nil {
		t.Error("Ping reports the store healthy while its log write fails")
	}

	apply(t, s, in[100:], 50) // ingest's retry, and the batches after it
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping once the log can be written again: %v", err)
	}
	crash(s)
	r, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer r.Close()
	storetest.CompareRecords(t, r, storetest.Expected(in))
	if got := storeStats(t, r).Changes; got != int64(len(in)) {
		t.Errorf("%d changes after a restart, want %d", got, len(in))
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// withFileSizeLimit runs f with the process's file size limit at limit
// bytes, as a disk that fills there. The Go runtime ignores SIGXFSZ: a
// write past the limit returns EFBIG after writing what fits.
func withFileSizeLimit(t *testing.T, limit int64, f func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lowered := old
	lowered.Cur = uint64(limit)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lowered); err != nil {
		// Lowering the soft limit never needs a privilege.
		t.Fatalf("setting a file size limit: %v", err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}
