package sealing

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validKeyFile returns the contents of a key file as CreateFile writes it.
func validKeyFile(t *testing.T) []byte {
	t.Helper()
	m, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestKeyFileContents: a key file the hub cannot use stops it with an
// error that names the file and says what to do: an empty one (left by a
// first start interrupted while creating it, before key files were
// written whole) can be removed, as no data can have been sealed with it;
// a damaged one must be restored from the backup, and only the empty one
// is said to have sealed nothing. Before, both said only "parsing keys:
// unexpected end of JSON input".
func TestKeyFileContents(t *testing.T) {
	valid := validKeyFile(t)
	tests := []struct {
		name     string
		contents []byte
		want     []string // in the error; none for a usable file
		notWant  []string
	}{
		{"valid", valid, nil, nil},
		{"empty", nil, []string{"is empty", "interrupted", "nothing can have been sealed", "remove it", "restore it from the backup"}, nil},
		{"truncated", valid[:len(valid)/2], []string{"is damaged", "restore it from the backup"}, []string{"sealed", "remove it"}},
		{"not a key file", []byte(`{"hmac":"AAAA"}`), []string{"is damaged", "restore it from the backup"}, []string{"sealed", "remove it"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys")
			if err := os.WriteFile(path, tc.contents, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(context.Background(), File(path))
			if tc.want == nil {
				if err != nil {
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

// TestEnvKeysDamaged: keys in POPHUB_KEYS that do not parse are refused
// with the variable named.
func TestEnvKeysDamaged(t *testing.T) {
	valid := validKeyFile(t)
	t.Setenv("POPHUB_TEST_KEYS", string(valid[:len(valid)/2]))
	_, err := Load(context.Background(), Env("POPHUB_TEST_KEYS"))
	if err == nil || !strings.Contains(err.Error(), "POPHUB_TEST_KEYS") {
		t.Errorf("%v, want an error naming POPHUB_TEST_KEYS", err)
	}
}

// TestCreateFileWhole: CreateFile creates the key file, mode 0600, loadable, with
// no temporary file beside it; it never overwrites a key file, whose
// loss would make sealed data unreadable. That it appears whole or not
// at all is durable.CreateNew's (TestCreateNew).
func TestCreateFileWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	onlyKeys := func(when string) {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) != 1 || names[0] != "keys" {
			t.Errorf("%s the directory holds %q, want only keys", when, names)
		}
	}

	if err := CreateFile(path); err != nil {
		t.Fatal(err)
	}
	onlyKeys("after creating")
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
	if _, err := Load(context.Background(), File(path)); err != nil {
		t.Fatalf("loading the created file: %v", err)
	}

	err = CreateFile(path)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("creating over an existing key file: %v, want an error naming it, fs.ErrExist", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("the existing key file was changed")
	}
	onlyKeys("after refusing to overwrite")
}

// TestCreateFileMakesItsDirectory: `pophub keys init /etc/pophub/keys` on a
// fresh machine creates /etc/pophub, readable by its owner only, rather
// than fail with "no such file or directory".
func TestCreateFileMakesItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "pophub")
	path := filepath.Join(dir, "keys")
	if err := CreateFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), File(path)); err != nil {
		t.Fatalf("loading the new key file: %v", err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("its directory: %v, mode %v, want 0700", err, fi.Mode())
	}
}
