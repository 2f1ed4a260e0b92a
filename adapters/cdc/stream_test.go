package cdc

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

const addressCode = "230102001001"

func exec(t testing.TB, db *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// insertLease adds a lease signed on 2025-01-01 10:00 Beijing time.
func insertLease(t testing.TB, db *pgx.Conn, table string, lease int, tenant string) {
	t.Helper()
	exec(t, db, `INSERT INTO `+table+` (lease_id, tenant_id, address_code, start_date, signed_at)
		VALUES ($1, $2, $3, '2025-01-01', '2025-01-01 10:00:00+08')`, lease, tenant, addressCode)
}

// summary renders an event as "<type> <lease> <tenant number> end=<end>"
// for comparing streams.
func summary(t testing.TB, ev schemas.Event) string {
	t.Helper()
	tenant := -1
	for n := range 1000 {
		if citizen(n) == string(ev.Subject) {
			tenant = n
		}
	}
	switch d := ev.Payload.(type) {
	case *schemas.RentalRegisteredData:
		return fmt.Sprintf("%s %s %d end=%s", ev.Type, d.LeaseID, tenant, d.End)
	case *schemas.RentalEndedData:
		return fmt.Sprintf("%s %s %d end=%s", ev.Type, d.LeaseID, tenant, d.End)
	}
	t.Fatalf("unexpected payload %T", ev.Payload)
	return ""
}

func summaries(t testing.TB, evs []schemas.Event) []string {
	t.Helper()
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = summary(t, ev)
	}
	slices.Sort(out)
	return out
}

func sorted(ss ...string) []string {
	slices.Sort(ss)
	return ss
}

// assertOnce fails unless every event id occurs exactly once.
func assertOnce(t testing.TB, evs []schemas.Event) {
	t.Helper()
	seen := map[string]int{}
	for _, ev := range evs {
		seen[ev.ID]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s published %d times", id, n)
		}
	}
}

func today() string { return time.Now().In(schemas.CST()).Format(time.DateOnly) }

// TestSnapshotThenChanges: rows present before the first start arrive
// from the slot's snapshot, then inserts, updates and deletes arrive as
// the mapping's events.
func TestSnapshotThenChanges(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1))
	insertLease(t, db, table, 2, citizen(2))
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	r := start(t, s)
	waitFor(t, r, "the snapshot", func() bool { return s.Stats().Published == 2 })

	insertLease(t, db, table, 3, citizen(3))
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_id = 1")
	exec(t, db, "DELETE FROM "+table+" WHERE lease_id = 2")
	waitFor(t, r, "the changes", func() bool { return s.Stats().Published == 5 })
	r.stop(t)

	evs := records(t, addr)
	want := sorted(
		"housing.rental_registered 1 1 end=",           // snapshot
		"housing.rental_registered 2 2 end=",           // snapshot
		"housing.rental_registered 3 3 end=",           // insert
		"housing.rental_registered 1 1 end=2026-06-30", // update
		"housing.rental_ended 2 2 end="+today(),        // delete: $commit_date
	)
	if got := summaries(t, evs); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	assertOnce(t, evs)
	for _, ev := range evs {
		// Every change at its commit time, the copy's at the copy's
		// (examples/rentals.yaml dates them by $commit_time): about now.
		if time.Since(ev.Time) > time.Minute || time.Until(ev.Time) > time.Second {
			t.Errorf("%s at %v, want its commit time (about now)", ev.Type, ev.Time)
		}
		if ev.Source != schemas.Housing || !strings.HasPrefix(ev.ID, "housing-") {
			t.Errorf("event %s from %s", ev.ID, ev.Source)
		}
	}
	if st := s.Stats(); st.Snapshot != 2 || st.Rejected != 0 || st.Confirmed == 0 {
		t.Errorf("stats %+v, want 2 snapshot rows, none rejected, a confirmed position", st)
	}
}

