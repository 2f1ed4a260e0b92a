package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
)

// TestOpenExistingCreatesNothing: the tools' openers refuse a log that is
// not there with ErrNoLog, and leave no file, directory, schema or table
// behind; on a log the hub made they open it.
func TestOpenExistingCreatesNothing(t *testing.T) {
	ctx := context.Background()
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		missing := filepath.Join(dir, "typo", "audit.jsonl")
		if f, err := OpenFileExisting(missing); !errors.Is(err, ErrNoLog) {
			if err == nil {
				f.Close()
			}
			t.Fatalf("OpenFileExisting of a missing file: %v, want ErrNoLog", err)
		}
		if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the directory was created (%v)", err)
		}
		if _, err := OpenFileExisting(dir); err == nil || errors.Is(err, ErrNoLog) {
			t.Errorf("OpenFileExisting of a directory: %v, want another error", err)
		}
		path := filepath.Join(dir, "audit.jsonl")
		l, err := OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		e, err := OpenFileExisting(path)
		if err != nil {
			t.Fatalf("OpenFileExisting of the hub's log: %v", err)
		}
		e.Close()
	})
	t.Run("postgres", func(t *testing.T) {
		url, schema := testenv.PostgresURL(), testenv.Schema(t)
		if p, err := OpenPostgresExisting(ctx, PostgresConfig{URL: url, Schema: schema}); !errors.Is(err, ErrNoLog) {
			if err == nil {
				p.Close()
			}
			t.Fatalf("OpenPostgresExisting of a missing schema: %v, want ErrNoLog", err)
		}
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var exists bool
		if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil || exists {
			t.Fatalf("the schema was created (%v, %v)", exists, err)
		}
		p, err := OpenPostgres(ctx, PostgresConfig{URL: url, Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		e, err := OpenPostgresExisting(ctx, PostgresConfig{URL: url, Schema: schema})
		if err != nil {
			t.Fatalf("OpenPostgresExisting of the hub's log: %v", err)
		}
		e.Close()
	})
}
