package cdc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestPublicationLeavingOutMappedChanges: a publication someone else
// created, or narrowed since, that leaves out a kind of change the mapping
// maps is refused at start with the SQL that fixes it, before anything is
// copied: PostgreSQL would never send those changes.
func TestPublicationLeavingOutMappedChanges(t *testing.T) {
	for _, tc := range []struct {
		name, publish, want string
	}{
		{"without deletes", "insert, update", "SET (publish = 'insert, update, delete')"},
		{"inserts only", "insert", "SET (publish = 'insert, update, delete')"},
		{"without updates", "insert, delete, truncate", "SET (publish = 'insert, delete, truncate, update')"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(t)
			table := rentalsTable(t, db)
			exec(t, db, "CREATE PUBLICATION pophub_"+table+" FOR TABLE "+table+" WITH (publish = '"+tc.publish+"')")
			insertLease(t, db, table, 1, citizen(1))
			addr := testenv.Kafka(t, partitions)
			s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
			err := start(t, s).end(t)
			if err == nil || errors.Is(err, ErrTableChanged) || !strings.Contains(err.Error(), "ALTER PUBLICATION pophub_"+table+" "+tc.want) {
				t.Errorf("Run: %v; want a refusal with ALTER PUBLICATION ... %s", err, tc.want)
			}
			if st := s.Stats(); st.Snapshot != 0 || st.Published != 0 {
				t.Errorf("stats %+v: want nothing copied", st)
			}
		})
	}
}

// TestColumnsPostgreSQLDoesNotSend: a mapped column that PostgreSQL leaves
// out of the changes it sends, a generated column or one outside the
// publication's column list, is refused at start with what to do, before
// the copy sends rows the changes could not follow.
func TestColumnsPostgreSQLDoesNotSend(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup []string // %[1]s stands for the table
		want  string   // in the error; "" for a start that streams
	}{
		{
			name: "generated column",
			setup: []string{
				"ALTER TABLE %[1]s DROP COLUMN address_code",
				"ALTER TABLE %[1]s ADD COLUMN address_code text GENERATED ALWAYS AS ('" + addressCode + "') STORED",
			},
			want: "the mapping reads generated columns of public.%[1]s (GENERATED ALWAYS AS ...): address_code. " +
				"PostgreSQL leaves generated columns out of the changes it sends to the stream: map the columns they are computed from instead",
		},
		{
			name:  "column list without a mapped column",
			setup: []string{"CREATE PUBLICATION pophub_%[1]s FOR TABLE %[1]s (lease_id, tenant_id, address_code, start_date, signed_at)"},
			want: "without end_date, which the mapping reads: PostgreSQL would leave them out of every change it sends. " +
				"Add them to its column list: ALTER PUBLICATION pophub_%[1]s SET TABLE public.%[1]s " +
				"(lease_id, tenant_id, address_code, start_date, signed_at, end_date)",
		},
		{
			name: "column list of another publication's table",
			setup: []string{
				"CREATE TABLE %[1]s_other (id int PRIMARY KEY)",
				"CREATE PUBLICATION pophub_%[1]s FOR TABLE %[1]s (lease_id, tenant_id, address_code, start_date, signed_at), %[1]s_other",
			},
			want: "BEGIN; ALTER PUBLICATION pophub_%[1]s DROP TABLE public.%[1]s; ALTER PUBLICATION pophub_%[1]s ADD TABLE public.%[1]s " +
				"(lease_id, tenant_id, address_code, start_date, signed_at, end_date); COMMIT",
		},
		{
			name:  "column list with every mapped column",
			setup: []string{"CREATE PUBLICATION pophub_%[1]s FOR TABLE %[1]s (lease_id, tenant_id, address_code, start_date, end_date, signed_at)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(t)
			table := rentalsTable(t, db)
			t.Cleanup(func() { exec(t, connect(t), "DROP TABLE IF EXISTS "+table+"_other") })
			exec(t, db, "ALTER TABLE "+table+" ALTER COLUMN address_code SET DEFAULT '"+addressCode+"'")
			for _, sql := range tc.setup {
				exec(t, db, fmt.Sprintf(sql, table))
			}
			exec(t, db, `INSERT INTO `+table+` (lease_id, tenant_id, start_date) VALUES (1, $1, '2025-01-01')`, citizen(1))
			addr := testenv.Kafka(t, partitions)
			s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
			r := start(t, s)
			if tc.want == "" {
				waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 1 })
				exec(t, db, fmt.Sprintf(insertLeaseSQL("tenant_id", 2), table))
				waitFor(t, r, "the insert", func() bool { return s.Stats().Published == 2 })
				return
			}
			err := r.end(t)
			if want := fmt.Sprintf(tc.want, table); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Run: %v\nwant an error with %s", err, want)
			}
			if st := s.Stats(); st.Snapshot != 0 || st.Published != 0 {
				t.Errorf("stats %+v: want nothing copied", st)
			}
		})
	}
}

