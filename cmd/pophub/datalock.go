package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// dataLockName is the file in a dev data directory that the hub using it
// holds locked. (The memdb store locks its own directory, <data>/store,
// with its own LOCK file; this one covers the whole data directory.)
const dataLockName = "LOCK"

// lockDataDir takes the data directory dir for this hub alone. A second
// dev hub on it would start its embedded broker and NATS server on
// dir/kafka and dir/nats, rewriting the running hub's partition snapshots
// and stream files before any store lock refused it; so it is refused
// first, before anything under dir is touched. The lock is an flock on
// dir/LOCK: the kernel releases it when the holder exits, kill -9
// included, so a crash never leaves a stale lock behind.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	path := filepath.Join(dir, dataLockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another pophub process", dir)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

// unlockDataDir releases the lock lockDataDir took; closing the file
// releases it.
func unlockDataDir(f *os.File) error {
	if f == nil {
		return nil
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("releasing data directory lock: %w", err)
	}
	return nil
}
