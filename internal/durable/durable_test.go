package durable

import (
	"os"
	"path/filepath"
	"strings"
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
