package memdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// lockName is the file in a store directory that the process using it
// holds locked.
const lockName = "LOCK"

// errLocked is what tryLock returns when another holder has the lock.
var errLocked = errors.New("locked")

// lockDir takes the store directory for this Store alone. Two stores on one
// directory, in two processes or one, would append to the same log and
// delete each other's log files, losing applied events; so the second is
// refused. The lock is an flock on dir/LOCK: the kernel releases it when
// the holder exits, kill -9 included, so a crash never leaves a stale lock
// behind (the file itself stays and is harmless).
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("data directory %s is in use by another pophub process (or another store in this one)", dir)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

// unlockDir releases the lock lockDir took; closing the file releases it.
func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("releasing store directory lock: %w", err)
	}
	return nil
}
