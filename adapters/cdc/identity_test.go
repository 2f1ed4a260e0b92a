package cdc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
)

// TestTableWithoutReplicaIdentity: once a publication publishes a
// table's updates or deletes, PostgreSQL refuses every UPDATE and DELETE
// of it unless it has a replica identity. A start that would create such
// a publication refuses, with the SQL that gives the table one, and
// creates nothing: the department's own writes keep working. A table
// with one, or a publication of inserts alone, streams.
func TestTableWithoutReplicaIdentity(t *testing.T) {
	for _, tc := range []struct {
		name        string
		partitioned bool     // partitioned by start_date into %[1]s_2025 and %[1]s_2026
		setup       []string // %[1]s stands for the table
		inserts     bool     // the mapping maps inserts only
		want        []string // in the error; nil for a start that streams
	}{
		{
			name:    "no primary key",
			setup:   []string{"ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey", "ALTER TABLE %[1]s REPLICA IDENTITY DEFAULT"},
			inserts: true,
			want: []string{"public.%[1]s has no replica identity PostgreSQL can use (no primary key, and REPLICA IDENTITY DEFAULT)",
				"PostgreSQL refuses every UPDATE and DELETE of it",
				"ALTER TABLE public.%[1]s REPLICA IDENTITY FULL (or add a primary key)",
				"CREATE PUBLICATION pophub_%[1]s FOR TABLE public.%[1]s WITH (publish = 'insert, truncate')",
				"Nothing was created"},
		},
		{
			name:  "replica identity nothing",
			setup: []string{"ALTER TABLE %[1]s REPLICA IDENTITY NOTHING"},
			want: []string{"public.%[1]s has no replica identity PostgreSQL can use (REPLICA IDENTITY NOTHING)", "Once publication pophub_%[1]s publishes its updates and deletes",
				"ALTER TABLE public.%[1]s REPLICA IDENTITY FULL"},
		},
		{
			name: "identity index dropped",
			setup: []string{"CREATE UNIQUE INDEX %[1]s_ident ON %[1]s (lease_id)", "ALTER TABLE %[1]s REPLICA IDENTITY USING INDEX %[1]s_ident",
				"DROP INDEX %[1]s_ident"},
			inserts: true,
			want:    []string{"(REPLICA IDENTITY USING INDEX of an index that was dropped or cannot serve)", "ALTER TABLE public.%[1]s REPLICA IDENTITY FULL"},
		},
		{
			name: "deferrable primary key",
			setup: []string{"ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey", "ALTER TABLE %[1]s ADD PRIMARY KEY (lease_id) DEFERRABLE",
				"ALTER TABLE %[1]s REPLICA IDENTITY DEFAULT"},
			inserts: true,
			want:    []string{"a primary key PostgreSQL cannot use for it (deferrable, or not valid)"},
		},
		{
			name:        "partition without one",
			partitioned: true,
			setup:       []string{"ALTER TABLE %[1]s_2025 REPLICA IDENTITY NOTHING"},
			inserts:     true,
			want: []string{"partitions of public.%[1]s have no replica identity PostgreSQL can use: public.%[1]s_2025 (REPLICA IDENTITY NOTHING)",
				"ALTER TABLE public.%[1]s_2025 REPLICA IDENTITY FULL",
				"WITH (publish = 'insert, truncate', publish_via_partition_root = true)"},
		},
		{
			name:  "primary key",
			setup: []string{"ALTER TABLE %[1]s REPLICA IDENTITY DEFAULT"},
		},
		{
			name:    "full without a primary key",
			setup:   []string{"ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey"},
			inserts: true,
		},
		{
			name: "publication of inserts alone",
			setup: []string{"ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey", "ALTER TABLE %[1]s REPLICA IDENTITY DEFAULT",
				"CREATE PUBLICATION pophub_%[1]s FOR TABLE %[1]s WITH (publish = 'insert, truncate')"},
			inserts: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := connect(t)
			newTable := rentalsTable
			if tc.partitioned {
				newTable = partitionedRentalsTable
			}
			table := newTable(t, db)
			for _, sql := range tc.setup {
				exec(t, db, fmt.Sprintf(sql, table))
			}
			insertLease(t, db, table, 1, citizen(1))
			m := exampleMapping(t)
			if tc.inserts {
				m.Update, m.Delete = nil, nil
			} else {
				m.Delete = nil // deletes need REPLICA IDENTITY FULL anyway
			}
			addr := testenv.Kafka(t, partitions)
			s := newStream(t, table, newPublisher(t, addr), m)
			r := start(t, s)
			if tc.want == nil {
				waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 1 })
				insertLease(t, db, table, 2, citizen(2))
				waitFor(t, r, "the insert", func() bool { return s.Stats().Published == 2 })
			} else {
				err := r.end(t)
				for _, want := range tc.want {
					if want = strings.ReplaceAll(want, "%[1]s", table); err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("Run: %v\nwant an error with %s", err, want)
					}
				}
				var pubs, slots int
				if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_publication WHERE pubname = 'pophub_'||$1),
					(SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pophub_housing_'||$1)`, table).Scan(&pubs, &slots); err != nil {
					t.Fatal(err)
				}
				if pubs != 0 || slots != 0 {
					t.Errorf("%d publications and %d slots created, want none", pubs, slots)
				}
			}
			// The department's own writes work, during the stream or
			// after a refused start.
			exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_id = 1")
			exec(t, db, "DELETE FROM "+table+" WHERE lease_id = 1")
		})
	}
}
