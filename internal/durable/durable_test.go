package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestSyncDir: a directory syncs; one that does not exist is an error
// naming it, not a silent success that would leave a name undurable.
func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(dir); err != nil {
		t.Errorf("SyncDir(%s): %v", dir, err)
	}
	missing := filepath.Join(dir, "missing")
	if err := SyncDir(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("SyncDir(%s) = %v, want an error naming it", missing, err)
	}
}

// TestCreateNew: the file appears whole, mode 0600, with its directory
// synced and no temporary file beside it; an existing file is refused
// (fs.ErrExist, naming the path) and left as it was; a write that fails
// midway leaves nothing under the name.
func TestCreateNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	var synced []string
	orig := syncDir
	syncDir = func(d string) error {
		synced = append(synced, d)
		return orig(d)
	}
	t.Cleanup(func() { syncDir = orig })
	only := func(want ...string) {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, want) {
			t.Errorf("the directory holds %q, want %q", names, want)
		}
	}
	write := func(s string) func(*os.File) error {
		return func(f *os.File) error { _, err := f.WriteString(s); return err }
	}

	failed := errors.New("no space left")
	err := CreateNew(path, func(f *os.File) error {
		f.WriteString("half")
		return failed
	})
	if !errors.Is(err, failed) || !strings.Contains(err.Error(), path) {
		t.Fatalf("a write that fails: %v, want it naming %s", err, path)
	}
	only()

	if err := CreateNew(path, write("secret\n")); err != nil {
		t.Fatal(err)
	}
	only("keys")
	if !slices.Contains(synced, dir) {
		t.Errorf("synced %q, want %s", synced, dir)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v, mode %v, want 0600", err, fi.Mode())
	}

	err = CreateNew(path, write("other\n"))
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("creating over an existing file: %v, want fs.ErrExist naming %s", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != "secret\n" {
		t.Errorf("the existing file now holds %q", b)
	}
	only("keys")
}

// TestCreateNewWithoutHardLinks: on a file system without hard links (FAT,
// some network mounts) the file is created in place, still never over an
// existing one, and a failed write leaves nothing.
func TestCreateNewWithoutHardLinks(t *testing.T) {
	orig := link
	link = func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
	t.Cleanup(func() { link = orig })
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	write := func(s string) func(*os.File) error {
		return func(f *os.File) error { _, err := f.WriteString(s); return err }
	}
	failed := errors.New("no space left")
	if err := CreateNew(path, func(f *os.File) error { f.WriteString("half"); return failed }); !errors.Is(err, failed) {
		t.Fatalf("a write that fails: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed write left %v", entries)
	}
	if err := CreateNew(path, write("secret\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "secret\n" {
		t.Errorf("the file holds %q", b)
	}
	if err := CreateNew(path, write("other\n")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("creating over an existing file: %v, want fs.ErrExist", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %v, want only keys", entries)
	}
}
