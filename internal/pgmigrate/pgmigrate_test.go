package pgmigrate

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pophub/pophub/internal/testenv"
)

// pool opens a pool whose search_path is a schema of the test's own.
func pool(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	schema := testenv.Schema(t)
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, schema
}

func versions(t *testing.T, p *pgxpool.Pool) string {
	t.Helper()
	var v string
	if err := p.QueryRow(context.Background(), "SELECT coalesce(string_agg(version, ',' ORDER BY version), '') FROM schema_migrations").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	first := fstest.MapFS{
		"migrations/0002_b.sql": {Data: []byte("ALTER TABLE a ADD COLUMN y int")},
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x int)")},
		"migrations/README":     {Data: []byte("not a migration")},
	}
	later := fstest.MapFS{
		"migrations/0001_a.sql": first["migrations/0001_a.sql"],
		"migrations/0002_b.sql": first["migrations/0002_b.sql"],
		"migrations/0003_c.sql": {Data: []byte("INSERT INTO a VALUES (1, 2)")},
	}
	broken := fstest.MapFS{
		"migrations/0001_a.sql": first["migrations/0001_a.sql"],
		"migrations/0002_b.sql": first["migrations/0002_b.sql"],
		"migrations/0003_c.sql": {Data: []byte("INSERT INTO a VALUES (3, 4); INSERT INTO nowhere VALUES (1)")},
	}
	tests := []struct {
		name    string
		runs    []fstest.MapFS
		want    string // versions recorded after the last run
		rows    int    // rows of table a
		wantErr string // of the last run
	}{
		{name: "in name order, only .sql", runs: []fstest.MapFS{first}, want: "0001_a,0002_b"},
		{name: "again: nothing to do", runs: []fstest.MapFS{first, first}, want: "0001_a,0002_b"},
		{name: "a later release adds one", runs: []fstest.MapFS{first, later}, want: "0001_a,0002_b,0003_c", rows: 1},
		{name: "a failing migration changes nothing", runs: []fstest.MapFS{first, broken}, want: "0001_a,0002_b", wantErr: "migrating 0003_c: applying"},
		{name: "an older binary on a newer schema is refused", runs: []fstest.MapFS{later, first}, want: "0001_a,0002_b,0003_c", rows: 1,
			wantErr: "migrations this binary does not know (0003_c)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, schema := pool(t)
			var err error
			for _, files := range tc.runs {
				err = Apply(ctx, p, files, schema, "pgmigrate-test", nil)
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Apply: %v, want an error containing %q", err, tc.wantErr)
			}
			if got := versions(t, p); got != tc.want {
				t.Errorf("applied %q, want %q", got, tc.want)
			}
			var rows int
			if err := p.QueryRow(ctx, "SELECT count(*) FROM a").Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != tc.rows {
				t.Errorf("table a has %d rows, want %d", rows, tc.rows)
			}
		})
	}
}

// TestApplyConcurrently: instances starting at once apply each migration
// once; none fails on another's half-done work.
func TestApplyConcurrently(t *testing.T) {
	p, schema := pool(t)
	files := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x int)")},
		"migrations/0002_b.sql": {Data: []byte("INSERT INTO a VALUES (1)")},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- Apply(context.Background(), p, files, schema, "pgmigrate-test", nil) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Apply: %v", err)
		}
	}
	var rows int
	if err := p.QueryRow(context.Background(), "SELECT count(*) FROM a").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || versions(t, p) != "0001_a,0002_b" {
		t.Errorf("after four concurrent runs: %d rows, versions %q; want each migration once", rows, versions(t, p))
	}
}
