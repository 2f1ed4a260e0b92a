package sealing

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
)

// TestKeyFileWritesSyncDir: adding a data key to a key file syncs the
// directory after the rename, so a power failure cannot lose the new name
// (and with it the key that sealed data written since). Before, only the
// file's contents were synced. CreateFile's sync is durable.CreateNew's.
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
		{"AddToFile", func() error { _, err := AddToFile(context.Background(), path); return err }},
	}
	if err := CreateFile(path); err != nil {
		t.Fatal(err)
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
