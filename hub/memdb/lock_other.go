//go:build !unix

package memdb

import "os"

// Without flock, nothing keeps a second process off the directory.
func tryLock(*os.File) error { return nil }
