package cdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// cdcRole creates a role as the package documentation sets one up: LOGIN
// REPLICATION, nothing else. It returns its name and the test database's
// URL for it, and drops it, with what it owns and was granted, when the
// test ends (after the test's tables, whose clean-up is registered
// later).
func cdcRole(t testing.TB, db *pgx.Conn) (role, dsn string) {
	t.Helper()
	b := make([]byte, 5)
	rand.Read(b)
	role = "cdc_test_" + hex.EncodeToString(b)
	password := hex.EncodeToString(b) + "pw"
	u, err := url.Parse(testenv.PostgresURL())
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		testenv.Unavailable(t, "POPHUB_TEST_POSTGRES is not a postgres:// URL, whose user this test could replace")
	}
	u.User = url.UserPassword(role, password)
	exec(t, db, "CREATE ROLE "+role+" LOGIN REPLICATION PASSWORD '"+password+"'")
	t.Cleanup(func() {
		ctx := context.Background()
		db, err := pgx.Connect(ctx, testenv.PostgresURL())
		if err != nil {
			t.Errorf("cleaning up: %v", err)
			return
		}
		defer db.Close(ctx)
		if _, err := db.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role); err != nil {
			t.Errorf("ending the sessions of %s: %v", role, err)
		}
		for _, sql := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := db.Exec(ctx, sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	return role, u.String()
}

func newStreamAs(t testing.TB, dsn, table string, pub Publisher) *Stream {
	t.Helper()
	m := exampleMapping(t)
	m.Table = table
	s, err := New(Config{Source: schemas.Housing, Postgres: dsn, Table: table, Mapping: m, Publisher: pub,
		FlushInterval: 5 * time.Millisecond, StatusInterval: time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// failedStart runs a stream that cannot start and returns its error,
// checking that it left no slot behind.
func failedStart(t testing.TB, db *pgx.Conn, s *Stream) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run: %v, want it to fail on start", err)
	}
	var slots int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", s.Slot()).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 0 {
		t.Errorf("the failed start left slot %s, which keeps WAL", s.Slot())
	}
	return err
}

func wantError(t testing.TB, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q\nlacks %q", err, p)
		}
	}
}

func currentDatabase(t testing.TB, db *pgx.Conn) string {
	t.Helper()
	var name string
	if err := db.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// streams checks that s copies the table's one row and streams an
// insert.
func streams(t testing.TB, db *pgx.Conn, s *Stream, table string) {
	t.Helper()
	r := start(t, s)
	waitFor(t, r, "the snapshot", func() bool { return s.Stats().Published == 1 })
	insertLease(t, db, table, 2, citizen(2))
	waitFor(t, r, "the insert", func() bool { return s.Stats().Published == 2 })
	r.stop(t)
}

// TestSetupAsDocumented: a user with REPLICATION that owns the table
// streams it once it has CREATE on the database; without, the start
// fails before creating a slot, saying which grant is missing.
func TestSetupAsDocumented(t *testing.T) {
	db := connect(t)
	role, dsn := cdcRole(t, db)
	table := rentalsTable(t, db)
	exec(t, db, "ALTER TABLE "+table+" OWNER TO "+role)
	insertLease(t, db, table, 1, citizen(1))
	database := currentDatabase(t, db)
	pub := newPublisher(t, testenv.Kafka(t, partitions))

	err := failedStart(t, db, newStreamAs(t, dsn, table, pub))
	wantError(t, err, "creating publication pophub_"+table,
		"the user "+role+" may not create publications in database "+database+": GRANT CREATE ON DATABASE "+database+" TO "+role,
		"ALTER PUBLICATION pophub_"+table+" OWNER TO "+role, "SQLSTATE 42501")

	exec(t, db, "GRANT CREATE ON DATABASE "+database+" TO "+role)
	streams(t, db, newStreamAs(t, dsn, table, pub), table)
}

// TestSetupWithTheOwnersPublication: a user with REPLICATION that does
// not own the table streams it through a publication its owner created
// and handed over, with SELECT on the table; it needs no CREATE on the
// database. Each right missing on the way stops the start before it
// creates a slot, saying which.
func TestSetupWithTheOwnersPublication(t *testing.T) {
	db := connect(t)
	role, dsn := cdcRole(t, db)
	table := rentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1))
	publication := "pophub_" + table
	exec(t, db, "CREATE PUBLICATION "+publication+" FOR TABLE "+table+" WITH (publish = 'insert, update, delete')")
	pub := newPublisher(t, testenv.Kafka(t, partitions))

	err := failedStart(t, db, newStreamAs(t, dsn, table, pub))
	wantError(t, err, "the user "+role+" may not read table public."+table+": GRANT SELECT ON public."+table+" TO "+role)
	exec(t, db, "GRANT SELECT ON "+table+" TO "+role)

	exec(t, db, "ALTER ROLE "+role+" NOREPLICATION")
	err = failedStart(t, db, newStreamAs(t, dsn, table, pub))
	wantError(t, err, "the user "+role+" lacks the REPLICATION attribute: ALTER ROLE "+role+" REPLICATION", "SQLSTATE 42501")
	exec(t, db, "ALTER ROLE "+role+" REPLICATION")

	err = failedStart(t, db, newStreamAs(t, dsn, table, pub))
	wantError(t, err, "the user "+role+" does not own publication "+publication,
		"ALTER PUBLICATION "+publication+" OWNER TO "+role, "SQLSTATE 42501")

	exec(t, db, "ALTER PUBLICATION "+publication+" OWNER TO "+role) // as a superuser
	streams(t, db, newStreamAs(t, dsn, table, pub), table)
}