// TestEndlessDatesReadAsNoValue: infinity in a date or timestamp column,
// PostgreSQL's mark of a lease without an end, reads as no value, so a
// lease copied or updated with it registers without an end, and its
// delete ends it on its commit date (end: end_date | $commit_date)
// instead of being a bad row that no later fix could send.
func TestEndlessDatesReadAsNoValue(t *testing.T) {
	for _, tc := range []struct{ name, typ string }{
		{"date", "date"},
		{"timestamp", "timestamp"},
		{"timestamptz", "timestamptz"},
		{"domain over date", "%[1]s_day"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(t)
			table := rentalsTable(t, db)
			typ := tc.typ
			if strings.Contains(typ, "%") {
				typ = fmt.Sprintf(typ, table)
				exec(t, db, "CREATE DOMAIN "+typ+" AS date")
				t.Cleanup(func() { exec(t, connect(t), "DROP DOMAIN IF EXISTS "+typ+" CASCADE") })
			}
			exec(t, db, "ALTER TABLE "+table+" ALTER COLUMN end_date TYPE "+typ+" USING NULL")
			insertLease(t, db, table, 1, citizen(1))
			exec(t, db, "UPDATE "+table+" SET end_date = '-infinity' WHERE lease_id = 1")
			insertLease(t, db, table, 2, citizen(2))
			addr := testenv.Kafka(t, partitions)
			s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
			r := start(t, s)
			waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 2 })
			exec(t, db, "UPDATE "+table+" SET end_date = 'infinity' WHERE lease_id = 2")
			exec(t, db, "DELETE FROM "+table)
			waitFor(t, r, "the changes", func() bool { st := s.Stats(); return st.Published+st.Rejected >= 5 })
			r.stop(t)
			if st := s.Stats(); st.Rejected != 0 {
				t.Errorf("%d bad rows; want none", st.Rejected)
			}
			today := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
			want := sorted(
				"housing.rental_registered 1 1 end=", "housing.rental_registered 2 2 end=", // the copy
				"housing.rental_registered 2 2 end=", // the update
				"housing.rental_ended 1 1 end="+today, "housing.rental_ended 2 2 end="+today,
			)
			if got := summaries(t, records(t, addr)); !slices.Equal(got, want) {
				t.Errorf("events:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestMappedColumnGivenAnotherType: a mapped column given another type
// while the stream runs stops it at the first change made since, unconfirmed,
// naming the column and both types; the next start takes the new type,
// and a date field takes the date of a timestamp. A type changed while
// the stream is stopped is taken at the next start, the changes made
// before it with the type they were made with.
func TestMappedColumnGivenAnotherType(t *testing.T) {
	for _, tc := range []struct{ typ, name string }{
		{"timestamptz", "timestamp with time zone"},
		{"timestamp", "timestamp without time zone"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			db := connect(t)
			table := rentalsTable(t, db)
			insertLease(t, db, table, 1, citizen(1))
			addr := testenv.Kafka(t, partitions)
			pub := newPublisher(t, addr)
			s := newStream(t, table, pub, exampleMapping(t))
			r := start(t, s)
			waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 1 })

			exec(t, db, "ALTER TABLE "+table+" ALTER COLUMN start_date TYPE "+tc.typ)
			exec(t, db, fmt.Sprintf(insertLeaseSQL("tenant_id", 2), table))
			err := r.end(t)
			want := "column start_date was of type " + tc.name + ", not date as when the stream started"
			if !errors.Is(err, ErrTableChanged) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Run: %v\nwant ErrTableChanged with %q", err, want)
			}
			if st := s.Stats(); st.Published != 1 || st.Rejected != 0 {
				t.Errorf("stats %+v: want the insert held, not published nor a bad row", st)
			}

			s = newStream(t, table, pub, exampleMapping(t))
			r = start(t, s)
			waitFor(t, r, "the held insert", func() bool { return s.Stats().Published == 1 })
			r.stop(t)

			// Stopped: a change, the type changed, a change.
			exec(t, db, "UPDATE "+table+" SET end_date = '2025-12-31' WHERE lease_id = 1")
			exec(t, db, "ALTER TABLE "+table+" ALTER COLUMN end_date TYPE "+tc.typ)
			exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30 00:00:00+08' WHERE lease_id = 2")
			s = newStream(t, table, pub, exampleMapping(t))
			r = start(t, s)
			waitFor(t, r, "the changes made while stopped", func() bool { return s.Stats().Published == 2 })
			r.stop(t)
			if st := s.Stats(); st.Rejected != 0 {
				t.Errorf("%d bad rows; want none", st.Rejected)
			}

			var got []string
			for _, ev := range records(t, addr) {
				if d, ok := ev.Payload.(*schemas.RentalRegisteredData); ok {
					got = append(got, d.LeaseID+" "+d.Start+" "+d.End)
				}
			}
			slices.Sort(got)
			if want := sorted("1 2025-01-01 ", "2 2025-01-01 ", "1 2025-01-01 2025-12-31", "2 2025-01-01 2026-06-30"); !slices.Equal(got, want) {
				t.Errorf("leases registered: %q, want %q", got, want)
			}
		})
	}
}

