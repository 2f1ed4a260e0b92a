// Package durable holds what files whose loss would lose data need beyond
// writing and syncing their contents.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
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

// CreateNew creates the file path, mode 0600, with what write writes into
// it, failing with an error wrapping fs.ErrExist if path exists. The file
// appears whole or not at all: write fills a temporary file in the same
// directory, which is synced and then linked to path (a link, unlike a
// rename, refuses an existing name); the temporary name is removed and
// the directory synced. A crash or a full disk leaves at worst a stray
// temporary file, never a partial file under path, which matters for a
// file such as a key whose empty or cut copy would stop the next start.
func CreateNew(path string, write func(*os.File) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = link(tmp.Name(), path)
		switch {
		case errors.Is(err, fs.ErrExist):
			err = fs.ErrExist // the link's error names the temporary file
		case err != nil && noHardLinks(err):
			// A file system without hard links (FAT, some network
			// mounts): created in place, whole unless a crash interrupts
			// the write itself.
			err = createInPlace(path, write)
		}
	}
	// Once linked, the file is in place whether or not this removal
	// succeeds: a leftover is a copy of it, mode 0600, beside it.
	os.Remove(tmp.Name())
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	return syncDir(dir)
}

// link is os.Link, a variable so that tests can play a file system
// without hard links.
var link = os.Link

// noHardLinks reports whether a link failed because the file system has
// no hard links.
func noHardLinks(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS)
}

// createInPlace creates path exclusively and writes it, removing it if
// the write or sync fails.
func createInPlace(path string, write func(*os.File) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(path)
	}
	return err
}

// syncDir is SyncDir, a variable so that tests can see which directories
// are synced.
var syncDir = SyncDir
