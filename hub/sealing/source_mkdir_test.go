package sealing

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCreateFileSyncsOnlyDirectoriesItMakes: CreateFile makes every
// directory it creates durable, and syncs nothing above a directory that
// already existed (whose parent may not be readable: 0711 on a hardened
// host).
func TestCreateFileSyncsOnlyDirectoriesItMakes(t *testing.T) {
	var synced []string
	orig := syncDir
	syncDir = func(d string) error { synced = append(synced, d); return orig(d) }
	t.Cleanup(func() { syncDir = orig })
	root := t.TempDir()
	if err := CreateFile(filepath.Join(root, "a", "b", "keys.json")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root, filepath.Join(root, "a")} {
		if !slices.Contains(synced, d) {
			t.Errorf("made %s/a/b: synced %q, want %s among them", root, synced, d)
		}
	}
	existing := filepath.Join(root, "existing")
	if err := os.Mkdir(existing, 0o700); err != nil {
		t.Fatal(err)
	}
	synced = nil
	if err := CreateFile(filepath.Join(existing, "keys.json")); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(synced, root) {
		t.Errorf("in an existing directory: synced its parent too, %q", synced)
	}
}
