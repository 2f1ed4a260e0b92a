package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// testRole creates a login role of the test's own, neither superuser nor
// allowed to create anything in the database, and drops it with what it
// owns and was granted when the test ends. Stores opened as the role
// after this call close before.
func testRole(t testing.TB) string {
	t.Helper()
	role := fmt.Sprintf("pophub_role_%d_%d", os.Getpid(), time.Now().UnixNano()%1e12)
	admin(t, testenv.Postgres(t), "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() { admin(t, testenv.Postgres(t), "DROP OWNED BY "+role, "DROP ROLE "+role) })
	return role
}

// urlAs is the database URL u with role as its user.
func urlAs(t testing.TB, u, role string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.User = url.User(role)
	return p.String()
}

// tablesIn counts the hub's persons table in schema (0 or 1).
func tablesIn(t testing.TB, schema string) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'persons'", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOpenWithoutCreateOnTheDatabase: the roles a DBA gives a hub without
// CREATE on the database start it: the owner of a schema the DBA created
// migrates it at first start and opens it again; a role with only USAGE
// and DML on a schema another role migrated opens it and applies events.
func TestOpenWithoutCreateOnTheDatabase(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		grant func(t *testing.T, role, schema string)
	}{
		{"owner of a schema the DBA created", func(t *testing.T, role, schema string) {
			admin(t, testenv.Postgres(t), "CREATE SCHEMA "+schema+" AUTHORIZATION "+role)
		}},
		{"DML only, on a schema another role migrated", func(t *testing.T, role, schema string) {
			openTestStore(t, schema).Close()
			admin(t, testenv.Postgres(t), "GRANT USAGE ON SCHEMA "+schema+" TO "+role,
				"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" TO "+role,
				"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "+schema+" TO "+role)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schema := testenv.Schema(t)
			role := testRole(t)
			tc.grant(t, role, schema)
			in := storetest.Population(t, 5, 1)
			for i, batch := range [][]hub.Input{in[:len(in)/2], in[len(in)/2:]} { // first start, restart
				s, err := Open(ctx, Config{URL: urlAs(t, testenv.PostgresURL(), role), Schema: schema})
				if err != nil {
					t.Fatalf("start %d: Open as %s: %v", i+1, role, err)
				}
				_, err = s.Apply(ctx, batch)
				s.Close()
				if err != nil {
					t.Fatalf("start %d: Apply as %s: %v", i+1, role, err)
				}
			}
			if tablesIn(t, schema) != 1 {
				t.Errorf("no store in schema %s", schema)
			}
		})
	}
}

// storeOfOwnRole opens a store as a role of the test's own, which owns
// the store's schema, for tests that change the role's settings. It does
// not fold counters in the background: a fold could open a session
// between the store's reset of its sessions and the test's fix of the
// setting, a session the store would not reset again before resetEvery.
func storeOfOwnRole(t *testing.T) (*Store, string) {
	t.Helper()
	schema := testenv.Schema(t)
	role := testRole(t)
	admin(t, testenv.Postgres(t), "CREATE SCHEMA "+schema+" AUTHORIZATION "+role)
	s, err := Open(context.Background(), Config{URL: urlAs(t, testenv.PostgresURL(), role), Schema: schema, foldEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, role
}

// TestReadOnlyDatabase: on a database that refuses writes (here the role's
// default_transaction_read_only, as on a standby), the store's readiness
// probe fails naming the cause, and Apply fails in a way ingest retries
// (unavailable: the events are fine) and an operator recognises.
func TestReadOnlyDatabase(t *testing.T) {
	ctx := context.Background()
	s, role := storeOfOwnRole(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping of a writable database: %v", err)
	}
	admin(t, testenv.Postgres(t), "ALTER ROLE "+role+" SET default_transaction_read_only = on")
	s.Pool().Reset() // the connections opened from now on are read-only

	err := s.Ping(ctx)
	t.Log(err)
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, hub.ErrUnavailable) || !strings.Contains(err.Error(), "default_transaction_read_only") {
		t.Errorf("Ping of a read-only database = %v, want ErrReadOnly and hub.ErrUnavailable naming default_transaction_read_only", err)
	}
	_, err = s.Apply(ctx, storetest.Population(t, 3, 1))
	t.Log(err)
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("Apply on a read-only database = %v, want ErrReadOnly and hub.ErrUnavailable", err)
	}

	// The DBA's fix reaches the sessions the pool already holds: the
	// refused write had the pool connect anew.
	admin(t, testenv.Postgres(t), "ALTER ROLE "+role+" RESET default_transaction_read_only")
	if _, err := s.Apply(ctx, storetest.Population(t, 3, 1)); err != nil {
		t.Errorf("Apply once the database accepts writes again: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping once the database accepts writes again: %v", err)
	}
}

// TestStatementTimeoutFixed: a statement_timeout on the role shorter than
// a batch takes cancels every batch; once the DBA removes it, the next
// attempt applies, though the pool held sessions started under it.
func TestStatementTimeoutFixed(t *testing.T) {
	ctx := context.Background()
	s, role := storeOfOwnRole(t)
	admin(t, testenv.Postgres(t), "ALTER ROLE "+role+" SET statement_timeout = '1ms'")
	s.Pool().Reset() // the DBA's mistake reaches the sessions opened from now on
	batch := storetest.Population(t, 2000, 1)
	_, err := s.Apply(ctx, batch)
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != "57014" {
		t.Fatalf("Apply under a 1 ms statement_timeout = %v, want it cancelled (57014)", err)
	}
	admin(t, testenv.Postgres(t), "ALTER ROLE "+role+" RESET statement_timeout")
	if _, err := s.Apply(ctx, batch); err != nil {
		t.Errorf("Apply once the statement_timeout is gone: %v", err)
	}
}

// TestSessionsResetAtMostEvery: refused writes close the pool's sessions
// at most once per resetEvery, so that lock waits (lock_timeout met
// while another transaction holds a lock, no setting to fix) do not close
// every reading and writing session at each retry.
func TestSessionsResetAtMostEvery(t *testing.T) {
	ctx := context.Background()
	s, _ := storeOfOwnRole(t)
	use := func() int64 {
		t.Helper()
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.Release()
		return s.pool.Stat().NewConnsCount()
	}
	before := use()
	s.resetSessions()
	if after := use(); after != before+1 {
		t.Fatalf("sessions opened after the first reset: %d, want 1", after-before)
	}
	before = use()
	s.resetSessions()
	if after := use(); after != before {
		t.Errorf("a second reset within %s opened %d sessions, want none", resetEvery, after-before)
	}
}
