package memdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenExistingCreatesNothing: OpenExisting refuses a directory that
// holds no store with ErrNoStore and creates nothing in it; a directory a
// store was opened and closed in opens.
func TestOpenExistingCreatesNothing(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	empty := filepath.Join(tmp, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(tmp, "typo", "store"), empty} {
		if s, err := OpenExisting(ctx, Config{Dir: dir}); !errors.Is(err, ErrNoStore) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("OpenExisting(%s): %v, want ErrNoStore", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "typo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenExisting created the directory (%v)", err)
	}
	if names, _ := os.ReadDir(empty); len(names) != 0 {
		t.Errorf("OpenExisting wrote %d files into an empty directory", len(names))
	}
	dir := filepath.Join(tmp, "store")
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	e, err := OpenExisting(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("OpenExisting of a store's directory: %v", err)
	}
	e.Close()
}
