package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultPurgeChunk is how many positions of the log one purge
// transaction covers: short enough (about a tenth of a second) that the
// trail's writers and autovacuum keep up while a province's half-year
// trail is purged.
const defaultPurgeChunk = 10_000

// purgeProgressEvery is how often a purge logs how far it got.
const purgeProgressEvery = 30 * time.Second

// expiredSQL is the SQL of expired(), over $1 (the access actions), $2
// (the access cut-off) and $3 (the processing cut-off); its first term
// lets the index on at bound a scan.
const expiredSQL = "at < greatest($2::timestamptz, $3::timestamptz) AND at < CASE WHEN action = ANY($1) " +
	"AND NOT (action = '" + string(ActionReadRecord) + "' AND starts_with(detail, '" + legacyDetailPrefix + "')) " +
	"THEN $2::timestamptz ELSE $3::timestamptz END"

// perClass counts the rows a statement returned its action for, access
// ones first.
const perClass = "SELECT count(*) FILTER (WHERE action = ANY($1)), count(*) FILTER (WHERE NOT action = ANY($1)) FROM "

// Purge implements Store in short transactions of purgeChunk positions
// each, in ascending order, so that the trail's writers never wait for
// more than one of them. It first reads, without locks, the head, the
// first entry still retained (keep) and the last expired one. It deletes
// the prefix before keep chunk by chunk, each chunk moving the anchor to
// its last deleted entry in the same transaction; then it redacts the
// expired entries after keep, chunk by chunk.
//
// Only a deleting chunk takes the chain's lock, so Append waits for one
// chunk at most: Append only adds entries after the head and reads the
// anchor only when no entry is left, and a chunk's deletion and its
// anchor commit together, so Append sees either the entry it links to or
// the anchor that stands for it. The chain's lock is there for a purge
// of the previous release, which holds it for its whole run and stores
// its anchor unconditionally. Purges of this release serialise chunk by
// chunk on a lock of their own, and each chunk reads the anchor again, so
// two purges at once do each chunk once. After every committed
// chunk the log verifies: the anchor is the last deleted entry and the
// next entry links to it, and a stub keeps its links and seal. The
// trigger checks every deleted or redacted entry against the legal floors
// and the database's clock; a chunk it refuses fails alone.
//
// On an error (ctx cancelled included) Purge returns what the committed
// chunks did with the error; running it again completes the work.
func (p *Postgres) Purge(ctx context.Context, now time.Time, r Retention) (PurgeResult, error) {
	var res PurgeResult
	if err := r.Validate(); err != nil {
		return res, err
	}
	// The tables and trigger of this release, first: a log of a release
	// before redaction lacks the column, and an instance of that release
	// started since re-created its trigger, which refuses redaction.
	if err := p.migrate(ctx); err != nil {
		return res, fmt.Errorf("purging the audit log: %w", err)
	}
	accessCut, procCut := r.cutoffs(now)
	actions := make([]string, len(accessActions))
	for i, a := range accessActions {
		actions[i] = string(a)
	}
	var head, keep, lastExpired *int64
	err := p.pool.QueryRow(ctx, "SELECT (SELECT max(seq) FROM "+p.log+"), "+
		"(SELECT min(seq) FROM "+p.log+" WHERE NOT ("+expiredSQL+")), "+
		"(SELECT max(seq) FROM "+p.log+" WHERE at < greatest($2::timestamptz, $3::timestamptz))",
		actions, accessCut, procCut).Scan(&head, &keep, &lastExpired)
	if err != nil {
		return res, fmt.Errorf("purging the audit log: finding the expired entries: %w", err)
	}
	if head == nil || lastExpired == nil {
		return res, nil
	}
	prefixEnd := *head // every entry up to the head read is expired
	if keep != nil {
		prefixEnd = *keep - 1
	}
	// A province's trail takes minutes: say now and then how far it got.
	logged := time.Now()
	done := func(phase string, upTo int64) {
		if p.chunkDone != nil {
			p.chunkDone()
		}
		if time.Since(logged) >= purgeProgressEvery {
			logged = time.Now()
			p.logger.Info("audit log: purging", "schema", p.schema, "phase", phase, "up_to_seq", upTo,
				"deleted", res.Deleted(), "redacted", res.Redacted())
		}
	}
	if err := p.deletePrefix(ctx, prefixEnd, actions, &res, done); err != nil {
		return res, fmt.Errorf("purging the audit log: %w", err)
	}
	if keep != nil && *lastExpired > *keep {
		if err := p.redactRange(ctx, *keep, *lastExpired, actions, accessCut, procCut, &res, done); err != nil {
			return res, fmt.Errorf("purging the audit log: %w", err)
		}
	}
	return res, nil
}

