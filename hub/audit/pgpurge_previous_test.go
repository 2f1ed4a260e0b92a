package audit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// previousReleasePurge is `pophub audit purge` of the previous release
// (553d7b6, hub/audit/postgres.go Purge), statement for statement: one
// transaction under the chain's lock, the anchor stored with an
// unconditional upsert. between runs after it has read its new anchor and
// before it stores it (its min(seq) scan of a province's trail takes
// minutes, this release's chunks a tenth of a second each).
func previousReleasePurge(ctx context.Context, p *Postgres, now time.Time, r Retention, between func()) (int64, error) {
	accessCut, procCut := r.cutoffs(now)
	actions := make([]string, len(accessActions))
	for i, a := range accessActions {
		actions[i] = string(a)
	}
	var n int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", p.lockKey); err != nil {
			return err
		}
		var keep *int64
		if err := tx.QueryRow(ctx, "SELECT min(seq) FROM "+p.log+
			" WHERE at >= CASE WHEN action = ANY($1) THEN $2::timestamptz ELSE $3::timestamptz END",
			actions, accessCut, procCut).Scan(&keep); err != nil {
			return err
		}
		where, args := "TRUE", []any{}
		if keep != nil {
			where, args = "seq < $1", []any{*keep}
		}
		var a Link
		var hash, seal []byte
		err := tx.QueryRow(ctx, "SELECT seq, at, hash, seal FROM "+p.log+" WHERE "+where+" ORDER BY seq DESC LIMIT 1", args...).
			Scan(&a.Seq, &a.Time, &hash, &seal)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		between()
		if _, err := tx.Exec(ctx, "SELECT set_config('pophub.audit_purge', 'on', true)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+p.anch+" (id, seq, at, hash, seal) VALUES (1, $1, $2, $3, $4) "+
			"ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, at = EXCLUDED.at, hash = EXCLUDED.hash, seal = EXCLUDED.seal",
			a.Seq, a.Time, hash, seal); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM "+p.log+" WHERE seq <= $1", a.Seq)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// waitingForAdvisoryLock reports whether some session of the database
// waits for an advisory lock.
func waitingForAdvisoryLock(ctx context.Context, p *Postgres) bool {
	var n int
	p.pool.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = "+
		"(SELECT oid FROM pg_database WHERE datname = current_database())").Scan(&n)
	return n > 0
}

// TestPurgeAlongsideThePreviousReleasesPurgeKeepsTheChainWhole: during a
// rolling upgrade the cron job of a node still on the previous release
// runs `audit purge` (its cut-off a day older) while an operator runs
// this release's. The previous release stores its anchor unconditionally
// after reading it under the chain's lock; this release's chunks take
// that lock too for their anchor and deletion, so neither moves the
// anchor back over entries the other deleted, and auditors see a chain
// that verifies rather than "entries missing".
func TestPurgeAlongsideThePreviousReleasesPurgeKeepsTheChainWhole(t *testing.T) {
	k := testKey(t)
	p := testPostgres(t)
	p.purgeChunk = 100
	ctx := context.Background()
	now := time.Now().UTC()
	var batch []Entry
	for i := range 300 { // expired for both purges
		batch = append(batch, readAt(k, now.AddDate(-2, 0, 0).Add(time.Duration(i)*time.Minute), i%len(people)))
	}
	for i := range 300 { // expired for this release's purge only
		batch = append(batch, readAt(k, now.AddDate(0, -6, 0).Add(-12*time.Hour).Add(time.Duration(i)*time.Second), i%len(people)))
	}
	batch = append(batch, readAt(k, now.AddDate(0, -1, 0), 0), readAt(k, now.AddDate(0, 0, -1), 1))
	appendAt(t, p, k, batch)

	type result struct {
		res PurgeResult
		err error
	}
	newDone := make(chan result, 1)
	_, oldErr := previousReleasePurge(ctx, p, now.Add(-24*time.Hour), Retention{}, func() {
		go func() {
			res, err := p.Purge(ctx, now, Retention{})
			newDone <- result{res, err}
		}()
		// Let this release's purge run until it finishes or waits for the
		// chain's lock the previous release's purge holds.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && len(newDone) == 0 && !waitingForAdvisoryLock(ctx, p) {
			time.Sleep(10 * time.Millisecond)
		}
	})
	r := <-newDone
	if r.err != nil || oldErr != nil {
		t.Fatalf("purges: this release %+v %v; previous release %v", r.res, r.err, oldErr)
	}
	rep, err := Verify(ctx, p, VerifyOptions{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("after two lawful purges (this release deleted %d, anchor now %d) audit verify reports: %v",
			r.res.Deleted(), rep.Anchor.Seq, rep.Problems)
	}
	if rep.Anchor.Seq != 600 {
		t.Fatalf("anchor at %d after both purges, want 600 (every entry expired for this release's purge deleted)", rep.Anchor.Seq)
	}
}
