package sealing

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
)

// TestKeyFileWritesSyncDir: creating a key file and adding a data key to
// it sync the directory after the create or rename, so a power failure
// cannot lose the new name (and with it the key that sealed data written
// since). Before, only the file's contents were synced.
func TestKeyFileWritesSyncDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	var synced []string
	orig := syncDir
	syncDir = func(d string) error {
		synced = append(synced, d)
		return orig(d)
	}
	t.Cleanup(func() { syncDir = orig })

	tests := []struct {
		name string
		run  func() error
	}{
		{"CreateFile", func() error { return CreateFile(path) }},
		{"AddToFile", func() error { _, err := AddToFile(context.Background(), path); return err }},
	}
	for _, tc := range tests {
		synced = nil
		if err := tc.run(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Contains(synced, dir) {
			t.Errorf("%s synced directories %q, want %s", tc.name, synced, dir)
		}
	}
	if _, err := Load(context.Background(), File(path)); err != nil {
		t.Errorf("loading the key file: %v", err)
	}
}
