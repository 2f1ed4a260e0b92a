package pgmigrate

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
)

// longReader opens a transaction, as application app, that has read
// table and stays open (pg_dump, a nightly report) until end is called.
func longReader(t *testing.T, app, table string) (end func()) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = app
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	end = func() { tx.Rollback(ctx) }
	t.Cleanup(end)
	if _, err := tx.Exec(ctx, "SELECT count(*) FROM "+table); err != nil {
		t.Fatal(err)
	}
	return end
}

// migratedTwice applies a first migration creating table a, and returns
// the files of a release adding a migration that alters it.
func migratedTwice(t *testing.T) (schema string, next fstest.MapFS) {
	t.Helper()
	p, schema := pool(t)
	v1 := fstest.MapFS{"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x int); INSERT INTO a VALUES (1)")}}
	if err := Apply(context.Background(), p, v1, schema, "pgmigrate-test", nil); err != nil {
		t.Fatal(err)
	}
	return schema, fstest.MapFS{
		"migrations/0001_a.sql": v1["migrations/0001_a.sql"],
		"migrations/0002_b.sql": {Data: []byte("ALTER TABLE a ADD COLUMN y int")},
	}
}

// TestMigrationBehindAReaderDoesNotHoldUpOthers: a migration that alters
// a table waits for ACCESS EXCLUSIVE behind whatever reads it (pg_dump, a
// report, `pophub audit export`), and every later reader and writer of
// the table queues behind the migration. Before, that lasted as long as
// the first reader ran, and the starting instance hung without a word.
// Now the others are held back at most lockTimeout, the start logs at
// WARN the lock it waits for and who holds it, and the migration is
// applied once the reader is done.
func TestMigrationBehindAReaderDoesNotHoldUpOthers(t *testing.T) {
	ctx := context.Background()
	schema, next := migratedTwice(t)
	table := pgx.Identifier{schema, "a"}.Sanitize()
	endReader := longReader(t, "nightly-report", table)

	var logs testenv.LogBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	migrated := make(chan error, 1)
	go func() {
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		migrated <- Apply(mctx, poolAs(t, "", schema), next, schema, "pgmigrate-test", log)
	}()
	time.Sleep(700 * time.Millisecond)

	// Anyone else reading the table.
	other, err := pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	_, readErr := other.Exec(octx, "SELECT count(*) FROM "+table)
	waited := time.Since(start)
	endReader()
	if err := <-migrated; err != nil {
		t.Fatalf("the migration, once the reader was done: %v", err)
	}
	if readErr != nil {
		t.Fatalf("a plain SELECT of the table while a migration waited behind a reader: %v after %s", readErr, waited.Round(time.Millisecond))
	}
	t.Logf("the SELECT waited %s; log:\n%s", waited.Round(time.Millisecond), logs.String())
	for _, want := range []string{`"level":"WARN"`, `"version":"0002_b"`, `AccessExclusiveLock on a`, `application_name \"nightly-report\"`, "transaction since"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %s", want)
		}
	}
}

// TestMigrationWaitEndsWithTheStart: a start given up (its context ends)
// while its migration waits for a lock fails saying which lock and who
// holds it, and leaves the migration unapplied.
func TestMigrationWaitEndsWithTheStart(t *testing.T) {
	ctx := context.Background()
	schema, next := migratedTwice(t)
	longReader(t, "nightly-report", pgx.Identifier{schema, "a"}.Sanitize())

	// Long enough for several 2 s lock waits and the look at who holds
	// the lock, under -race on a busy machine.
	mctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p := poolAs(t, "", schema)
	err := Apply(mctx, p, next, schema, "pgmigrate-test", nil)
	if err == nil {
		t.Fatal("migrated while a reader held the table")
	}
	t.Log(err)
	for _, want := range []string{"migrating 0002_b", "AccessExclusiveLock on a", `"nightly-report"`, "deadline exceeded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %s", want)
		}
	}
	if got := versions(t, p); got != "0001_a" {
		t.Errorf("applied %q, want only 0001_a", got)
	}
}
