package cdc

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/pophub/pophub/internal/testenv"
)

// TestPublicationAlteredWhileStreaming: PostgreSQL decodes each change
// through the publication as it was when the change was made, so a
// change the publication left out, narrowed while the stream ran, is
// never sent, even once it is restored. The stream checks the publication
// before it confirms a position, and stops (ErrPublicationChanged), saying
// what changed and how to fix it, with nothing past the alteration
// confirmed.
func TestPublicationAlteredWhileStreaming(t *testing.T) {
	for _, tc := range []struct {
		name   string
		alter  []string // %[1]s stands for the table; run around change
		change string   // default: an UPDATE of the copied row
		want   []string // in the error, likewise
	}{
		{
			name:  "kinds of change narrowed",
			alter: []string{"ALTER PUBLICATION pophub_%[1]s SET (publish = 'insert')"},
			want: []string{"publication pophub_%[1]s no longer publishes update or delete, which the mapping maps (it publishes insert): " +
				"ALTER PUBLICATION pophub_%[1]s SET (publish = 'insert, update, delete')", "were never sent"},
		},
		{
			name:  "table dropped from it",
			alter: []string{"ALTER PUBLICATION pophub_%[1]s DROP TABLE %[1]s"},
			want:  []string{"publication pophub_%[1]s no longer publishes public.%[1]s: ALTER PUBLICATION pophub_%[1]s ADD TABLE public.%[1]s"},
		},
		{
			name:  "column list without a mapped column",
			alter: []string{"ALTER PUBLICATION pophub_%[1]s SET TABLE %[1]s (lease_id, tenant_id, address_code, start_date, signed_at)"},
			// PostgreSQL refuses updates of a REPLICA IDENTITY FULL table
			// whose column list leaves out a column.
			change: "INSERT INTO %[1]s (lease_id, tenant_id, address_code, start_date, end_date) VALUES (3, '" + citizen(3) + "', '" +
				addressCode + "', '2025-01-01', '2026-06-30')",
			want: []string{"publication pophub_%[1]s now publishes only the columns lease_id, tenant_id, address_code, start_date, signed_at " +
				"of public.%[1]s, without end_date"},
		},
		{
			name: "narrowed and restored",
			alter: []string{"ALTER PUBLICATION pophub_%[1]s SET (publish = 'insert')",
				"ALTER PUBLICATION pophub_%[1]s SET (publish = 'insert, update, delete, truncate')"},
			want: []string{"publication pophub_%[1]s was altered after LSN", "it publishes what the mapping needs now", "were never sent"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := connect(t)
			table := rentalsTable(t, db)
			insertLease(t, db, table, 1, citizen(1))
			addr := testenv.Kafka(t, partitions)
			s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
			r := start(t, s)
			waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 1 })

			var before string
			if err := db.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&before); err != nil {
				t.Fatal(err)
			}
			sub := func(sql string) string { return strings.ReplaceAll(sql, "%[1]s", table) }
			exec(t, db, sub(tc.alter[0]))
			change := "UPDATE %[1]s SET end_date = '2026-06-30' WHERE lease_id = 1"
			if tc.change != "" {
				change = tc.change
			}
			exec(t, db, sub(change))
			for _, sql := range tc.alter[1:] {
				exec(t, db, sub(sql))
			}
			insertLease(t, db, table, 2, citizen(2))
			err := r.end(t)
			if !errors.Is(err, ErrPublicationChanged) {
				t.Fatalf("Run: %v, want ErrPublicationChanged", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), sub(want)) {
					t.Errorf("Run: %v\nwant an error with %s", err, sub(want))
				}
			}
			var confirmed string
			if err := db.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", s.Slot()).Scan(&confirmed); err != nil {
				t.Fatal(err)
			}
			b, _ := pglogrepl.ParseLSN(before)
			c, _ := pglogrepl.ParseLSN(confirmed)
			if c > b {
				t.Errorf("the slot confirmed %s, past the alteration at %s", c, b)
			}
		})
	}
}

// TestPublicationVacuumedWhileStreaming: VACUUM FULL of the catalogs (a
// nightly vacuumdb --full) moves the publication's catalog rows without
// altering it: the stream goes on, and confirms its position past it.
func TestPublicationVacuumedWhileStreaming(t *testing.T) {
	ctx := context.Background()
	db := connect(t)
	table := rentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1))
	// A publication made before the stream's and dropped after it leaves
	// a dead row ahead of the stream's, which VACUUM FULL closes up.
	ahead := "ahead_" + table
	exec(t, db, "CREATE PUBLICATION "+ahead)
	t.Cleanup(func() { exec(t, db, "DROP PUBLICATION IF EXISTS "+ahead) })
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	r := start(t, s)
	waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 1 })
	exec(t, db, "DROP PUBLICATION "+ahead)

	where := func() (ctid string) {
		t.Helper()
		if err := db.QueryRow(ctx, "SELECT ctid::text FROM pg_publication WHERE pubname = $1", "pophub_"+table).Scan(&ctid); err != nil {
			t.Fatal(err)
		}
		return ctid
	}
	before := where()
	exec(t, db, "VACUUM FULL pg_catalog.pg_publication, pg_catalog.pg_publication_rel")
	if after := where(); after == before {
		t.Fatalf("VACUUM FULL left the publication's row at %s: the test moves nothing", before)
	}
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_id = 1")
	insertLease(t, db, table, 2, citizen(2))
	var lsn string
	if err := db.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	last, _ := pglogrepl.ParseLSN(lsn)
	waitFor(t, r, "the changes after the vacuum confirmed", func() bool {
		var confirmed string
		if err := db.QueryRow(ctx, "SELECT coalesce(confirmed_flush_lsn::text, '0/0') FROM pg_replication_slots WHERE slot_name = $1", s.Slot()).Scan(&confirmed); err != nil {
			t.Fatal(err)
		}
		c, _ := pglogrepl.ParseLSN(confirmed)
		return s.Stats().Published == 3 && c >= last
	})
}
