package cdc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestTableChangedMidStream: a schema change that leaves the table's
// changes unfit for the mapping stops the stream with ErrTableChanged,
// saying what changed and what to do, and confirms none of the changes
// from there on. Once the table or the mapping is fixed, the next start
// publishes them, each once; a delete whose row PostgreSQL did not keep
// is reported as a bad row rather than dropped unseen.
func TestTableChangedMidStream(t *testing.T) {
	for _, tc := range []struct {
		name        string
		partitioned bool
		// change runs once the snapshot is published; %[1]s is the table.
		change []string
		// held counts its row changes, all of which the slot must still
		// hold after the stop.
		held    int
		wantErr []string // %[1]s is the table
		// fix and fixMapping repair the table or the mapping before the
		// restart; after runs once it streams.
		fix        []string
		fixMapping func(*Mapping)
		after      []string
		// wantAfter summarises the events the restart publishes, of which
		// wantCopied are the rows of a copy it takes.
		wantAfter    []string
		wantCopied   int64
		wantRejected int64
		wantReason   string // of the bad row
	}{{
		name: "a mapped column renamed",
		change: []string{
			"ALTER TABLE %[1]s RENAME COLUMN tenant_id TO tenant_idno",
			insertLeaseSQL("tenant_idno", 3),
		},
		held:       1,
		wantErr:    []string{"no column tenant_id", "tenant_idno", "change the mapping"},
		fixMapping: func(m *Mapping) { m.CitizenID = "tenant_idno" },
		after:      []string{insertLeaseSQL("tenant_idno", 4)},
		wantAfter:  []string{"housing.rental_registered 3 3 end=", "housing.rental_registered 4 4 end="},
	}, {
		name: "the table renamed",
		change: []string{
			"ALTER TABLE %[1]s RENAME TO %[1]s_x",
			"UPDATE %[1]s_x SET end_date = '2026-06-30' WHERE lease_id = 1",
			strings.ReplaceAll(insertLeaseSQL("tenant_id", 3), "%[1]s", "%[1]s_x"),
		},
		held:      2,
		wantErr:   []string{"renamed to public.%[1]s_x", `ALTER TABLE "public"."%[1]s_x" RENAME TO "%[1]s"`},
		fix:       []string{"ALTER TABLE %[1]s_x RENAME TO %[1]s"},
		after:     []string{insertLeaseSQL("tenant_id", 4)},
		wantAfter: []string{"housing.rental_registered 1 1 end=2026-06-30", "housing.rental_registered 3 3 end=", "housing.rental_registered 4 4 end="},
	}, {
		name: "replica identity no longer FULL, seen at an update",
		change: []string{
			"ALTER TABLE %[1]s REPLICA IDENTITY DEFAULT",
			"UPDATE %[1]s SET end_date = '2026-06-30' WHERE lease_id = 2",
		},
		held:      1,
		wantErr:   []string{"without tenant_id", "ALTER TABLE public.%[1]s REPLICA IDENTITY FULL"},
		fix:       []string{"ALTER TABLE %[1]s REPLICA IDENTITY FULL"},
		after:     []string{"DELETE FROM %[1]s WHERE lease_id = 1"},
		wantAfter: []string{"housing.rental_registered 2 2 end=2026-06-30", "housing.rental_ended 1 1 end=" + today()},
	}, {
		name: "replica identity no longer FULL, seen at a delete",
		change: []string{
			"ALTER TABLE %[1]s REPLICA IDENTITY DEFAULT",
			"DELETE FROM %[1]s WHERE lease_id = 1",
		},
		held:         1,
		wantErr:      []string{"without tenant_id", "ALTER TABLE public.%[1]s REPLICA IDENTITY FULL"},
		fix:          []string{"ALTER TABLE %[1]s REPLICA IDENTITY FULL"},
		after:        []string{insertLeaseSQL("tenant_id", 3)},
		wantAfter:    []string{"housing.rental_registered 3 3 end="},
		wantRejected: 1, // lease 1's delete: PostgreSQL kept only its key
		wantReason:   "reason=missing_citizen_id",
	}, {
		name:        "a partition's replica identity no longer FULL",
		partitioned: true,
		change: []string{
			"ALTER TABLE %[1]s_2026 REPLICA IDENTITY DEFAULT",
			"DELETE FROM %[1]s WHERE lease_id = 2",
		},
		held:         1,
		wantErr:      []string{"partition public.%[1]s_2026", "ALTER TABLE public.%[1]s_2026 REPLICA IDENTITY FULL"},
		fix:          []string{"ALTER TABLE %[1]s_2026 REPLICA IDENTITY FULL"},
		after:        []string{"DELETE FROM %[1]s WHERE lease_id = 1"},
		wantAfter:    []string{"housing.rental_ended 1 1 end=" + today()},
		wantRejected: 1, // lease 2's delete
	}, {
		// A migration's last step: a new table takes the name. Its
		// changes are not the old table's, nor in its publication, so
		// no change the stream receives shows it.
		name: "the table replaced by another under its name",
		change: []string{
			"ALTER TABLE %[1]s RENAME TO %[1]s_x",
			"CREATE TABLE %[1]s (LIKE %[1]s_x INCLUDING ALL)",
			"ALTER TABLE %[1]s REPLICA IDENTITY FULL",
			insertLeaseSQL("tenant_id", 3),
		},
		wantErr: []string{"replaced", "renamed to public.%[1]s_x", "ALTER PUBLICATION pophub_%[1]s ADD TABLE public.%[1]s"},
		fix:     []string{"ALTER PUBLICATION pophub_%[1]s ADD TABLE %[1]s"},
		after:   []string{insertLeaseSQL("tenant_id", 4)},
		// The new table copied (lease 3, inserted before it was
		// published: in no slot), then its changes.
		wantAfter:  []string{"housing.rental_registered 3 3 end=", "housing.rental_registered 4 4 end="},
		wantCopied: 1,
	}, {
		// As above, the migration adding the new table to the
		// publication (as a publication FOR ALL TABLES does): its
		// changes arrive, under an OID the stream takes for another
		// table's, and must not be confirmed.
		name: "the table replaced by another, published",
		change: []string{
			"ALTER TABLE %[1]s RENAME TO %[1]s_x",
			"CREATE TABLE %[1]s (LIKE %[1]s_x INCLUDING ALL)",
			"ALTER TABLE %[1]s REPLICA IDENTITY FULL",
			"ALTER PUBLICATION pophub_%[1]s ADD TABLE %[1]s",
			insertLeaseSQL("tenant_id", 3),
		},
		held:       1,
		wantErr:    []string{"replaced", "renamed to public.%[1]s_x"},
		after:      []string{insertLeaseSQL("tenant_id", 4)},
		wantAfter:  []string{"housing.rental_registered 3 3 end=", "housing.rental_registered 4 4 end="},
		wantCopied: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(t)
			var table string
			if tc.partitioned {
				table = partitionedRentalsTable(t, db)
			} else {
				table = rentalsTable(t, db)
			}
			t.Cleanup(func() { exec(t, db, "DROP TABLE IF EXISTS "+table+"_x") })
			run := func(stmts []string) {
				t.Helper()
				for _, sql := range stmts {
					exec(t, db, fmt.Sprintf(sql, table))
				}
			}
			run([]string{insertLeaseSQL("tenant_id", 1), strings.Replace(insertLeaseSQL("tenant_id", 2), "2025-01-01'", "2026-03-01'", 1)})
			addr := testenv.Kafka(t, partitions)
			pub := newPublisher(t, addr)
			m := exampleMapping(t)

			s1 := newStream(t, table, pub, m)
			r1 := start(t, s1)
			waitFor(t, r1, "the snapshot", func() bool { return s1.Stats().Published == 2 })
			run(tc.change)
			err := r1.end(t)
			if !errors.Is(err, ErrTableChanged) {
				t.Fatalf("Run: %v, want ErrTableChanged", err)
			}
			for _, want := range tc.wantErr {
				if want = strings.ReplaceAll(want, "%[1]s", table); !strings.Contains(err.Error(), want) {
					t.Errorf("Run: %v\nwant it to say %q", err, want)
				}
			}
			if st := s1.Stats(); st.Published != 2 || st.Rejected != 0 {
				t.Errorf("stats %+v, want the snapshot's 2 events and nothing rejected", st)
			}
			if n := heldChanges(t, db, s1); n != tc.held {
				t.Errorf("the slot holds %d row changes, want %d: the changes from the stop on must stay unconfirmed", n, tc.held)
			}

			run(tc.fix)
			if tc.fixMapping != nil {
				tc.fixMapping(&m)
			}
			s2 := newStream(t, table, pub, m)
			r2 := start(t, s2)
			waitFor(t, r2, "streaming", func() bool { return s2.Stats().Confirmed != 0 })
			run(tc.after)
			waitFor(t, r2, "the changes", func() bool {
				st := s2.Stats()
				return st.Published == int64(len(tc.wantAfter)) && st.Rejected == tc.wantRejected
			})
			r2.stop(t)
			if st := s2.Stats(); st.Snapshot != tc.wantCopied {
				t.Errorf("the restart copied %d rows, want %d", st.Snapshot, tc.wantCopied)
			}
			if tc.wantRejected > 0 && !strings.Contains(logsOf(t), "skipping bad row") {
				t.Error("the lost delete was not logged as a bad row")
			}
			if tc.wantReason != "" && !strings.Contains(logsOf(t), tc.wantReason) {
				t.Errorf("the lost delete was not logged with %s", tc.wantReason)
			}

			evs := records(t, addr)
			want := sorted(append([]string{"housing.rental_registered 1 1 end=", "housing.rental_registered 2 2 end="}, tc.wantAfter...)...)
			if got := summaries(t, evs); !slices.Equal(got, want) {
				t.Errorf("events:\n got %q\nwant %q", got, want)
			}
			assertOnce(t, evs)
		})
	}
}

