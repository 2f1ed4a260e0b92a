package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartRepairsATriggerNarrowedToColumns: a trigger re-created as
// BEFORE UPDATE OF status OR DELETE keeps its type and condition but lets
// through every UPDATE that does not name status. A hub's start puts the
// whole trigger back, so auditors can rely on no entry being rewritten.
func TestStartRepairsATriggerNarrowedToColumns(t *testing.T) {
	ctx := context.Background()
	p := testPostgres(t)
	fill(t, p, testKey(t), base, 3, 3)
	s := pgx.Identifier{p.schema}.Sanitize()
	if _, err := p.pool.Exec(ctx, "CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OF status OR DELETE ON "+s+
		".audit_log FOR EACH ROW EXECUTE FUNCTION "+s+".audit_guard()"); err != nil {
		t.Fatal(err)
	}
	q, err := OpenPostgres(ctx, PostgresConfig{Pool: p.pool, Schema: p.schema})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	tag, err := p.pool.Exec(ctx, "UPDATE "+p.log+" SET identity = 'someone-else', purpose = 'rewritten' WHERE seq = 2")
	if err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("an UPDATE of an entry after a start: %v (%s), want refused by the trigger: the start accepted the narrowed trigger", err, tag)
	}
}

// TestStartRepairsAGuardGivenASearchPath: ALTER FUNCTION audit_guard()
// SET search_path = evil, pg_catalog would have the guard read the clock
// of another schema, and every entry would count as past its legal floor.
// A hub's start re-creates the guard with its own search path, so the
// entries within their floors stay undeletable.
func TestStartRepairsAGuardGivenASearchPath(t *testing.T) {
	ctx := context.Background()
	p := testPostgres(t)
	k := testKey(t)
	now := time.Now().UTC()
	appendAt(t, p, k, []Entry{readAt(k, now.AddDate(0, 0, -2), 0), readAt(k, now.AddDate(0, 0, -1), 1), readAt(k, now, 2)})
	s := pgx.Identifier{p.schema}.Sanitize()
	evil := pgx.Identifier{p.schema + "_evil"}.Sanitize()
	t.Cleanup(func() { p.pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+evil+" CASCADE") })
	for _, sql := range []string{
		"CREATE SCHEMA " + evil,
		"CREATE FUNCTION " + evil + ".now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT timestamptz '2100-01-01' $$",
		"ALTER FUNCTION " + s + ".audit_guard() SET search_path = " + evil + ", pg_catalog",
	} {
		if _, err := p.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	q, err := OpenPostgres(ctx, PostgresConfig{Pool: p.pool, Schema: p.schema})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	err = deleteUnderThePurgeFlag(ctx, p, "", 3)
	if err == nil {
		var cfg []string
		p.pool.QueryRow(ctx, "SELECT proconfig FROM pg_proc WHERE oid = to_regprocedure($1)", s+".audit_guard()").Scan(&cfg)
		t.Fatalf("after a start, today's entry was deleted under the purge flag: the start kept audit_guard with proconfig %v", cfg)
	}
	if !strings.Contains(err.Error(), "legal retention floor") {
		t.Fatalf("refused, but not by the floor: %v", err)
	}
}

// TestGuardIgnoresTheSessionsSearchPath: a session allowed to delete
// from audit_log that sets the purge flag and its own search_path to a
// schema with another now() still cannot delete today's entries: the
// guard and the floor resolve names in pg_catalog only.
func TestGuardIgnoresTheSessionsSearchPath(t *testing.T) {
	ctx := context.Background()
	p := testPostgres(t)
	k := testKey(t)
	now := time.Now().UTC()
	appendAt(t, p, k, []Entry{readAt(k, now.AddDate(0, 0, -1), 1), readAt(k, now, 2)})
	evil := pgx.Identifier{p.schema + "_evil"}.Sanitize()
	t.Cleanup(func() { p.pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+evil+" CASCADE") })
	for _, sql := range []string{
		"CREATE SCHEMA " + evil,
		"CREATE FUNCTION " + evil + ".now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT timestamptz '2100-01-01' $$",
	} {
		if _, err := p.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	err := deleteUnderThePurgeFlag(ctx, p, evil+", pg_catalog", 2)
	if err == nil || !strings.Contains(err.Error(), "legal retention floor") {
		t.Fatalf("deleting today's entry under the purge flag and search_path %s: %v, want refused by the floor", evil, err)
	}
}

// deleteUnderThePurgeFlag deletes entry seq in a transaction that sets
// the purge flag, and searchPath when not empty.
func deleteUnderThePurgeFlag(ctx context.Context, p *Postgres, searchPath string, seq int64) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('pophub.audit_purge', 'on', true)"); err != nil {
			return err
		}
		if searchPath != "" {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path = "+searchPath); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, "DELETE FROM "+p.log+" WHERE seq = $1", seq)
		return err
	})
}
