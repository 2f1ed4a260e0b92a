package audit

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
)

// longReader opens a transaction that has read the audit log and keeps
// it open, as an `audit export`, a verify or pg_dump over a year's trail
// does; it ends when the test does, or when the returned func is called.
func longReader(t testing.TB, p *Postgres) (end func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT count(*) FROM "+p.log); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	end = func() {
		once.Do(func() {
			tx.Rollback(ctx)
			conn.Close(ctx)
		})
	}
	t.Cleanup(end)
	return end
}

// stillRecording checks that the running instance p stores an entry and
// answers who-read within 2 s each, as its HTTP reads need (the writer's
// queue fills, and reads are held 2 s and their entries dropped, when
// Append waits longer).
func stillRecording(t testing.TB, p *Postgres, k Key, i int) error {
	t.Helper()
	ctx := context.Background()
	c := newChainer(k)
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	b := []Entry{sample(k, time.Now().UTC(), i)}
	if err := p.Append(actx, b, func(h Link) Link { return c.link(h, b) }); err != nil {
		return err
	}
	wctx, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	_, err := p.WhoRead(wctx, "nobody", base, time.Now().Add(time.Hour))
	return err
}

// TestOpenBehindALongReaderLeavesTheTrailWorking: a hub instance that
// starts (OpenPostgres runs at every start under --policy) while someone
// reads the audit log in a long transaction does not stop the other
// instances' audit writes and who-read. Before, its start ran ALTER TABLE
// … ADD COLUMN IF NOT EXISTS, which queues for ACCESS EXCLUSIVE even when
// the column exists, with no lock_timeout and holding the chain's lock:
// every Append and SELECT of the trail queued behind it for as long as the
// reader ran, and the hub dropped audit entries.
func TestOpenBehindALongReaderLeavesTheTrailWorking(t *testing.T) {
	ctx := context.Background()
	p := testPostgres(t)
	k := testKey(t)
	fill(t, p, k, base, 10, 10)
	endReader := longReader(t, p)

	started := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		q, err := OpenPostgres(sctx, PostgresConfig{URL: testenv.PostgresURL(), Schema: p.schema})
		if err == nil {
			q.Close()
		}
		started <- err
	}()
	time.Sleep(700 * time.Millisecond)
	recErr := stillRecording(t, p, k, 10)
	endReader()
	if err := <-started; err != nil {
		t.Fatalf("opening the log behind a reader: %v", err)
	}
	if recErr != nil {
		t.Fatalf("the running instance, while another started behind a reader of the audit log: %v", recErr)
	}
}