// insertLeaseSQL is insertLease's statement with the citizen ID in the
// given column; %[1]s stands for the table.
func insertLeaseSQL(tenantColumn string, lease int) string {
	return fmt.Sprintf(`INSERT INTO %%[1]s (lease_id, %s, address_code, start_date, signed_at)
		VALUES (%d, '%s', '%s', '2025-01-01', '2025-01-01 10:00:00+08')`, tenantColumn, lease, citizen(lease), addressCode)
}

// end waits for Run to return of itself, which a test expects it to do
// within 30s.
func (r *running) end(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.once.Do(r.cancel)
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop within 30s")
		return nil
	}
}

// heldChanges counts the row changes the stream's slot holds past its
// confirmed position, once no connection uses the slot.
func heldChanges(t testing.TB, db *pgx.Conn, s *Stream) int {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var active bool
		if err := db.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", s.Slot()).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if !active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot is still in use")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
		'proto_version', '1', 'publication_names', $2) WHERE get_byte(data, 0) IN (ascii('I'), ascii('U'), ascii('D'))`,
		s.Slot(), s.Publication()).Scan(&n)
	if err != nil {
		t.Fatalf("peeking at the slot: %v", err)
	}
	return n
}

// TestTableGone: when the configured name no longer names the streamed
// table, the error says what became of it and gives the SQL to go on.
func TestTableGone(t *testing.T) {
	tbl := &tableInfo{oid: 100, schema: "public", name: "rentals", qualified: "public.rentals"}
	ptr := func(s string) *string { return &s }
	oid := func(n uint32) *uint32 { return &n }
	for _, tc := range []struct {
		name string
		cur  namedTable
		want []string // "" alone: nothing to report
	}{{
		name: "still the table",
		cur:  namedTable{oid: oid(100), qualified: ptr("public.rentals"), namespace: ptr("public"), name: ptr("rentals")},
		want: []string{""},
	}, {
		name: "renamed",
		cur:  namedTable{namespace: ptr("public"), name: ptr("rentals_old")},
		want: []string{"renamed to public.rentals_old", `ALTER TABLE "public"."rentals_old" RENAME TO "rentals"`},
	}, {
		name: "moved to another schema",
		cur:  namedTable{namespace: ptr("archive"), name: ptr("rentals")},
		want: []string{"renamed to archive.rentals", `ALTER TABLE "archive"."rentals" SET SCHEMA "public"`},
	}, {
		name: "dropped",
		cur:  namedTable{},
		want: []string{"dropped", "ALTER PUBLICATION pophub_rentals ADD TABLE public.rentals", "copies its rows"},
	}, {
		name: "renamed and replaced",
		cur:  namedTable{oid: oid(200), qualified: ptr("public.rentals"), namespace: ptr("public"), name: ptr("rentals_old")},
		want: []string{"replaced", "OID 200, not 100", "ALTER PUBLICATION pophub_rentals ADD TABLE public.rentals", "copies its rows",
			"renamed to public.rentals_old", `ALTER TABLE "public"."rentals_old" RENAME TO "rentals"`},
	}, {
		name: "dropped and replaced",
		cur:  namedTable{oid: oid(200), qualified: ptr("public.rentals")},
		want: []string{"replaced", "ALTER PUBLICATION pophub_rentals ADD TABLE public.rentals", "the table streamed was dropped"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := tableGone(tbl, "pophub_rentals", tc.cur)
			if len(tc.want) == 1 && tc.want[0] == "" {
				if got != "" {
					t.Errorf("tableGone = %q, want nothing to report", got)
				}
				return
			}
			for _, want := range tc.want {
				if !strings.Contains(got, want) {
					t.Errorf("tableGone = %q\nwant it to say %q", got, want)
				}
			}
		})
	}
}

// unusedPublisher is the publisher of a stream that never publishes.
type unusedPublisher struct{}

func (unusedPublisher) Publish(context.Context, ...schemas.Event) ([]publisher.Result, error) {
	return nil, errors.New("unexpected publish")
}

// TestConfirmableWaitsForTheCheck: a position is confirmed only once a
// check of the table made after it was received passed, at most one
// check a StatusInterval; until then the last position checked is. A
// table replaced under its name fails the check, and nothing past the
// last position checked is confirmed.
func TestConfirmableWaitsForTheCheck(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	t.Cleanup(func() { exec(t, db, "DROP TABLE IF EXISTS "+table+"_x") })
	s := newStream(t, table, unusedPublisher{}, exampleMapping(t))
	ctx := context.Background()
	tbl, err := s.inspect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ensurePublication(ctx, db, tbl); err != nil {
		t.Fatal(err)
	}
	if tbl.publication, err = s.readPublication(ctx, db, tbl); err != nil {
		t.Fatal(err)
	}
	st := &streamState{catalog: db, tbl: tbl, acked: 100, verified: 100}
	later := time.Now().Add(time.Hour)
	for _, step := range []struct {
		name    string
		sql     []string // run first; %[1]s is the table
		acked   pglogrepl.LSN
		checkAt time.Time // nextCheck; zero: now
		want    pglogrepl.LSN
		wantErr bool
	}{
		{name: "nothing new", acked: 100, checkAt: later, want: 100},
		{name: "handled, check not due", acked: 200, checkAt: later, want: 100},
		{name: "handled, check due", acked: 200, want: 200},
		{name: "replaced, check not due", acked: 300, checkAt: later, want: 200, sql: []string{
			"ALTER TABLE %[1]s RENAME TO %[1]s_x", "CREATE TABLE %[1]s (LIKE %[1]s_x)",
		}},
		{name: "replaced, check due", acked: 300, want: 200, wantErr: true},
		{name: "still replaced", acked: 300, want: 200, wantErr: true},
	} {
		for _, sql := range step.sql {
			exec(t, db, fmt.Sprintf(sql, table))
		}
		st.acked, st.nextCheck = step.acked, step.checkAt
		got, err := s.confirmable(ctx, st)
		if got != step.want || (err != nil) != step.wantErr || err != nil && !errors.Is(err, ErrTableChanged) {
			t.Errorf("%s: confirmable = %s, %v; want %s, error %v (ErrTableChanged)", step.name, got, err, step.want, step.wantErr)
		}
	}
}