// TestSnapshotTakenAgainKeepsEventIDs: a first start that did not
// complete its snapshot leaves a slot whose copy the next start takes
// again, from a new snapshot. The rows that did not change in between
// come out with the event ids they had (the hub drops the repeats); a row
// that changed, with a new one.
func TestSnapshotTakenAgainKeepsEventIDs(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	for lease := 1; lease <= 3; lease++ {
		insertLease(t, db, table, lease, citizen(lease))
	}
	addr := testenv.Kafka(t, partitions)
	snapshot := func() {
		t.Helper()
		s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
		r := start(t, s)
		waitFor(t, r, "the snapshot", func() bool { return s.Stats().Published == 3 })
		r.stop(t)
	}
	snapshot()
	// As a start interrupted during its copy leaves it: the slot, without
	// the mark of a completed snapshot.
	exec(t, db, "COMMENT ON PUBLICATION pophub_"+table+" IS NULL")
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_id = 2")
	snapshot()
	if !strings.Contains(logsOf(t), "initial snapshot did not complete") {
		t.Fatal("the second start did not take the snapshot again")
	}

	ids := map[string][]string{} // summary → the ids of its records
	evs := records(t, addr)
	for _, ev := range evs {
		ids[summary(t, ev)] = append(ids[summary(t, ev)], ev.ID)
	}
	if len(evs) != 6 {
		t.Fatalf("%d records, want two copies of three rows", len(evs))
	}
	for _, row := range []string{"housing.rental_registered 1 1 end=", "housing.rental_registered 3 3 end="} {
		if got := ids[row]; len(got) != 2 || got[0] != got[1] {
			t.Errorf("unchanged row %q: event ids %q; want one, twice", row, got)
		}
	}
	before, after := ids["housing.rental_registered 2 2 end="], ids["housing.rental_registered 2 2 end=2026-06-30"]
	if len(before) != 1 || len(after) != 1 || before[0] == after[0] {
		t.Errorf("changed row: event ids %q, then %q; want one each, not the same", before, after)
	}
}

// TestRestartLosesNothingRepeatsNothing stops the stream after some
// changes, changes more while it is stopped, and starts it again: every
// change is published once, and nothing twice.
func TestRestartLosesNothingRepeatsNothing(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	for lease := 1; lease <= 3; lease++ {
		insertLease(t, db, table, lease, citizen(lease))
	}
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	m := exampleMapping(t)

	s1 := newStream(t, table, pub, m)
	r1 := start(t, s1)
	waitFor(t, r1, "the snapshot", func() bool { return s1.Stats().Published == 3 })
	insertLease(t, db, table, 4, citizen(4))
	insertLease(t, db, table, 5, citizen(5))
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-01-31' WHERE lease_id = 1")
	waitFor(t, r1, "the first changes", func() bool { return s1.Stats().Published == 6 })
	r1.stop(t)

	// Stopped: these wait in the slot.
	insertLease(t, db, table, 6, citizen(6))
	tx, err := db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"UPDATE " + table + " SET end_date = '2026-02-28' WHERE lease_id = 4",
		"UPDATE " + table + " SET end_date = '2026-12-31' WHERE lease_id = 2",
		"DELETE FROM " + table + " WHERE lease_id = 2",
	} {
		if _, err := tx.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}

	s2 := newStream(t, table, pub, m)
	r2 := start(t, s2)
	waitFor(t, r2, "the changes made while stopped", func() bool { return s2.Stats().Published == 4 })
	insertLease(t, db, table, 7, citizen(7))
	exec(t, db, "DELETE FROM "+table+" WHERE lease_id = 5")
	waitFor(t, r2, "the changes after the restart", func() bool { return s2.Stats().Published == 6 })
	r2.stop(t)
	if st := s2.Stats(); st.Snapshot != 0 {
		t.Errorf("the restart copied %d rows again", st.Snapshot)
	}
	// The stream's last standby status update reaches the slot as the
	// server's walsender reads it, which may be just after Run returned:
	// the slot comes to the stream's position within moments.
	var slotLSN string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", s2.Slot()).Scan(&slotLSN); err != nil {
			t.Fatal(err)
		}
		if slotLSN == s2.Stats().Confirmed.String() || time.Now().After(deadline) {
			break
		}
	}
	if slotLSN != s2.Stats().Confirmed.String() {
		t.Errorf("slot confirmed %s, stream says %s", slotLSN, s2.Stats().Confirmed)
	}

	// A third start with nothing new publishes nothing.
	s3 := newStream(t, table, pub, m)
	r3 := start(t, s3)
	waitFor(t, r3, "streaming", func() bool { return s3.Stats().Confirmed != 0 })
	time.Sleep(500 * time.Millisecond)
	r3.stop(t)
	if n := s3.Stats().Published; n != 0 {
		t.Errorf("a start with nothing new published %d events", n)
	}

	evs := records(t, addr)
	want := sorted(
		"housing.rental_registered 1 1 end=", "housing.rental_registered 2 2 end=", "housing.rental_registered 3 3 end=",
		"housing.rental_registered 4 4 end=", "housing.rental_registered 5 5 end=", "housing.rental_registered 1 1 end=2026-01-31",
		"housing.rental_registered 6 6 end=", "housing.rental_registered 4 4 end=2026-02-28", "housing.rental_registered 2 2 end=2026-12-31",
		"housing.rental_ended 2 2 end=2026-12-31",
		"housing.rental_registered 7 7 end=", "housing.rental_ended 5 5 end="+today(),
	)
	if got := summaries(t, evs); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	assertOnce(t, evs)
}

