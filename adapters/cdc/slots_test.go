package cdc

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// A table streamed under another spelling of its name (public.rentals,
// by a version that named slots after the spelling) keeps its slot and
// publication when --table is spelled rentals: nothing is copied again,
// the changes made while it was stopped arrive once, and no second slot
// is left holding WAL.
func TestSlotContinuedAcrossTableSpellings(t *testing.T) {
	db := connect(t)
	ctx := context.Background()
	table := "cdc_spelling_" + randomSuffix()
	cleanup := namedRentals(t, db, table)
	earlierSlot, earlierPub := "pophub_housing_public_"+table, "pophub_public_"+table
	cleanup(earlierSlot, earlierPub, "pophub_housing_"+table, "pophub_"+table)
	insertLease(t, db, table, 1, citizen(1))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	startEarlier(t, "public."+table, earlierSlot, earlierPub, pub, 1)
	insertLease(t, db, table, 2, citizen(2)) // while stopped

	s := newStream(t, table, pub, exampleMapping(t))
	if s.Slot() != "pophub_housing_"+table {
		t.Fatalf("default slot %s, want pophub_housing_%s", s.Slot(), table)
	}
	r := start(t, s)
	waitFor(t, r, "the change made while stopped", func() bool { return s.Stats().Published >= 1 })
	insertLease(t, db, table, 3, citizen(3))
	waitFor(t, r, "the insert", func() bool { return s.Stats().Published >= 2 })
	r.stop(t)

	if s.Slot() != earlierSlot || s.Publication() != earlierPub {
		t.Errorf("streamed with slot %s, publication %s; want %s, %s", s.Slot(), s.Publication(), earlierSlot, earlierPub)
	}
	if st := s.Stats(); st.Snapshot != 0 {
		t.Errorf("copied %d rows again, want none", st.Snapshot)
	}
	if logs := logsOf(t); !strings.Contains(logs, "continuing the slot") {
		t.Errorf("no log says the slot of another spelling is continued:\n%s", logs)
	}
	var slots int
	err := db.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1", "pophub_housing_%"+table).Scan(&slots)
	if err != nil {
		t.Fatal(err)
	}
	if slots != 1 {
		t.Errorf("%d slots for the table, want 1: a second keeps WAL for ever", slots)
	}
	evs := records(t, addr)
	if got, want := summaries(t, evs), sorted(
		"housing.rental_registered 1 1 end=",
		"housing.rental_registered 2 2 end=",
		"housing.rental_registered 3 3 end=",
	); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	assertOnce(t, evs)
}

// At start, the stream warns about each inactive slot pophub left for
// its table, saying how much WAL it keeps and the SQL that drops it;
// the SQL works. Its own slot's progress says how much WAL that keeps.
func TestInactiveSlotOfTableWarned(t *testing.T) {
	db := connect(t)
	ctx := context.Background()
	table := "cdc_orphan_" + randomSuffix()
	cleanup := namedRentals(t, db, table)
	orphanSlot, orphanPub := "pophub_housing_public_"+table, "pophub_public_"+table
	slot, publication := "pophub_housing_"+table, "pophub_"+table
	cleanup(orphanSlot, orphanPub, slot, publication)
	insertLease(t, db, table, 1, citizen(1))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	// The orphan: a spelling streamed once, left behind by a second
	// stream with names of its own.
	startEarlier(t, "public."+table, orphanSlot, orphanPub, pub, 1)
	startEarlier(t, table, slot, publication, pub, 1)
	insertLease(t, db, table, 2, citizen(2)) // WAL the orphan keeps

	m := exampleMapping(t)
	m.Table = table
	s, err := New(Config{Source: schemas.Housing, Postgres: testenv.PostgresURL(), Table: table, Mapping: m, Publisher: pub,
		FlushInterval: 5 * time.Millisecond, StatusInterval: time.Second, ProgressInterval: 50 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, s)
	waitFor(t, r, "the insert", func() bool { return s.Stats().Published == 1 })
	waitFor(t, r, "the progress log", func() bool { return strings.Contains(logsOf(t), "cdc: progress") })
	r.stop(t)
	if s.Slot() != slot {
		t.Errorf("streamed with slot %s, want %s: the slot of the spelling used", s.Slot(), slot)
	}

	logs := logsOf(t)
	warning := regexp.MustCompile(`level=WARN msg="cdc: an inactive replication slot of this table keeps WAL[^"]*" .*inactive_slot=` +
		orphanSlot + ` .*retained_wal_bytes=(\d+) drop_sql="([^"]*)"`).FindStringSubmatch(logs)
	if warning == nil {
		t.Fatalf("no warning names the inactive slot %s with the WAL it keeps and the SQL to drop it:\n%s", orphanSlot, logs)
	}
	if n, _ := strconv.ParseInt(warning[1], 10, 64); n <= 0 {
		t.Errorf("the inactive slot keeps %s bytes of WAL, want more than none", warning[1])
	}
	wantSQL := "SELECT pg_drop_replication_slot('" + orphanSlot + "'); DROP PUBLICATION " + orphanPub + ";"
	if warning[2] != wantSQL {
		t.Errorf("drop SQL %q, want %q", warning[2], wantSQL)
	}
	if strings.Contains(logs, "inactive_slot="+slot+" ") {
		t.Errorf("the stream warned about its own slot:\n%s", logs)
	}
	for _, stmt := range strings.SplitAfter(warning[2], ";") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			exec(t, db, stmt)
		}
	}
	var left bool
	if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", orphanSlot).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left {
		t.Errorf("slot %s left after its drop SQL", orphanSlot)
	}

	if !regexp.MustCompile(`msg="cdc: progress" .*retained_wal_bytes=\d+`).MatchString(logs) {
		t.Errorf("the progress log does not say how much WAL the slot keeps:\n%s", logs)
	}
	if st := s.Stats(); st.RetainedWAL < 0 {
		t.Errorf("Stats.RetainedWAL = %d after streaming, want the bytes the slot keeps", st.RetainedWAL)
	}
}
