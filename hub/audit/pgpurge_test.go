package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPurgeLeavesTheTrailWritable: `pophub audit purge` of a province's
// trail (six months of reads: hundreds of millions of entries, nearly all
// redacted in place because processing records kept 3 years lie between
// them) runs while the hub serves, and every instance goes on storing
// its audit entries meanwhile. Before, the purge deleted and redacted
// everything in one transaction holding the chain's lock: every
// instance's writer waited for the whole run, its queue filled, and API
// reads were held 2 s and their entries dropped. Here 500,000 entries a
// year old, every fifth a policy change (kept); the running hub stores an
// entry within 2 s while the purge runs, and the purge's counts and the
// log's verification are as for a purge in one piece.
func TestPurgeLeavesTheTrailWritable(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: loads 500,000 entries")
	}
	ctx := context.Background()
	p := testPostgres(t)
	k := testKey(t)
	const n = 500_000
	old := time.Now().UTC().AddDate(-1, 0, 0).Truncate(time.Second)
	fill(t, p, k, old, n, 50_000)
	c := newChainer(k)

	now := time.Now().UTC()
	type outcome struct {
		res  PurgeResult
		err  error
		took time.Duration
	}
	purged := make(chan outcome, 1)
	go func() {
		start := time.Now()
		res, err := p.Purge(ctx, now, Retention{})
		purged <- outcome{res, err, time.Since(start)}
	}()
	time.Sleep(500 * time.Millisecond)

	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	b := []Entry{sample(k, now, n)}
	appendErr := p.Append(actx, b, func(h Link) Link { return c.link(h, b) })
	o := <-purged
	if o.err != nil {
		t.Fatalf("purge: %v", o.err)
	}
	t.Logf("purge of %d entries took %s", n, o.took.Round(time.Millisecond))
	if appendErr != nil {
		t.Fatalf("an audit entry written while the purge ran: %v (the purge took %s)", appendErr, o.took.Round(time.Millisecond))
	}
	// Entries 1-4 are reads before the first policy change: deleted; the
	// other 399,996 reads are redacted behind policy changes.
	if want := (PurgeResult{Access: PurgeCount{Deleted: 4, Redacted: n*4/5 - 4}}); o.res != want {
		t.Errorf("purge: %+v, want %+v", o.res, want)
	}
	rep, err := Verify(ctx, p, VerifyOptions{Key: k})
	if err != nil || !rep.OK() || rep.Anchor.Seq != 4 || rep.Head.Seq != n+1 || rep.Redacted != n*4/5-4 {
		t.Errorf("verify after the purge: %+v, %v", rep, err)
	}
}

// purgeFixture is a log of deleted+1+redacted+2 entries: deleted expired
// reads at the start, a gateway request of a year ago (kept 3 years),
// redacted expired reads behind it, and two recent reads, purged in
// chunks of 100.
func purgeFixture(t *testing.T, k Key, deleted, redacted int) (*Postgres, time.Time) {
	t.Helper()
	p := testPostgres(t)
	p.purgeChunk = 100
	now := time.Now().UTC()
	var batch []Entry
	for i := range deleted {
		batch = append(batch, readAt(k, now.AddDate(-2, 0, 0).Add(time.Duration(i)*time.Minute), i%len(people)))
	}
	batch = append(batch, Entry{Time: now.AddDate(-1, 0, 0), Identity: "housing", Action: "publish_events", Result: "accepted"})
	for i := range redacted {
		batch = append(batch, readAt(k, now.AddDate(0, -8, 0).Add(time.Duration(i)*time.Minute), i%len(people)))
	}
	batch = append(batch, readAt(k, now.AddDate(0, -1, 0), 0), readAt(k, now.AddDate(0, 0, -1), 1))
	appendAt(t, p, k, batch)
	return p, now
}