// purgeTx runs fn in a transaction of its own under the purges' lock
// and the purge flag the trigger looks for.
func (p *Postgres) purgeTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1)), set_config('pophub.audit_purge', 'on', true)",
			"pophub-audit-purge:"+p.schema); err != nil {
			return fmt.Errorf("opening the purge: %w", err)
		}
		return fn(tx)
	})
	return err
}

// errPrefixDone ends deletePrefix's loop.
var errPrefixDone = errors.New("prefix deleted")

// deletePrefix deletes the entries up to end (all expired), chunk by
// chunk, each chunk storing its last deleted entry as the anchor.
func (p *Postgres) deletePrefix(ctx context.Context, end int64, actions []string, res *PurgeResult, done func(string, int64)) error {
	var cursor int64 // below it there is nothing left to delete
	for {
		var access, processing int64
		err := p.purgeTx(ctx, func(tx pgx.Tx) error {
			// The chain's lock, for this chunk's anchor and deletion only:
			// a purge of the previous release holds it while it reads its
			// anchor and then stores it unconditionally, so a chunk
			// committed in between would have the anchor moved back over
			// the entries it deleted. Appends wait for one chunk at most.
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", p.lockKey); err != nil {
				return fmt.Errorf("locking the chain: %w", err)
			}
			a, err := p.anchor(ctx, tx)
			if err != nil {
				return err
			}
			lo := max(a.Seq, cursor)
			if lo >= end {
				return errPrefixDone
			}
			hi := min(lo+p.purgeChunk, end)
			cursor = hi
			var n Link
			var hash, seal []byte
			err = tx.QueryRow(ctx, "SELECT seq, at, hash, seal FROM "+p.log+" WHERE seq > $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1", lo, hi).
				Scan(&n.Seq, &n.Time, &hash, &seal)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // a gap in the numbering
			}
			if err != nil {
				return fmt.Errorf("finding the new anchor: %w", err)
			}
			// The anchor only moves forward, whatever another purge did.
			tag, err := tx.Exec(ctx, "INSERT INTO "+p.anch+" (id, seq, at, hash, seal) VALUES (1, $1, $2, $3, $4) "+
				"ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, at = EXCLUDED.at, hash = EXCLUDED.hash, seal = EXCLUDED.seal "+
				"WHERE "+p.anch+".seq < EXCLUDED.seq",
				n.Seq, n.Time, hash, seal)
			if err != nil {
				return fmt.Errorf("storing the anchor: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return nil
			}
			if err := tx.QueryRow(ctx, "WITH d AS (DELETE FROM "+p.log+" WHERE seq > $2 AND seq <= $3 RETURNING action) "+perClass+"d",
				actions, lo, n.Seq).Scan(&access, &processing); err != nil {
				return fmt.Errorf("deleting entries %d to %d: %w", lo+1, n.Seq, err)
			}
			return nil
		})
		if errors.Is(err, errPrefixDone) {
			return nil
		}
		if err != nil {
			return err
		}
		res.Access.Deleted += access
		res.Processing.Deleted += processing
		done("deleting", cursor)
	}
}

// redactRange redacts the expired entries after keep up to last, chunk by
// chunk.
func (p *Postgres) redactRange(ctx context.Context, keep, last int64, actions []string, accessCut, procCut time.Time,
	res *PurgeResult, done func(string, int64)) error {
	for lo := keep; lo < last; lo += p.purgeChunk {
		hi := min(lo+p.purgeChunk, last)
		var access, processing int64
		err := p.purgeTx(ctx, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, "WITH u AS (UPDATE "+p.log+" SET identity = '', subject = '', sections = '{}', purpose = '', "+
				"status = 0, result = '', detail = '', redacted = true WHERE seq > $4 AND seq <= $5 AND NOT redacted AND "+expiredSQL+
				" RETURNING action) "+perClass+"u",
				actions, accessCut, procCut, lo, hi).Scan(&access, &processing)
			if err != nil {
				return fmt.Errorf("redacting entries %d to %d: %w", lo+1, hi, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		res.Access.Redacted += access
		res.Processing.Redacted += processing
		done("redacting", hi)
	}
	return nil
}
