package cdc

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pophub/pophub/internal/testenv"
)

// onLog calls hook on every record whose message is msg, then passes the
// record on.
type onLog struct {
	slog.Handler
	msg  string
	hook func()
}

func (h onLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.hook()
	}
	return h.Handler.Handle(ctx, r)
}
func (h onLog) WithAttrs(a []slog.Attr) slog.Handler {
	return onLog{h.Handler.WithAttrs(a), h.msg, h.hook}
}
func (h onLog) WithGroup(g string) slog.Handler { return onLog{h.Handler.WithGroup(g), h.msg, h.hook} }

// TestSessionEndedBeforeResendsKeepsHandledPosition: session 1 publishes
// two transactions whose position it has not confirmed yet, and its
// connection is cut. Session 2 ends right after it started streaming,
// before PostgreSQL sent it anything (a flaky network cutting twice in a
// row; here, deterministically, the end of its context). Session 2
// recorded the slot's position as handled, forgetting how far session 1
// got, and session 3 published the two transactions a second time.
//
// The sessions are driven one by one as Run drives them, so that session
// 2 ends at a known point.
func TestSessionEndedBeforeResendsKeepsHandledPosition(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	addr := testenv.Kafka(t, partitions)
	var endOnStreaming atomic.Pointer[context.CancelFunc]
	s := newStreamWith(t, table, newPublisher(t, addr), exampleMapping(t), func(c *Config) {
		c.StatusInterval = time.Hour // the table is checked at the first confirmation only
		c.Logger = slog.New(onLog{testLogger(t).Handler(), "cdc: streaming", func() {
			if f := endOnStreaming.Load(); f != nil {
				(*f)()
			}
		}})
	})
	started := false
	session := func(ctx context.Context) chan error {
		done := make(chan error, 1)
		go func() {
			var rec sessionRecord
			done <- s.session(ctx, &started, &rec)
		}()
		return done
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: timed out", what)
			}
		}
	}

	// Session 1.
	insertLease(t, db, table, 1, citizen(1)) // copied
	done1 := session(context.Background())
	wait("the copy", func() bool { return s.Stats().Published >= 1 })
	// The first streamed position confirmed is checked, the next not
	// before an hour.
	insertLease(t, db, table, 2, citizen(2))
	wait("the second insert", func() bool { return s.Stats().Published >= 2 })
	insertLease(t, db, table, 3, citizen(3))
	wait("the third insert", func() bool { return s.Stats().Published >= 3 })
	if _, err := db.Exec(context.Background(), "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active", s.Slot()); err != nil {
		t.Fatal(err)
	}
	t.Logf("session 1: %v", <-done1)
	handled1 := s.handled.lsn
	var confirmed pglogrepl.LSN
	var text string
	wait("the slot to be free", func() bool {
		var active bool
		db.QueryRow(context.Background(), "SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", s.Slot()).Scan(&active, &text)
		return !active
	})
	confirmed, _ = pglogrepl.ParseLSN(text)
	if confirmed >= handled1 {
		t.Fatalf("the slot was confirmed at %s, past what session 1 handled (%s): the stream checked the table again within the hour", confirmed, handled1)
	}
	t.Logf("session 1 handled up to %s, the slot is confirmed at %s", handled1, confirmed)

	// Session 2: ends as soon as it streams.
	ctx2, cancel2 := context.WithCancel(context.Background())
	endOnStreaming.Store(&cancel2)
	t.Logf("session 2: %v", <-session(ctx2))
	endOnStreaming.Store(nil)
	if s.handled.lsn < handled1 {
		t.Errorf("after session 2 the stream holds %s as handled, before the %s session 1 handled", s.handled.lsn, handled1)
	}

	// Session 3: PostgreSQL sends again the inserts after the slot's
	// position (the third, or the second and the third).
	skipped := s.Stats().Skipped
	ctx3, cancel3 := context.WithCancel(context.Background())
	done3 := session(ctx3)
	wait("the inserts sent again", func() bool { return s.Stats().Skipped > skipped })
	cancel3()
	t.Logf("session 3: %v", <-done3)
	if evs := records(t, addr); len(evs) != 3 {
		t.Errorf("%d events in Kafka, want the 3 inserts once each", len(evs))
	}
}
