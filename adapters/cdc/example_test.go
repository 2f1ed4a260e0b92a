package cdc

import (
	"maps"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
)

// TestExampleMappingFollowsARestoredRow: with examples/rentals.yaml, a
// lease deleted by mistake and inserted again from a backup (its
// signed_at unchanged) is registered again after its end, so the hub
// holds it as the table does. The hub keeps the later of a lease's
// registration and end by event time: every change is dated by its
// commit.
func TestExampleMappingFollowsARestoredRow(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1))
	insertLease(t, db, table, 2, citizen(2))
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	r := start(t, s)
	waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 2 })

	exec(t, db, "CREATE TEMPORARY TABLE backup AS SELECT * FROM "+table)
	exec(t, db, "DELETE FROM "+table+" WHERE lease_id = 1")                      // by mistake
	exec(t, db, "INSERT INTO "+table+" SELECT * FROM backup WHERE lease_id = 1") // restored
	exec(t, db, "DELETE FROM "+table+" WHERE lease_id = 2")                      // for good
	waitFor(t, r, "the changes", func() bool { return s.Stats().Published == 5 })
	r.stop(t)

	if got, want := hubView(records(t, addr)), tableView(t, db, table); !maps.Equal(got, want) {
		t.Errorf("the hub holds %v; the table %v", got, want)
	}
}
