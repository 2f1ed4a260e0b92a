package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/faults"
	"github.com/pophub/pophub/internal/testenv"
)

// applyRetrying applies in, retrying while the server is coming back
// (a failover in progress).
func applyRetrying(t *testing.T, s *Store, in []hub.Input) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := s.Apply(ctx, in)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("applying: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// failoverRig is a private PostgreSQL primary whose asynchronous standby
// stops receiving (lag) and is later promoted at the primary's address
// (failover), as a virtual IP or DNS name moved to it would be: the
// transactions committed between the two are lost.
type failoverRig struct {
	pg, standby *faults.Postgres
	cfg         Config
}

func newFailoverRig(t *testing.T) *failoverRig {
	t.Helper()
	ctx := context.Background()
	if _, err := faults.FindPostgresBin(); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	pg, err := faults.StartPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return &failoverRig{pg: pg, cfg: Config{URL: pg.URL(), Schema: "failover"}}
}

// open opens a store (a hub instance) on the rig's address.
func (r *failoverRig) open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// lag makes the standby from what the primary holds now, and stops it.
func (r *failoverRig) lag(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	sb, err := r.pg.Standby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	time.Sleep(time.Second) // streaming catches up with what was committed
	if err := sb.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	r.standby = sb
}

// failover kills the primary and promotes the standby at its address.
func (r *failoverRig) failover(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := r.pg.Stop(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	r.standby.SetPort(r.pg.Port())
	if err := r.standby.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
}

// outboxAhead applies a population's events in batches of 4 through s:
// the first before the standby lags, the next 45 (more outbox rows than
// the 32 numbers a sequence logs ahead) on the primary only. It returns
// the batches; from the 47th on they are for after the failover.
func (r *failoverRig) outboxAhead(t *testing.T, s *Store, seed int64) [][]hub.Input {
	t.Helper()
	chunks := chunks(storetest.Population(t, 60, seed), 4)
	if len(chunks) < 100 {
		t.Fatalf("only %d batches", len(chunks))
	}
	applyRetrying(t, s, chunks[0])
	r.lag(t)
	for _, c := range chunks[1:46] {
		applyRetrying(t, s, c)
	}
	return chunks
}

// chunks cuts in into batches of n events.
func chunks(in []hub.Input, n int) [][]hub.Input {
	var out [][]hub.Input
	for i := 0; i < len(in); i += n {
		out = append(out, in[i:min(i+n, len(in))])
	}
	return out
}

// TestOutboxPartReadAfterFailover: the relay's PendingOutbox keeps the
// decoded entries of the row it last returned in part (partRow), since a
// batch row's entries never change. After a failover to an asynchronous
// standby that lacks the primary's last transactions, outbox_batch_seq
// resumes below the numbers the lost rows had, and a new row takes the
// kept row's number with other entries: PendingOutbox returns the new
// row's notifications, as a store without the kept row does. It returned
// the lost row's, and the new row's were never published.
func TestOutboxPartReadAfterFailover(t *testing.T) {
	ctx := context.Background()
	rig := newFailoverRig(t)
	s := rig.open(t)
	chunks := rig.outboxAhead(t, s, 5)
	// The relay publishes all but the last row, which it reads in part.
	all, err := s.PendingOutbox(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	last := all[len(all)-1].Seq >> entryBits
	var done []int64
	for _, e := range all {
		if e.Seq>>entryBits != last {
			done = append(done, e.Seq)
		}
	}
	if len(all)-len(done) < 2 {
		t.Fatalf("the last row holds %d notifications, want 2 or more", len(all)-len(done))
	}
	if err := s.MarkPublished(ctx, done); err != nil {
		t.Fatal(err)
	}
	part, err := s.PendingOutbox(ctx, 0, 1) // the relay's round ends inside row last
	if err != nil || len(part) != 1 || part[0].Seq>>entryBits != last {
		t.Fatalf("reading in part: %v %v", part, err)
	}
	lostIDs := map[string]bool{}
	for _, e := range all {
		if e.Seq>>entryBits == last {
			lostIDs[e.MsgID] = true
		}
	}

	rig.failover(t)
	// The hub goes on: the standby lacks chunks 1..45, which Kafka would
	// not deliver again (offsets committed); the next events arrive.
	for _, c := range chunks[46:100] {
		applyRetrying(t, s, c)
	}

	// The truth, from a store without the cache.
	want, err := rig.open(t).PendingOutbox(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingOutbox(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	reused := false
	for _, e := range want {
		if e.Seq>>entryBits == last {
			reused = true
		}
	}
	t.Logf("row %d was read in part before the failover; after it, row numbers in the outbox: %d..%d; reused: %v",
		last, want[0].Seq>>entryBits, want[len(want)-1].Seq>>entryBits, reused)
	if !reused {
		t.Fatalf("the promoted standby's outbox rows do not reuse number %d: the test no longer sets up what it checks", last)
	}
	ids := func(es []hub.OutboxEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.MsgID)
		}
		return out
	}
	stale := 0
	for _, e := range got {
		if lostIDs[e.MsgID] {
			stale++
		}
	}
	if !slices.Equal(ids(got), ids(want)) {
		missing := 0
		have := map[string]bool{}
		for _, id := range ids(got) {
			have[id] = true
		}
		for _, id := range ids(want) {
			if !have[id] {
				missing++
			}
		}
		t.Errorf("after the failover PendingOutbox returns %d notifications, the outbox holds %d: %d of the returned are the lost row's (cached), %d pending notifications are never returned",
			len(got), len(want), stale, missing)
	}
}

// TestOutboxMarksAfterFailover: the relay read a round of notifications
// on the primary, published them, and marks them published on the
// promoted standby, which lacks some of the rows it read and has given
// their numbers to new rows: the marks land on the rows read that
// survived, and the new rows' notifications stay pending. Positions
// alone marked the new rows' entries, which were never published.
func TestOutboxMarksAfterFailover(t *testing.T) {
	ctx := context.Background()
	rig := newFailoverRig(t)
	s := rig.open(t)
	chunks := rig.outboxAhead(t, s, 6)
	round, err := s.PendingOutbox(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	readIDs := map[string]bool{}
	var seqs []int64
	for _, e := range round {
		readIDs[e.MsgID] = true
		seqs = append(seqs, e.Seq)
	}

	rig.failover(t)
	for _, c := range chunks[46:100] {
		applyRetrying(t, s, c)
	}
	other := rig.open(t) // an instance that read nothing
	before, err := other.PendingOutbox(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// What must stay pending: everything but what the round published
	// and the promoted server still holds (chunk 0's).
	var want []string
	reused := false
	for _, e := range before {
		if !readIDs[e.MsgID] {
			want = append(want, e.MsgID)
			if slices.Contains(seqs, e.Seq) {
				reused = true
			}
		}
	}
	if !reused {
		t.Fatal("no new notification took a position the round read: the test no longer sets up what it checks")
	}
	if err := s.MarkPublished(ctx, seqs); err != nil {
		t.Fatal(err)
	}
	after, err := other.PendingOutbox(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range after {
		got = append(got, e.MsgID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("after the marks %d notifications are pending, want the %d written since the failover (and none the round published)", len(got), len(want))
	}
}
