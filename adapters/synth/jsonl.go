package synth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pophub/pophub/schemas"
)

// WriteJSONL writes the population's events to DIR/<source>.jsonl, one
// CloudEvent per line in arrival order, as `pophub publish --file` reads
// them. It creates the directory and all eight files (a source without
// events gets an empty file) and replaces files of an earlier run.
func WriteJSONL(ctx context.Context, cfg Config, dir string) (Stats, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, fmt.Errorf("creating output directory: %w", err)
	}
	type file struct {
		f *os.File
		w *bufio.Writer
	}
	files := make(map[schemas.Source]file, len(schemas.Sources))
	closeAll := func() error {
		var errs []error
		for _, s := range schemas.Sources {
			f, ok := files[s]
			if !ok {
				continue
			}
			if err := f.w.Flush(); err != nil {
				errs = append(errs, fmt.Errorf("writing %s: %w", f.f.Name(), err))
			}
			if err := f.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing %s: %w", f.f.Name(), err))
			}
			delete(files, s)
		}
		return errors.Join(errs...)
	}
	defer closeAll()
	for _, s := range schemas.Sources {
		f, err := os.Create(filepath.Join(dir, string(s)+".jsonl"))
		if err != nil {
			return Stats{}, fmt.Errorf("creating output file: %w", err)
		}
		files[s] = file{f, bufio.NewWriterSize(f, 256<<10)}
	}
	st, err := GenerateStats(ctx, cfg, func(ev schemas.Event) error {
		b, err := schemas.Encode(ev)
		if err != nil {
			return fmt.Errorf("encoding event %s: %w", ev.ID, err)
		}
		w := files[ev.Source].w
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("writing events: %w", err)
		}
		return w.WriteByte('\n')
	})
	if err != nil {
		return st, err
	}
	return st, closeAll()
}
