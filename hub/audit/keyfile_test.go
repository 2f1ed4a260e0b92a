package audit

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadKeyContents: a key file the hub cannot use stops it with an
// error that names the file and says what to do: an empty one (left by a
// first start interrupted while creating it, before key files were
// written whole) can be removed, as nothing can have been sealed with it;
// a damaged one must be restored from the backup, and only the empty one
// is said to have sealed nothing. Before, an empty file gave "audit key:
// 0 bytes, want at least 32", naming neither.
func TestLoadKeyContents(t *testing.T) {
	const valid = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
	tests := []struct {
		name     string
		contents string
		want     []string // in the error; none for a usable file
		notWant  []string
	}{
		{"valid", valid, nil, nil},
		{"empty", "", []string{"is empty", "interrupted", "nothing can have been sealed", "remove it", "restore it from the backup"}, nil},
		{"truncated", valid[:40], []string{"is damaged", "restore it from the backup"}, []string{"sealed", "remove it"}},
		{"cut mid-digit", valid[:41], []string{"is damaged", "not hex", "restore it from the backup"}, []string{"sealed", "remove it"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.key")
			if err := os.WriteFile(path, []byte(tc.contents), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := LoadKey(path)
			if tc.want == nil {
				if err != nil || k.IsZero() {
					t.Fatalf("a valid key file: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			for _, w := range append([]string{path}, tc.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("%q says %q", msg, w)
				}
			}
		})
	}
}

// TestGenerateKeyFileWhole: GenerateKeyFile creates the key file, mode 0600, loadable, with
// no temporary file beside it; it never overwrites a key file, whose
// loss would make sealed data unreadable. That it appears whole or not
// at all is durable.CreateNew's (TestCreateNew).
func TestGenerateKeyFileWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.key")
	onlyKey := func(when string) {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) != 1 || names[0] != "audit.key" {
			t.Errorf("%s the directory holds %q, want only audit.key", when, names)
		}
	}

	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	onlyKey("after creating")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); err != nil {
		t.Fatalf("loading the created file: %v", err)
	}

	err = GenerateKeyFile(path)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("creating over an existing key file: %v, want an error naming it, fs.ErrExist", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("the existing key file was changed")
	}
	onlyKey("after refusing to overwrite")
}