// crashAfterAck publishes for real and then, once armed, fails the first
// call as if the process died after Kafka acknowledged the events but
// before their position was confirmed.
type crashAfterAck struct {
	*publisher.Publisher
	armed, crashed atomic.Bool
}

func (c *crashAfterAck) Publish(ctx context.Context, evs ...schemas.Event) ([]publisher.Result, error) {
	res, err := c.Publisher.Publish(ctx, evs...)
	if err == nil && c.armed.Load() && !c.crashed.Swap(true) {
		return res, errors.New("simulated crash after the broker acknowledged")
	}
	return res, err
}

// TestResendKeepsEventIDs: changes published but not confirmed are sent
// again after a reconnect, with the same event ids, so the hub drops the
// copies.
func TestResendKeepsEventIDs(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	addr := testenv.Kafka(t, partitions)
	pub := &crashAfterAck{Publisher: newPublisher(t, addr)}
	pub.armed.Store(true)
	s := newStream(t, table, pub, exampleMapping(t))
	r := start(t, s)
	waitFor(t, r, "streaming", func() bool { return s.Stats().Confirmed != 0 })
	tx, err := db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for lease := 1; lease <= 3; lease++ {
		if _, err := tx.Exec(context.Background(), `INSERT INTO `+table+` (lease_id, tenant_id, address_code, start_date, signed_at)
			VALUES ($1, $2, $3, '2025-01-01', '2025-01-01 10:00:00+08')`, lease, citizen(lease), addressCode); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "the resend", func() bool { return s.Stats().Published == 3 })
	r.stop(t)
	if !pub.crashed.Load() {
		t.Fatal("the simulated crash did not happen")
	}
	evs := records(t, addr)
	if len(evs) != 6 {
		t.Fatalf("%d records, want 3 sent twice", len(evs))
	}
	byID := map[string][]string{}
	for _, ev := range evs {
		byID[ev.ID] = append(byID[ev.ID], summary(t, ev)+" "+ev.Time.String())
	}
	if len(byID) != 3 {
		t.Errorf("%d distinct event ids, want 3 (the resend must repeat them)", len(byID))
	}
	for id, copies := range byID {
		if len(copies) != 2 || copies[0] != copies[1] {
			t.Errorf("event %s: copies %q, want two identical", id, copies)
		}
	}
}