// TestInterruptedPurgeVerifiesAndAnotherCompletesIt: a purge stopped
// between two of its transactions (the operator's Ctrl-C, a lost
// connection) keeps what it did, says so, and leaves a log that verifies
// with the key and takes new entries; purging again completes the work,
// and the two purges together did what one would have done.
func TestInterruptedPurgeVerifiesAndAnotherCompletesIt(t *testing.T) {
	const deleted, redacted = 350, 350 // 4 chunks of deletion, 4 of redaction
	whole := PurgeResult{Access: PurgeCount{Deleted: deleted, Redacted: redacted}}
	tests := []struct {
		name       string
		stopAfter  int // chunks committed before the cancellation
		anchor     int64
		firstCount PurgeResult
	}{
		{"while deleting", 2, 200, PurgeResult{Access: PurgeCount{Deleted: 200}}},
		{"between deleting and redacting", 4, deleted, PurgeResult{Access: PurgeCount{Deleted: deleted}}},
		{"while redacting", 6, deleted, PurgeResult{Access: PurgeCount{Deleted: deleted, Redacted: 200}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := testKey(t)
			p, now := purgeFixture(t, k, deleted, redacted)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			chunks := 0
			p.chunkDone = func() {
				if chunks++; chunks == tc.stopAfter {
					cancel()
				}
			}
			res, err := p.Purge(ctx, now, Retention{})
			if !errors.Is(err, context.Canceled) || res != tc.firstCount {
				t.Fatalf("interrupted purge: %+v, %v; want %+v and context.Canceled", res, err, tc.firstCount)
			}
			p.chunkDone = nil
			bg := context.Background()
			rep, err := Verify(bg, p, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Anchor.Seq != tc.anchor {
				t.Fatalf("verify after the interrupted purge: %+v, %v", rep, err)
			}
			appendAt(t, p, k, []Entry{readAt(k, now, 0)})

			again, err := p.Purge(bg, now, Retention{})
			if err != nil {
				t.Fatal(err)
			}
			sum := PurgeResult{
				Access:     PurgeCount{Deleted: res.Access.Deleted + again.Access.Deleted, Redacted: res.Access.Redacted + again.Access.Redacted},
				Processing: PurgeCount{Deleted: res.Processing.Deleted + again.Processing.Deleted, Redacted: res.Processing.Redacted + again.Processing.Redacted},
			}
			if sum != whole {
				t.Errorf("the two purges: %+v then %+v; together want %+v", res, again, whole)
			}
			rep, err = Verify(bg, p, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Anchor.Seq != deleted || rep.Redacted != redacted || rep.Entries != 1+redacted+3 {
				t.Errorf("verify after the second purge: %+v, %v", rep, err)
			}
			if res, err := p.Purge(bg, now, Retention{}); err != nil || res != (PurgeResult{}) {
				t.Errorf("a third purge: %+v, %v; want nothing to do", res, err)
			}
		})
	}
}

// TestPurgeOfEverything: when every entry has expired the purge deletes
// them all, chunk by chunk; the anchor stands for the last, the key
// checks against it, and the chain goes on from it.
func TestPurgeOfEverything(t *testing.T) {
	k := testKey(t)
	p := testPostgres(t)
	p.purgeChunk = 100
	ctx := context.Background()
	now := time.Now().UTC()
	var batch []Entry
	for i := range 250 {
		batch = append(batch, readAt(k, now.AddDate(-2, 0, 0).Add(time.Duration(i)*time.Minute), i%len(people)))
	}
	appendAt(t, p, k, batch)
	if res, err := p.Purge(ctx, now, Retention{}); err != nil || res != (PurgeResult{Access: PurgeCount{Deleted: 250}}) {
		t.Fatalf("purge: %+v, %v", res, err)
	}
	if err := CheckKey(ctx, p, k); err != nil {
		t.Fatalf("the key against the anchor: %v", err)
	}
	appendAt(t, p, k, []Entry{readAt(k, now, 0)})
	if rep, err := Verify(ctx, p, VerifyOptions{Key: k}); err != nil || !rep.OK() || rep.Anchor.Seq != 250 || rep.Entries != 1 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}

// TestPurgeRefusedByTheTriggerKeepsTheChunksBefore: the trigger checks
// the legal floors again by the database's clock. A purge whose clock is
// ahead (here three years) has the chunk that reaches entries within
// their floor refused; the chunks before it stand and the log verifies.
func TestPurgeRefusedByTheTriggerKeepsTheChunksBefore(t *testing.T) {
	k := testKey(t)
	p, now := purgeFixture(t, k, 250, 0)
	ctx := context.Background()
	res, err := p.Purge(ctx, now.AddDate(3, 0, 0), Retention{})
	if err == nil || !strings.Contains(err.Error(), "legal retention floor") || res != (PurgeResult{Access: PurgeCount{Deleted: 200}}) {
		t.Fatalf("purge ahead of the database's clock: %+v, %v; want 200 deleted, then refused by the trigger", res, err)
	}
	if rep, err := Verify(ctx, p, VerifyOptions{Key: k}); err != nil || !rep.OK() || rep.Anchor.Seq != 200 || rep.Entries != 53 {
		t.Fatalf("verify after the refused chunk: %+v, %v", rep, err)
	}
}

// TestVerifyWhileAPurgeRuns: `audit verify` run while a purge moves the
// anchor forward chunk by chunk reads the anchor and the entries in one
// snapshot, so it never reports the entries a chunk deleted meanwhile as
// removed.
func TestVerifyWhileAPurgeRuns(t *testing.T) {
	k := testKey(t)
	p, now := purgeFixture(t, k, 3000, 1000)
	p.chunkDone = func() { time.Sleep(2 * time.Millisecond) }
	ctx := context.Background()
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	var verified int
	var problem error
	go func() {
		defer wg.Done()
		for !done.Load() {
			rep, err := Verify(ctx, p, VerifyOptions{Key: k})
			if err != nil {
				problem = err
				return
			}
			if !rep.OK() {
				problem = errors.New(rep.Problems[0].String())
				return
			}
			verified++
		}
	}()
	_, err := p.Purge(ctx, now, Retention{})
	done.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if problem != nil {
		t.Fatalf("a verification while the purge ran: %v", problem)
	}
	t.Logf("%d verifications during the purge", verified)
}

// TestTwoPurgesAtOnce: two purges started together (two operators, a
// cron job and a person) each do their chunks once between them: the
// counts add up to one purge's and the log verifies.
func TestTwoPurgesAtOnce(t *testing.T) {
	k := testKey(t)
	p, now := purgeFixture(t, k, 1000, 1000)
	ctx := context.Background()
	var results [2]PurgeResult
	var errs [2]error
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = p.Purge(ctx, now, Retention{})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	got := PurgeResult{Access: PurgeCount{
		Deleted:  results[0].Access.Deleted + results[1].Access.Deleted,
		Redacted: results[0].Access.Redacted + results[1].Access.Redacted,
	}}
	if want := (PurgeResult{Access: PurgeCount{Deleted: 1000, Redacted: 1000}}); got != want {
		t.Errorf("two purges: %+v and %+v; together want %+v", results[0], results[1], want)
	}
	if rep, err := Verify(ctx, p, VerifyOptions{Key: k}); err != nil || !rep.OK() || rep.Anchor.Seq != 1000 || rep.Redacted != 1000 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}
