package pgmigrate

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pophub/pophub/internal/testenv"
)

// pool opens a pool whose search_path is a schema of the test's own.
func pool(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	schema := testenv.Schema(t)
	return poolAs(t, "", schema), schema
}

// poolAs opens a pool on the test database logged in as role (""
// the test database's user) whose search_path is schema.
func poolAs(t *testing.T, role, schema string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		cfg.ConnConfig.User = role
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// admin runs statements on the test database as its (superuser) user.
func admin(t *testing.T, sqls ...string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, sql := range sqls {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// role creates a login role of the test's own, neither superuser nor
// allowed to create anything, and drops it, and what it owns, when the
// test ends (after the pools on it closed: cleanups run last first).
func role(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("pgmigrate_test_%d_%d", os.Getpid(), time.Now().UnixNano()%1e12)
	admin(t, "CREATE ROLE "+name+" LOGIN")
	t.Cleanup(func() { admin(t, "DROP OWNED BY "+name, "DROP ROLE "+name) })
	return name
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

// TestApplyWithoutCreate: a role that may not create in the database
// starts a component whose migrations are all applied, and migrates a
// schema it owns; PostgreSQL checks CREATE before IF NOT EXISTS, so only
// looking first lets it. A migration pending on a schema the role may
// not change still fails, naming the refusal.
func TestApplyWithoutCreate(t *testing.T) {
	ctx := context.Background()
	v1 := fstest.MapFS{"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x int)")}}
	v2 := fstest.MapFS{
		"migrations/0001_a.sql": v1["migrations/0001_a.sql"],
		"migrations/0002_b.sql": {Data: []byte("ALTER TABLE a ADD COLUMN y int")},
	}
	tests := []struct {
		name string
		// setup prepares schema for role, as the DBA (or an owner role
		// migrating) would.
		setup   func(t *testing.T, role, schema string)
		files   fstest.MapFS
		want    string // versions recorded afterwards
		wantErr string
	}{
		{
			name:  "owner of a schema the DBA created: first start",
			setup: func(t *testing.T, role, schema string) { admin(t, "CREATE SCHEMA "+schema+" AUTHORIZATION "+role) },
			files: v1, want: "0001_a",
		},
		{
			name: "owner of a schema the DBA created: restart",
			setup: func(t *testing.T, role, schema string) {
				admin(t, "CREATE SCHEMA "+schema+" AUTHORIZATION "+role)
				if err := Apply(ctx, poolAs(t, role, schema), v1, schema, "pgmigrate-test", nil); err != nil {
					t.Fatalf("first start: %v", err)
				}
			},
			files: v1, want: "0001_a",
		},
		{
			name: "owner of a schema the DBA created: upgrade",
			setup: func(t *testing.T, role, schema string) {
				admin(t, "CREATE SCHEMA "+schema+" AUTHORIZATION "+role)
				if err := Apply(ctx, poolAs(t, role, schema), v1, schema, "pgmigrate-test", nil); err != nil {
					t.Fatalf("first start: %v", err)
				}
			},
			files: v2, want: "0001_a,0002_b",
		},
		{
			name:  "DML only, on a schema another role migrated",
			setup: dmlOnly(v1),
			files: v1, want: "0001_a",
		},
		{
			name:  "DML only, a migration pending",
			setup: dmlOnly(v1),
			files: v2, want: "0001_a", wantErr: "migrating 0002_b: applying: ERROR: must be owner of table a",
		},
		{
			name:  "nothing granted, a new schema",
			setup: func(t *testing.T, role, schema string) {},
			files: v1, wantErr: "creating schema: ERROR: permission denied for database",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, schema := role(t), testenv.Schema(t)
			tc.setup(t, r, schema)
			err := Apply(ctx, poolAs(t, r, schema), tc.files, schema, "pgmigrate-test", nil)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Apply as role %s: %v", r, err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Apply as role %s: %v, want an error containing %q", r, err, tc.wantErr)
			}
			if tc.want != "" {
				if got := versions(t, poolAs(t, "", schema)); got != tc.want {
					t.Errorf("applied %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// dmlOnly migrates the schema with files as the test database's user and
// grants role what a running component needs: USAGE on the schema and DML
// on its tables.
func dmlOnly(files fstest.MapFS) func(t *testing.T, role, schema string) {
	return func(t *testing.T, role, schema string) {
		t.Helper()
		if err := Apply(context.Background(), poolAs(t, "", schema), files, schema, "pgmigrate-test", nil); err != nil {
			t.Fatalf("migrating as the owner: %v", err)
		}
		admin(t, "GRANT USAGE ON SCHEMA "+schema+" TO "+role,
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" TO "+role)
	}
}