// TestBadRowsDoNotStopTheStream: rows with an invalid or missing citizen
// ID, or data the schemas reject, are logged without their values and
// counted; the rows around them are published.
func TestBadRowsDoNotStopTheStream(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	badCheck := citizen(2)[:17] + "0"
	if badCheck == citizen(2) {
		badCheck = citizen(2)[:17] + "1"
	}
	insertLease(t, db, table, 1, badCheck) // in the snapshot
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	r := start(t, s)
	waitFor(t, r, "the snapshot", func() bool { return s.Stats().Rejected == 1 })

	insertLease(t, db, table, 2, citizen(2))
	insertLease(t, db, table, 3, "")
	exec(t, db, `INSERT INTO `+table+` (lease_id, tenant_id, address_code, start_date) VALUES (4, $1, '999999999999', '2025-01-01')`, citizen(4))
	exec(t, db, `INSERT INTO `+table+` (lease_id, tenant_id, address_code, start_date) VALUES (5, NULL, $1, '2025-01-01')`, addressCode)
	insertLease(t, db, table, 6, citizen(6))
	waitFor(t, r, "the good rows", func() bool { return s.Stats().Published == 2 && s.Stats().Rejected == 4 })
	insertLease(t, db, table, 7, citizen(7))
	waitFor(t, r, "a row after the bad ones", func() bool { return s.Stats().Published == 3 })
	r.stop(t)

	want := sorted("housing.rental_registered 2 2 end=", "housing.rental_registered 6 6 end=", "housing.rental_registered 7 7 end=")
	if got := summaries(t, records(t, addr)); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	logs := logsOf(t)
	for _, reason := range []string{"reason=invalid_citizen_id", "reason=" + schemas.ReasonInvalidData} {
		if !strings.Contains(logs, reason) {
			t.Errorf("no bad row logged with %s", reason)
		}
	}
	if n := strings.Count(logs, "skipping bad row"); n != 4 {
		t.Errorf("%d bad rows logged, want 4", n)
	}
	for _, id := range []string{badCheck, citizen(4)} {
		if strings.Contains(logs, id) {
			t.Error("the logs hold a raw citizen ID")
		}
	}
}

// TestDeletesNeedTheWholeRow: with deletes mapped, a table whose deleted
// rows carry only their primary key is refused on start, saying how to
// fix it.
func TestDeletesNeedTheWholeRow(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	exec(t, db, "ALTER TABLE "+table+" REPLICA IDENTITY DEFAULT")
	s := newStream(t, table, newPublisher(t, testenv.Kafka(t, partitions)), exampleMapping(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "REPLICA IDENTITY FULL") {
		t.Fatalf("Run: %v, want an error asking for REPLICA IDENTITY FULL", err)
	}
}

// TestPartitionedTable: a partitioned table's changes happen in its
// partitions; they are published like a plain table's, after the
// snapshot as well as in it, whichever partition they touch.
func TestPartitionedTable(t *testing.T) {
	db := connect(t)
	table := partitionedRentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1)) // 2025
	exec(t, db, `INSERT INTO `+table+` (lease_id, tenant_id, address_code, start_date, signed_at)
		VALUES (2, $1, $2, '2026-03-01', '2025-01-01 10:00:00+08')`, citizen(2), addressCode)
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	r := start(t, s)
	waitFor(t, r, "the snapshot", func() bool { return s.Stats().Published == 2 })

	exec(t, db, `INSERT INTO `+table+` (lease_id, tenant_id, address_code, start_date, signed_at)
		VALUES (3, $1, $2, '2026-04-01', '2025-01-01 10:00:00+08')`, citizen(3), addressCode)
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_id = 1")
	exec(t, db, "DELETE FROM "+table+" WHERE lease_id = 2")
	waitFor(t, r, "the changes", func() bool { return s.Stats().Published == 5 })
	r.stop(t)

	evs := records(t, addr)
	want := sorted(
		"housing.rental_registered 1 1 end=",           // snapshot, 2025 partition
		"housing.rental_registered 2 2 end=",           // snapshot, 2026 partition
		"housing.rental_registered 3 3 end=",           // insert
		"housing.rental_registered 1 1 end=2026-06-30", // update
		"housing.rental_ended 2 2 end="+today(),        // delete
	)
	if got := summaries(t, evs); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	assertOnce(t, evs)
	if st := s.Stats(); st.Rejected != 0 || st.Ignored != 0 {
		t.Errorf("stats %+v, want nothing rejected or ignored", st)
	}
}

