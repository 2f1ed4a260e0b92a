// Package durable holds what files whose loss would lose data need beyond
// writing and syncing their contents.
package durable

import (
	"fmt"
	"os"
)

// SyncDir makes the names in dir durable: a file created, renamed or
// removed there is otherwise undone by a power failure even though its
// contents were synced (fsync of the file does not cover its directory
// entry).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
