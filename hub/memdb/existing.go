package memdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNoStore is what OpenExisting returns, wrapped, for a directory that
// holds no store: most often a mistyped path.
var ErrNoStore = errors.New("no hub store")

// OpenExisting opens a store directory a hub has written (one holding a
// snapshot or a log), for the tools that check a stopped hub's store
// ('stats verify'). Unlike Open it refuses a missing or empty directory
// instead of creating one: a tool pointed at the wrong path would
// otherwise report success on a new, empty store, and leave behind a
// directory that later opens only in the tool's sealing mode.
func OpenExisting(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("memdb: OpenExisting needs a directory")
	}
	st, err := os.Stat(cfg.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w in %s (the directory does not exist)", ErrNoStore, cfg.Dir)
	case err != nil:
		return nil, fmt.Errorf("opening store directory: %w", err)
	case !st.IsDir():
		return nil, fmt.Errorf("%w in %s (not a directory)", ErrNoStore, cfg.Dir)
	}
	gens, err := walGens(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("listing log files: %w", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, snapshotName)); len(gens) == 0 && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (no snapshot or log)", ErrNoStore, cfg.Dir)
	}
	return Open(ctx, cfg)
}