// TestPartitionedTableRefused: a partitioned table whose changes would
// not arrive whole under its name is refused on start, saying what to
// run.
func TestPartitionedTableRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare string // run before the start; %[1]s is the table
		want    string // the statement the error asks for
	}{{
		name:    "publication sends changes under the partitions' names",
		prepare: "CREATE PUBLICATION pophub_%[1]s FOR TABLE %[1]s",
		want:    "ALTER PUBLICATION pophub_%[1]s SET (publish_via_partition_root = true)",
	}, {
		name:    "a partition's deleted rows carry only their key",
		prepare: "ALTER TABLE %[1]s_2026 REPLICA IDENTITY DEFAULT",
		want:    "ALTER TABLE public.%[1]s_2026 REPLICA IDENTITY FULL",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(t)
			table := partitionedRentalsTable(t, db)
			exec(t, db, fmt.Sprintf(tc.prepare, table))
			s := newStream(t, table, newPublisher(t, testenv.Kafka(t, partitions)), exampleMapping(t))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := s.Run(ctx)
			if want := fmt.Sprintf(tc.want, table); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Run: %v, want an error asking for %q", err, want)
			}
		})
	}
}

// TestStreamReadsCitizenIDsAsImportDoes: rows whose citizen ID has a lower-case
// x, or is a legacy 15-digit number (padded by a character(18) column in
// the WAL), reach the hub under the 18-digit ID, as `pophub import` sends
// them: from the initial copy, from a copy taken again (with the ids the
// first gave them) and from the stream. The upgrades are counted and
// logged, and an update that only rewrites a legacy ID in 18 digits
// moves nothing.
func TestStreamReadsCitizenIDsAsImportDoes(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	exec(t, db, "ALTER TABLE "+table+" ALTER COLUMN tenant_id TYPE character(18)")
	withX, x := citizenWithX(t)
	insertLease(t, db, table, 1, strings.ToLower(withX))
	insertLease(t, db, table, 2, legacy(citizen(2)))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	m := exampleMapping(t)
	m.Table = table
	newCitizenStream := func() *Stream {
		t.Helper()
		s, err := New(Config{Source: schemas.Housing, Postgres: testenv.PostgresURL(), Table: table, Mapping: m, Publisher: pub,
			FlushInterval: 5 * time.Millisecond, StatusInterval: 100 * time.Millisecond, ProgressInterval: 100 * time.Millisecond,
			Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	s1 := newCitizenStream()
	r1 := start(t, s1)
	waitFor(t, r1, "the snapshot", func() bool { return s1.Stats().Published == 2 })
	r1.stop(t)
	if st := s1.Stats(); st.Rejected != 0 || st.Upgraded != 1 {
		t.Errorf("first copy: %d bad rows, %d IDs upgraded; want 0, 1", st.Rejected, st.Upgraded)
	}
	// Taken again, as after a start interrupted during its copy.
	exec(t, db, "COMMENT ON PUBLICATION pophub_"+table+" IS NULL")

	s2 := newCitizenStream()
	r2 := start(t, s2)
	waitFor(t, r2, "the copy taken again", func() bool { return s2.Stats().Published == 2 })
	insertLease(t, db, table, 3, legacy(citizen(3)))
	exec(t, db, "UPDATE "+table+" SET tenant_id = $1 WHERE lease_id = 2", citizen(2))
	exec(t, db, "DELETE FROM "+table+" WHERE lease_id = 1")
	last := walPosition(t, db)
	insertLease(t, db, table, 4, strings.ToLower(withX))
	waitFor(t, r2, "the changes", func() bool { return s2.Stats().Confirmed > last })
	progress := regexp.MustCompile(`msg="cdc: progress" .* published=6 .* upgraded_ids=2 `)
	waitFor(t, r2, "the progress log", func() bool { return progress.MatchString(logsOf(t)) })
	r2.stop(t)
	if st := s2.Stats(); st.Rejected != 0 || st.Upgraded != 2 || st.Published != 6 {
		t.Errorf("second start: %d published, %d bad rows, %d IDs upgraded; want 6, 0, 2", st.Published, st.Rejected, st.Upgraded)
	}
	if strings.Contains(logsOf(t), "skipping bad row") {
		t.Error("a row was skipped as bad")
	}

	evs := records(t, addr)
	want := sorted(
		fmt.Sprintf("housing.rental_registered 1 %d end=", x), "housing.rental_registered 2 2 end=", // first copy
		fmt.Sprintf("housing.rental_registered 1 %d end=", x), "housing.rental_registered 2 2 end=", // copy taken again
		"housing.rental_registered 3 3 end=", // insert
		"housing.rental_registered 2 2 end=", // update: the same tenant, no end
		fmt.Sprintf("housing.rental_ended 1 %d end=%s", x, today()),
		fmt.Sprintf("housing.rental_registered 4 %d end=", x),
	)
	if got := summaries(t, evs); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	ids := map[string]map[string]int{} // summary → event id → records
	for _, ev := range evs {
		sum := summary(t, ev)
		if ids[sum] == nil {
			ids[sum] = map[string]int{}
		}
		ids[sum][ev.ID]++
	}
	if got := ids[fmt.Sprintf("housing.rental_registered 1 %d end=", x)]; len(got) != 1 {
		t.Errorf("the row with a lower-case x, copied twice unchanged, has %d event ids; want 1", len(got))
	}
	if got := ids["housing.rental_registered 2 2 end="]; len(got) != 2 {
		t.Errorf("the legacy row, copied twice unchanged and then updated, has %d event ids; want 2 (copies, update)", len(got))
	}
}

// TestNextBackoff: the waits double while sessions keep failing, up to
// the longest, and a healthy session starts them over.
func TestNextBackoff(t *testing.T) {
	steps := []struct {
		healthy bool
		want    time.Duration
	}{
		{false, 500 * time.Millisecond}, // the first failure
		{false, time.Second},
		{false, 2 * time.Second},
		{false, 4 * time.Second},
		{false, 8 * time.Second},
		{false, 16 * time.Second},
		{false, 30 * time.Second},
		{false, 30 * time.Second},
		{true, 500 * time.Millisecond}, // a blip after a long outage
		{false, time.Second},
		{true, 500 * time.Millisecond},
		{true, 500 * time.Millisecond},
	}
	var wait time.Duration
	for i, st := range steps {
		wait = nextBackoff(wait, st.healthy)
		if wait != st.want {
			t.Errorf("failure %d (healthy %v): wait %v, want %v", i+1, st.healthy, wait, st.want)
		}
	}
}

func TestSessionHealthy(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		rec  sessionRecord
		want bool
	}{
		{"never streamed", sessionRecord{}, false},
		{"failed soon", sessionRecord{streamedAt: now.Add(-time.Second)}, false},
		{"streamed a while", sessionRecord{streamedAt: now.Add(-healthyStream)}, true},
		{"confirmed events soon", sessionRecord{streamedAt: now.Add(-time.Second), progressed: true}, true},
	}
	for _, tt := range tests {
		if got := tt.rec.healthy(); got != tt.want {
			t.Errorf("%s: healthy = %v, want %v", tt.name, got, tt.want)
		}
	}
}
