package cdc

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
)

// TestStreamNoticesASilentlyCutConnection: the network between pophub cdc
// and the department's database starts dropping every packet, as a
// firewall that forgot the connection does. No error and no close ever
// arrives, so the stream waited for changes until the operating system
// gave up on the connection, a quarter of an hour or more, while rows
// kept changing. It now asks the server to answer every status update,
// presumes the connection cut after ReceiveTimeout of silence, says so,
// and carries on from the slot on a new connection.
func TestStreamNoticesASilentlyCutConnection(t *testing.T) {
	tests := []struct {
		name string
		// settle is how long the stream runs before the cut: long
		// enough for every change to be confirmed, the cut shows only as
		// the server's silence; none, a check of the table on the
		// catalog connection may be the first to go unanswered.
		settle time.Duration
	}{
		{"quiet stream", time.Second},
		{"right after a change", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(t)
			table := rentalsTable(t, db)
			addr := testenv.Kafka(t, partitions)
			through, proxy := testenv.PostgresThroughProxy(t)
			u, err := url.Parse(through)
			if err != nil {
				t.Fatal(err)
			}
			// The server, hearing nothing either, ends its side of the
			// old session after this and frees the slot, as it would
			// after its wal_sender_timeout (60 s by default).
			q := u.Query()
			q.Set("options", "-c wal_sender_timeout=2s")
			u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
			s := newStreamWith(t, table, newPublisher(t, addr), exampleMapping(t), func(c *Config) {
				c.Postgres = u.String()
				c.StatusInterval = 100 * time.Millisecond
				c.ReceiveTimeout = time.Second
			})
			r := start(t, s)
			insertLease(t, db, table, 1, citizen(1)) // copied, or streamed
			waitFor(t, r, "the first insert", func() bool { return s.Stats().Published >= 1 })
			insertLease(t, db, table, 2, citizen(2)) // streamed
			waitFor(t, r, "the second insert", func() bool { return s.Stats().Published >= 2 })
			time.Sleep(tc.settle)

			if proxy.Stall() == 0 {
				t.Fatal("no connection to stall")
			}
			cut := time.Now()
			insertLease(t, db, table, 3, citizen(3))
			waitFor(t, r, "the insert made after the connection was cut", func() bool { return s.Stats().Published >= 3 })
			t.Logf("published %s after the cut", time.Since(cut).Round(time.Millisecond))
			if !strings.Contains(logsOf(t), "presumed cut") {
				t.Errorf("the log does not say the connection was presumed cut:\n%s", logsOf(t))
			}
			if evs := records(t, addr); len(evs) != 3 {
				t.Errorf("%d events in Kafka, want the 3 inserts once each", len(evs))
			}
		})
	}
}

// TestLostConfirmationRepeatsNothing: a session ends (the server ended
// its side, the connection was cut) after publishing a transaction whose
// position it had not confirmed yet, since a confirmation waits for the
// next check of the table. PostgreSQL sends the transaction again to the
// next session, which published its events a second time. The stream now
// skips what an earlier session of its Run published.
func TestLostConfirmationRepeatsNothing(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	addr := testenv.Kafka(t, partitions)
	s := newStreamWith(t, table, newPublisher(t, addr), exampleMapping(t), func(c *Config) {
		c.StatusInterval = time.Hour // the table is checked at the first confirmation only
	})
	insertLease(t, db, table, 1, citizen(1)) // copied
	r := start(t, s)
	waitFor(t, r, "the copy", func() bool { return s.Stats().Published >= 1 })
	// The first streamed position confirmed is checked, the next not
	// before an hour.
	insertLease(t, db, table, 2, citizen(2))
	waitFor(t, r, "the second insert", func() bool { return s.Stats().Published >= 2 })
	insertLease(t, db, table, 3, citizen(3))
	waitFor(t, r, "the third insert", func() bool { return s.Stats().Published >= 3 })

	tag, err := db.Exec(context.Background(), "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active", s.Slot())
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("ending the replication session: %v (%d sessions)", err, tag.RowsAffected())
	}
	insertLease(t, db, table, 4, citizen(4))
	waitFor(t, r, "the insert made after the session ended", func() bool { return s.Stats().Published >= 4 })
	if evs := records(t, addr); len(evs) != 4 {
		t.Errorf("%d events in Kafka, want the 4 inserts once each", len(evs))
	}
	if n := s.Stats().Skipped; n == 0 {
		t.Error("no transaction sent again was skipped: the slot had its position confirmed past the inserts")
	}
}
