package cdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

const partitions = 3

// connect opens a plain connection to the test database, which must run
// with wal_level=logical.
func connect(t testing.TB) *pgx.Conn {
	t.Helper()
	url := testenv.LogicalReplication(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL: %v", err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

// rentalsTable creates a uniquely named rentals table and removes it, its
// publication and the stream's slot when the test ends, even if the
// stream failed or is still connected.
func rentalsTable(t testing.TB, db *pgx.Conn) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 5)
	rand.Read(b)
	table := "cdc_rentals_" + hex.EncodeToString(b)
	_, err := db.Exec(ctx, `CREATE TABLE `+table+` (
		lease_id     bigint PRIMARY KEY,
		tenant_id    text,
		address_code text NOT NULL,
		start_date   date NOT NULL,
		end_date     date,
		signed_at    timestamptz NOT NULL DEFAULT now()
	)`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "ALTER TABLE "+table+" REPLICA IDENTITY FULL"); err != nil {
		t.Fatal(err)
	}
	cleanUpRentals(t, table)
	return table
}

// partitionedRentalsTable is rentalsTable partitioned by start_date into
// 2025 (table_2025) and 2026 (table_2026), each with REPLICA IDENTITY
// FULL.
func partitionedRentalsTable(t testing.TB, db *pgx.Conn) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 5)
	rand.Read(b)
	table := "cdc_rentals_" + hex.EncodeToString(b)
	cleanUpRentals(t, table)
	for _, sql := range []string{
		`CREATE TABLE ` + table + ` (
			lease_id     bigint,
			tenant_id    text,
			address_code text NOT NULL,
			start_date   date NOT NULL,
			end_date     date,
			signed_at    timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (lease_id, start_date)
		) PARTITION BY RANGE (start_date)`,
		`CREATE TABLE ` + table + `_2025 PARTITION OF ` + table + ` FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`,
		`CREATE TABLE ` + table + `_2026 PARTITION OF ` + table + ` FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
		`ALTER TABLE ` + table + `_2025 REPLICA IDENTITY FULL`,
		`ALTER TABLE ` + table + `_2026 REPLICA IDENTITY FULL`,
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return table
}

// cleanUpRentals removes table, its publication and the stream's slot
// when the test ends, even if the stream failed or is still connected.
func cleanUpRentals(t testing.TB, table string) {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		// A fresh connection: the test's may be closed already.
		db, err := pgx.Connect(ctx, testenv.PostgresURL())
		if err != nil {
			t.Errorf("cleaning up: %v", err)
			return
		}
		defer db.Close(ctx)
		testenv.DropReplicationSlot(t, "pophub_housing_"+table)
		if _, err := db.Exec(ctx, "DROP PUBLICATION IF EXISTS pophub_"+table); err != nil {
			t.Errorf("dropping publication: %v", err)
		}
		if _, err := db.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
			t.Errorf("dropping table: %v", err)
		}
	})
}

func newPublisher(t testing.TB, addr string) *publisher.Publisher {
	t.Helper()
	p, err := publisher.New(publisher.Config{Brokers: []string{addr}, Source: schemas.Housing, BatchTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func exampleMapping(t testing.TB) Mapping {
	t.Helper()
	m, err := LoadMapping(filepath.Join("examples", "rentals.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newStream(t testing.TB, table string, pub Publisher, m Mapping) *Stream {
	t.Helper()
	return newStreamWith(t, table, pub, m, func(*Config) {})
}

// newStreamWith is newStream with its configuration changed by set.
func newStreamWith(t testing.TB, table string, pub Publisher, m Mapping, set func(*Config)) *Stream {
	t.Helper()
	m.Table = table
	cfg := Config{Source: schemas.Housing, Postgres: testenv.PostgresURL(), Table: table, Mapping: m, Publisher: pub,
		FlushInterval: 5 * time.Millisecond, StatusInterval: time.Second, Logger: testLogger(t)}
	set(&cfg)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// running is a Stream's Run in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func start(t testing.TB, s *Stream) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it; a clean stop returns context.Canceled.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(60 * time.Second):
			r.err = errors.New("Run did not return within 60s of cancellation")
		}
	})
	if r.err != nil && !errors.Is(r.err, context.Canceled) {
		t.Errorf("Run: %v", r.err)
	}
}

// waitFor polls cond until it holds, failing the test after 30s or if Run
// ended.
func waitFor(t testing.TB, r *running, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("waiting for %s: Run ended: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// citizen makes a valid citizen ID numbered n.
func citizen(n int) string {
	first := fmt.Sprintf("11010119900101%03d", n)
	return first + string(citizenid.CheckChar(first))
}

// records reads and decodes every record of the housing topic.
func records(t testing.TB, addr string) []schemas.Event {
	t.Helper()
	var out []schemas.Event
	for _, r := range testenv.Records(t, addr, schemas.Topic(schemas.Housing)) {
		ev, err := schemas.Decode(schemas.Input{Topic: r.Topic, Key: r.Key, Value: r.Value})
		if err != nil {
			t.Errorf("record at %s/%d@%d does not decode: %v", r.Topic, r.Partition, r.Offset, err)
		}
		out = append(out, ev)
	}
	return out
}

var testLogs sync.Map // testing.TB → *testenv.LogBuffer

func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	v, loaded := testLogs.LoadOrStore(t, &testenv.LogBuffer{})
	b := v.(*testenv.LogBuffer)
	if !loaded {
		t.Cleanup(func() {
			if t.Failed() {
				t.Log("logs:\n" + b.String())
			}
			testLogs.Delete(t)
		})
	}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func logsOf(t testing.TB) string {
	v, ok := testLogs.Load(t)
	if !ok {
		return ""
	}
	return v.(*testenv.LogBuffer).String()
}