// TestTruncateIsReported: a truncate of the table, whose removed rows no
// event ends, is logged as an error naming the table and counted, and
// the stream goes on; a publication of the stream's own (its default
// name) without truncates has them added at start, while one named with
// --publication, which other subscribers may share, is left as it is,
// with a warning. A truncate of another table of the publication is not
// the stream's.
func TestTruncateIsReported(t *testing.T) {
	for _, tc := range []struct {
		name        string
		setup       []string // %[1]s stands for the table
		publication string   // %[1]s stands for the table; "" for the default
		truncate    string
		want        int64
	}{
		{"publication the stream creates", nil, "", "TRUNCATE %[1]s", 1},
		{
			"earlier publication without truncates",
			[]string{"CREATE PUBLICATION pophub_%[1]s FOR TABLE %[1]s WITH (publish = 'insert, update, delete')"},
			"", "TRUNCATE %[1]s", 1,
		},
		{
			name:        "a publication named for the stream, without truncates",
			setup:       []string{"CREATE PUBLICATION shared_%[1]s FOR TABLE %[1]s WITH (publish = 'insert, update, delete')"},
			publication: "shared_%[1]s",
			truncate:    "TRUNCATE %[1]s", want: 0,
		},
		{
			"another table of the publication",
			[]string{
				"CREATE TABLE %[1]s_other (id int PRIMARY KEY)",
				"CREATE PUBLICATION pophub_%[1]s FOR TABLE %[1]s, %[1]s_other",
			},
			"", "TRUNCATE %[1]s_other", 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(t)
			table := rentalsTable(t, db)
			t.Cleanup(func() { exec(t, connect(t), "DROP TABLE IF EXISTS "+table+"_other") })
			for _, sql := range tc.setup {
				exec(t, db, fmt.Sprintf(sql, table))
			}
			insertLease(t, db, table, 1, citizen(1))
			addr := testenv.Kafka(t, partitions)
			var s *Stream
			if tc.publication == "" {
				s = newStream(t, table, newPublisher(t, addr), exampleMapping(t))
			} else {
				s = newStreamWith(t, table, newPublisher(t, addr), exampleMapping(t), func(c *Config) { c.Publication = fmt.Sprintf(tc.publication, table) })
			}
			r := start(t, s)
			waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 1 })
			exec(t, db, fmt.Sprintf(tc.truncate, table))
			insertLease(t, db, table, 2, citizen(2))
			waitFor(t, r, "the insert after the truncate", func() bool { return s.Stats().Published == 2 })
			r.stop(t)
			if got := s.Stats().Truncated; got != tc.want {
				t.Errorf("Stats.Truncated = %d, want %d", got, tc.want)
			}
			logged := strings.Contains(logsOf(t), "level=ERROR msg=\"cdc: the table was truncated; the rows it removed are not ended in the hub")
			if logged != (tc.want > 0) {
				t.Errorf("truncate logged as an error: %v, want %v", logged, tc.want > 0)
			}
			if tc.publication != "" {
				var truncates bool
				if err := db.QueryRow(context.Background(), "SELECT pubtruncate FROM pg_publication WHERE pubname = $1", fmt.Sprintf(tc.publication, table)).Scan(&truncates); err != nil {
					t.Fatal(err)
				}
				if truncates || !strings.Contains(logsOf(t), "the publication does not publish truncates") {
					t.Errorf("a publication named for the stream: truncates added %v, or no warning", truncates)
				}
			}
		})
	}
}