// TestOpenThatMustAlterTheLogYieldsToReaders: when a start must change
// the table (a log of the release before redaction lacks its column,
// which only an ACCESS EXCLUSIVE lock adds) behind a long reader, it
// waits at most LockTimeout at a time in the lock queue, logs who holds
// the table, and tries again, while the running instance keeps writing
// and reading the trail; it adds the column once the reader is done.
func TestOpenThatMustAlterTheLogYieldsToReaders(t *testing.T) {
	ctx := context.Background()
	first := testPostgres(t)
	k := testKey(t)
	fill(t, first, k, base, 10, 10)
	if _, err := first.pool.Exec(ctx, "ALTER TABLE "+first.log+" DROP COLUMN redacted"); err != nil {
		t.Fatal(err)
	}
	// The running instance, of the previous release in effect.
	p, err := OpenPostgresExisting(ctx, PostgresConfig{Pool: first.pool, Schema: first.schema})
	if err != nil {
		t.Fatal(err)
	}
	endReader := longReader(t, p)

	var logs testenv.LogBuffer
	started := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		q, err := OpenPostgres(sctx, PostgresConfig{URL: testenv.PostgresURL(), Schema: p.schema,
			LockTimeout: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err == nil {
			q.Close()
		}
		started <- err
	}()
	time.Sleep(700 * time.Millisecond)
	for i := range 3 {
		if err := stillRecording(t, p, k, 10+i); err != nil {
			t.Fatalf("the running instance, while another waited to alter the log behind a reader: %v", err)
		}
	}
	select {
	case err := <-started:
		t.Fatalf("the start finished behind the reader: %v", err)
	default:
	}
	endReader()
	if err := <-started; err != nil {
		t.Fatalf("opening the log once the reader was done: %v", err)
	}
	if got := logs.String(); !strings.Contains(got, "column audit_log.redacted") || !strings.Contains(got, "AccessShareLock on "+p.schema+".audit_log") {
		t.Errorf("the wait was not logged with what it waits for and who holds the table:\n%s", got)
	}
	if todo, err := ddlFor(p.schema).missing(ctx, p.pool); err != nil || len(todo) > 0 {
		t.Errorf("after the start: missing %s, %v", stepNames(todo), err)
	}
}

// TestOpenRepairsWhatIsMissingOrStale: the catalog check that lets a
// start skip the DDL sees every object the DDL makes as this release
// makes it, so a start still puts back an index dropped, a trigger
// disabled, dropped or given a condition, or a guard function an earlier
// release replaced; and on an intact log it finds nothing to do.
func TestOpenRepairsWhatIsMissingOrStale(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, sql, step string
	}{
		{"intact", "", ""},
		{"index dropped", "DROP INDEX $S.audit_log_subject", "index audit_log_subject"},
		{"column dropped", "ALTER TABLE $S.audit_log DROP COLUMN redacted", "column audit_log.redacted"},
		{"trigger disabled", "ALTER TABLE $S.audit_log DISABLE TRIGGER audit_log_append_only", "trigger audit_log_append_only"},
		{"trigger dropped", "DROP TRIGGER audit_anchor_no_truncate ON $S.audit_anchor", "trigger audit_anchor_no_truncate"},
		{"trigger given a condition", "CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON $S.audit_log " +
			"FOR EACH ROW WHEN (false) EXECUTE FUNCTION $S.audit_guard()", "trigger audit_log_append_only"},
		{"trigger narrowed to a column", "CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OF status OR DELETE ON $S.audit_log " +
			"FOR EACH ROW EXECUTE FUNCTION $S.audit_guard()", "trigger audit_log_append_only"},
		{"guard of the previous release", oldGuard, "function audit_guard"},
		{"guard given a search_path", "ALTER FUNCTION $S.audit_guard() SET search_path = public, pg_catalog", "function audit_guard"},
		{"guard's settings reset", "ALTER FUNCTION $S.audit_guard() RESET ALL", "function audit_guard"},
		{"guard made security definer", "ALTER FUNCTION $S.audit_guard() SECURITY DEFINER", "function audit_guard"},
		{"floor made volatile", "ALTER FUNCTION $S.audit_floor(timestamptz, integer) VOLATILE", "function audit_floor"},
		{"floor given a setting", "ALTER FUNCTION $S.audit_floor(timestamptz, integer) SET TimeZone = 'UTC'", "function audit_floor"},
		{"floor changed", "CREATE OR REPLACE FUNCTION $S.audit_floor(t timestamptz, n integer) RETURNS timestamptz " +
			"LANGUAGE sql IMMUTABLE STRICT AS $g$ SELECT t - make_interval(months => n)$g$", "function audit_floor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPostgres(t)
			fill(t, p, testKey(t), base, 3, 3)
			plan := ddlFor(p.schema)
			if tc.sql != "" {
				if _, err := p.pool.Exec(ctx, strings.ReplaceAll(tc.sql, "$S", pgx.Identifier{p.schema}.Sanitize())); err != nil {
					t.Fatal(err)
				}
			}
			todo, err := plan.missing(ctx, p.pool)
			if err != nil {
				t.Fatal(err)
			}
			if got := stepNames(todo); got != tc.step {
				t.Fatalf("the catalog check finds %q missing, want %q", got, tc.step)
			}
			q, err := OpenPostgres(ctx, PostgresConfig{Pool: p.pool, Schema: p.schema})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if todo, err := plan.missing(ctx, p.pool); err != nil || len(todo) > 0 {
				t.Fatalf("after a start: missing %q, %v", stepNames(todo), err)
			}
			if _, err := p.pool.Exec(ctx, "DELETE FROM "+p.log); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("a DELETE after the start: %v, want refused by the trigger", err)
			}
		})
	}
}
