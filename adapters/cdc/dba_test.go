package cdc

import (
	"errors"
	"strings"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
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