// TestColumnRenamedWhileStopped: a mapped column renamed while the
// stream was stopped, with changes made before and after: the old
// mapping starts, sends the changes made before and stops at the first
// made after (ErrTableChanged), and the new mapping goes on from there.
// Without a copied slot, nothing is left for the old mapping: it is
// refused at start.
func TestColumnRenamedWhileStopped(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	old := exampleMapping(t)
	s := newStream(t, table, pub, old)
	r := start(t, s)
	// Streaming, the copy is done: a start then resumes the slot.
	waitFor(t, r, "the copy, then streaming", func() bool { return s.Stats().Published == 1 && s.Stats().Confirmed != 0 })
	r.stop(t)

	exec(t, db, fmt.Sprintf(insertLeaseSQL("tenant_id", 2), table))
	exec(t, db, "ALTER TABLE "+table+" RENAME COLUMN tenant_id TO tenant_idno")
	exec(t, db, fmt.Sprintf(insertLeaseSQL("tenant_idno", 3), table))

	s = newStream(t, table, pub, old)
	err := start(t, s).end(t)
	if !errors.Is(err, ErrTableChanged) || !strings.Contains(err.Error(), "no column tenant_id ") {
		t.Fatalf("Run with the old mapping: %v\nwant ErrTableChanged at the change without tenant_id", err)
	}
	if got := s.Stats().Published; got != 1 {
		t.Errorf("the old mapping published %d events, want lease 2's", got)
	}

	renamed := old
	renamed.CitizenID = "tenant_idno"
	s = newStream(t, table, pub, renamed)
	r = start(t, s)
	waitFor(t, r, "lease 3", func() bool { return s.Stats().Published == 1 })
	r.stop(t)
	if got := heldChanges(t, db, s); got != 0 {
		t.Errorf("the slot holds %d changes, want none", got)
	}
	evs := records(t, addr)
	want := sorted("housing.rental_registered 1 1 end=", "housing.rental_registered 2 2 end=", "housing.rental_registered 3 3 end=")
	if got := summaries(t, evs); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	assertOnce(t, evs)

	// Another table, never copied: the old mapping has nothing to send.
	fresh := rentalsTable(t, db)
	exec(t, db, "ALTER TABLE "+fresh+" RENAME COLUMN tenant_id TO tenant_idno")
	s = newStream(t, fresh, pub, old)
	if err := start(t, s).end(t); err == nil || !strings.Contains(err.Error(), "has no column tenant_id") {
		t.Errorf("Run on a table never copied, without a mapped column: %v; want a refusal naming it", err)
	}
}
