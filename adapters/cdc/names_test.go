package cdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// namedRentals creates rentals tables under the names given, and removes
// them, and the slots and publications named by calls of the function it
// returns, when the test ends.
func namedRentals(t testing.TB, db *pgx.Conn, tables ...string) (cleanup func(names ...string)) {
	t.Helper()
	ctx := context.Background()
	var names []string
	t.Cleanup(func() {
		db, err := pgx.Connect(ctx, testenv.PostgresURL())
		if err != nil {
			t.Errorf("cleaning up: %v", err)
			return
		}
		defer db.Close(ctx)
		for _, name := range names {
			testenv.DropReplicationSlot(t, name)
			if _, err := db.Exec(ctx, "DROP PUBLICATION IF EXISTS "+name); err != nil {
				t.Errorf("dropping publication: %v", err)
			}
		}
		for _, table := range tables {
			if _, err := db.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
				t.Errorf("dropping table: %v", err)
			}
		}
	})
	for _, table := range tables {
		exec(t, db, `CREATE TABLE `+table+` (
			lease_id     bigint PRIMARY KEY,
			tenant_id    text,
			address_code text NOT NULL,
			start_date   date NOT NULL,
			end_date     date,
			signed_at    timestamptz NOT NULL DEFAULT now()
		)`)
		exec(t, db, "ALTER TABLE "+table+" REPLICA IDENTITY FULL")
	}
	return func(n ...string) { names = append(names, n...) }
}

// chineseTables creates two rentals tables named in Chinese that differ
// only in their Chinese characters (see namedRentals).
func chineseTables(t testing.TB, db *pgx.Conn) (rentals, titles, suffix string, cleanup func(names ...string)) {
	t.Helper()
	suffix = randomSuffix()
	rentals, titles = "租赁_"+suffix, "产权_"+suffix
	return rentals, titles, suffix, namedRentals(t, db, rentals, titles)
}

