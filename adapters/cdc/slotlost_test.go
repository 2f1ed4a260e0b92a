package cdc

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// gatedPublisher holds Publish calls while closed: the stream, waiting
// for Kafka, confirms nothing, as when the broker is slow or away.
type gatedPublisher struct {
	Publisher
	mu   sync.Mutex
	open chan struct{}
}

func (g *gatedPublisher) close() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedPublisher) release() {
	g.mu.Lock()
	if g.open != nil {
		close(g.open)
		g.open = nil
	}
	g.mu.Unlock()
}

func (g *gatedPublisher) Publish(ctx context.Context, events ...schemas.Event) ([]publisher.Result, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if open != nil {
		select {
		case <-open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Publisher.Publish(ctx, events...)
}

// TestInvalidatedSlotStopsTheStream: a slot the server invalidated (its
// WAL outgrew max_slot_wal_keep_size while the stream was behind) cannot
// stream again. The stream stops with ErrSlotLost, naming the SQL that
// drops the slot and what is lost, instead of retrying forever on
// PostgreSQL's error, and a start after the drop copies the table again.
// The server is one of the test's own: the setting would invalidate
// other tests' slots on the machine's.
func TestInvalidatedSlotStopsTheStream(t *testing.T) {
	url, db := smallSlotServer(t)
	ctx := context.Background()
	const table = "rentals"
	pub := &gatedPublisher{Publisher: newPublisher(t, testenv.Kafka(t, partitions))}
	m := exampleMapping(t)
	m.Table = table
	newStream := func() *Stream {
		s, err := New(Config{Source: schemas.Housing, Postgres: url, Table: table, Mapping: m, Publisher: pub,
			FlushInterval: 5 * time.Millisecond, StatusInterval: 100 * time.Millisecond, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newStream()
	r := start(t, s)
	waitFor(t, r, "the initial copy", func() bool { return s.Stats().Published == 1 })

	// Kafka away: the stream holds a change it cannot confirm while the
	// server writes more WAL than the slot may keep, then checkpoints.
	pub.close()
	insertLease(t, db, table, 2, citizen(2))
	time.Sleep(200 * time.Millisecond)
	invalidate(t, db, s.Slot())
	pub.release()

	var runErr error
	select {
	case runErr = <-r.done:
		r.done <- runErr
	case <-time.After(30 * time.Second):
		t.Fatalf("the stream is still running 30 s after its slot was invalidated:\n%s", logsOf(t))
	}
	if !errors.Is(runErr, ErrSlotLost) {
		t.Fatalf("Run returned %v, want ErrSlotLost", runErr)
	}
	drop := "SELECT pg_drop_replication_slot('" + s.Slot() + "')"
	if !strings.Contains(runErr.Error(), drop) || !strings.Contains(runErr.Error(), "max_slot_wal_keep_size") {
		t.Errorf("the error does not say why or name the SQL that drops the slot (%s): %v", drop, runErr)
	}
	r.once.Do(func() {}) // it has returned: cleanup need not stop it

	// A start on the lost slot stops at once, with the same error.
	again := newStream()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := again.Run(startCtx); !errors.Is(err, ErrSlotLost) {
		t.Fatalf("a start on the invalidated slot returned %v, want ErrSlotLost", err)
	}

	// As the error says: drop the slot and start again. The table is
	// copied again: both rows, the one the lost slot held included.
	exec(t, db, drop)
	insertLease(t, db, table, 3, citizen(3))
	fresh := newStream()
	r2 := start(t, fresh)
	waitFor(t, r2, "the copy taken again", func() bool { return fresh.Stats().Snapshot == 3 })
	r2.stop(t)
}

// TestSlotLostDuringTheCopyStopsTheStream: a slot the server invalidates
// while the first start copies the table (Kafka slow, the department's
// database busy) stops the stream with ErrSlotLost, as one found at a
// start or while streaming does, not with PostgreSQL's bare "cannot read
// from logical replication slot".
func TestSlotLostDuringTheCopyStopsTheStream(t *testing.T) {
	url, db := smallSlotServer(t)
	ctx := context.Background()
	const table = "rentals"
	pub := &gatedPublisher{Publisher: newPublisher(t, testenv.Kafka(t, partitions))}
	pub.close() // the copy waits for Kafka
	m := exampleMapping(t)
	m.Table = table
	s, err := New(Config{Source: schemas.Housing, Postgres: url, Table: table, Mapping: m, Publisher: pub,
		FlushInterval: 5 * time.Millisecond, StatusInterval: 100 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	runCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	go func() { done <- s.Run(runCtx) }()

	// wait for the slot to exist (the copy has begun)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		_ = db.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", s.Slot()).Scan(&n)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	invalidate(t, db, s.Slot())
	pub.release()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSlotLost) {
			t.Errorf("Run returned %v; want ErrSlotLost with the SQL that drops the slot", err)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("Run still running")
	}
}

// smallSlotServer is a PostgreSQL server of the test's own whose slots may
// keep 1 MB of WAL (the setting would invalidate other tests' slots on
// the machine's), with a rentals table holding one lease and a filler
// table to write WAL into.
func smallSlotServer(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	url := testenv.PostgresCluster(t, "wal_level=logical", "max_slot_wal_keep_size=1MB")
	ctx := context.Background()
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	exec(t, db, `CREATE TABLE rentals (lease_id bigint PRIMARY KEY, tenant_id text, address_code text NOT NULL,
		start_date date NOT NULL, end_date date, signed_at timestamptz NOT NULL DEFAULT now())`)
	exec(t, db, "ALTER TABLE rentals REPLICA IDENTITY FULL")
	exec(t, db, "CREATE TABLE filler (x text)")
	insertLease(t, db, "rentals", 1, citizen(1))
	return url, db
}

// invalidate writes more WAL than slot may keep and checkpoints, which
// invalidates the slot, and checks that it did.
func invalidate(t *testing.T, db *pgx.Conn, slot string) {
	t.Helper()
	for range 4 {
		exec(t, db, "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 1000)")
		exec(t, db, "SELECT pg_switch_wal()")
	}
	exec(t, db, "CHECKPOINT")
	var status string
	if err := db.QueryRow(context.Background(), "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "lost" {
		t.Fatalf("the slot's wal_status is %q after the checkpoint, want lost: the test did not invalidate it", status)
	}
}