func randomSuffix() string {
	b := make([]byte, 5)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startEarlier runs a stream as an earlier version did, under the slot
// and publication it named by default, until it copied the table's rows.
func startEarlier(t testing.TB, table, slot, publication string, pub Publisher, rows int64) {
	t.Helper()
	m := exampleMapping(t)
	m.Table = table
	s, err := New(Config{Source: schemas.Housing, Postgres: testenv.PostgresURL(), Table: table, Mapping: m, Publisher: pub,
		Slot: slot, Publication: publication, FlushInterval: 5 * time.Millisecond, StatusInterval: time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, s)
	waitFor(t, r, "the earlier version's copy", func() bool { return s.Stats().Published == rows })
	// Stopped before it records its copy complete, the stream would take
	// the copy again at its next start, whatever its names.
	db := connect(t)
	waitFor(t, r, "the earlier version's copy recorded complete", func() bool {
		var comment *string
		err := db.QueryRow(context.Background(), `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`, s.Publication()).Scan(&comment)
		return err == nil && comment != nil && strings.Contains(*comment, " "+s.Slot()+"=done")
	})
	r.stop(t)
}

// Two tables named in Chinese stream side by side with the default names:
// each gets its slot and publication, where both once got pophub_____ and
// the second start failed.
func TestChineseTablesStreamSideBySide(t *testing.T) {
	db := connect(t)
	rentals, titles, _, cleanup := chineseTables(t, db)
	insertLease(t, db, rentals, 1, citizen(1))
	insertLease(t, db, titles, 2, citizen(2))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	a := newStream(t, rentals, pub, exampleMapping(t))
	b := newStream(t, titles, pub, exampleMapping(t))
	cleanup(a.Slot(), a.Publication(), b.Slot(), b.Publication())
	if a.Slot() == b.Slot() || a.Publication() == b.Publication() {
		t.Errorf("%s and %s share slot %s / %s, publication %s / %s", rentals, titles, a.Slot(), b.Slot(), a.Publication(), b.Publication())
	}
	ra := start(t, a)
	waitFor(t, ra, rentals+"'s copy", func() bool { return a.Stats().Published == 1 })
	rb := start(t, b)
	waitFor(t, rb, titles+"'s copy", func() bool { return b.Stats().Published == 1 })
	insertLease(t, db, rentals, 3, citizen(3))
	insertLease(t, db, titles, 4, citizen(4))
	waitFor(t, ra, rentals+"'s insert", func() bool { return a.Stats().Published == 2 })
	waitFor(t, rb, titles+"'s insert", func() bool { return b.Stats().Published == 2 })
	ra.stop(t)
	rb.stop(t)
	evs := records(t, addr)
	if len(evs) != 4 {
		t.Errorf("%d events, want 4: each table's row copied and its insert", len(evs))
	}
	assertOnce(t, evs)
}

// A table an earlier version streamed under the default names it gave
// (every non-ASCII character an _) keeps its slot and publication: a new
// one would copy the table again and leave the old slot holding WAL. A
// table that differs only in its Chinese characters, which could not
// start then, gets names of its own.
func TestEarlierDefaultNamesKept(t *testing.T) {
	db := connect(t)
	ctx := context.Background()
	rentals, titles, suffix, cleanup := chineseTables(t, db)
	earlierSlot, earlierPub := "pophub_housing____"+suffix, "pophub____"+suffix
	cleanup(earlierSlot, earlierPub)
	insertLease(t, db, rentals, 1, citizen(1))
	insertLease(t, db, titles, 2, citizen(2))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	startEarlier(t, rentals, earlierSlot, earlierPub, pub, 1)
	insertLease(t, db, rentals, 3, citizen(3))

	s := newStream(t, rentals, pub, exampleMapping(t))
	cleanup(s.Slot(), s.Publication())
	r := start(t, s)
	waitFor(t, r, "the insert", func() bool { return s.Stats().Published >= 1 })
	if s.Slot() != earlierSlot || s.Publication() != earlierPub {
		t.Errorf("streaming with slot %s, publication %s; want the earlier %s, %s", s.Slot(), s.Publication(), earlierSlot, earlierPub)
	}
	if st := s.Stats(); st.Snapshot != 0 {
		t.Errorf("copied %d rows again, want none: the earlier slot's copy completed", st.Snapshot)
	}

	other := newStream(t, titles, pub, exampleMapping(t))
	cleanup(other.Slot(), other.Publication())
	ro := start(t, other)
	waitFor(t, ro, titles+"'s copy", func() bool { return other.Stats().Published == 1 })
	if other.Slot() == earlierSlot || other.Publication() == earlierPub {
		t.Errorf("%s streams with slot %s, publication %s: %s's", titles, other.Slot(), other.Publication(), rentals)
	}
	r.stop(t)
	ro.stop(t)

	var slots int
	err := db.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1", "pophub_housing_%"+suffix+"%").Scan(&slots)
	if err != nil {
		t.Fatal(err)
	}
	if slots != 2 {
		t.Errorf("%d slots for the two tables, want 2: a slot left behind keeps WAL", slots)
	}
	evs := records(t, addr)
	if len(evs) != 3 {
		t.Errorf("%d events, want 3: the earlier copy, the insert, the other table's copy", len(evs))
	}
	assertOnce(t, evs)
}

// A table whose name was cut to fit the slot name keeps the slot an
// earlier version gave it; its publication's name, which fit, is the
// same as ever.
func TestEarlierCutSlotKept(t *testing.T) {
	db := connect(t)
	table := "cdc_rental_contracts_of_the_housing_bureau_" + randomSuffix() // 53 bytes
	cleanup := namedRentals(t, db, table)
	earlierSlot, publication := ("pophub_housing_" + table)[:63], "pophub_"+table
	cleanup(earlierSlot, publication)
	insertLease(t, db, table, 1, citizen(1))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	startEarlier(t, table, earlierSlot, "", pub, 1)
	insertLease(t, db, table, 2, citizen(2))

	s := newStream(t, table, pub, exampleMapping(t))
	cleanup(s.Slot())
	r := start(t, s)
	waitFor(t, r, "the insert", func() bool { return s.Stats().Published >= 1 })
	r.stop(t)
	if s.Slot() != earlierSlot || s.Publication() != publication {
		t.Errorf("streamed with slot %s, publication %s; want the earlier %s, %s", s.Slot(), s.Publication(), earlierSlot, publication)
	}
	if st := s.Stats(); st.Snapshot != 0 || st.Published != 1 {
		t.Errorf("copied %d rows again and published %d events; want none copied, the insert published", st.Snapshot, st.Published)
	}
}
