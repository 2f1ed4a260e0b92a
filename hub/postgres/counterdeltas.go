package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/metric"
)

// foldEvery is how often a store folds the counter changes batches append
// to stats_counter_deltas into stats_counters (migration
// 0014_counter_deltas). Counts read both tables, so it bounds only the
// rows a count scans beside the counters' index: about a second of
// changes.
const foldEvery = time.Second

// foldPiece bounds the change rows one fold transaction moves: a backlog
// (folds held up by a DBA's lock on the counters, or a registration load
// faster than a fold a second) is folded piece by piece, each piece
// committed, so that however large it grew it drains, where one
// transaction for all of it could outlast any deadline and roll back
// every time.
const foldPiece = 20_000

// foldSQL moves up to $1 committed rows of stats_counter_deltas into
// stats_counters, summed per counter, in counter key order, and returns
// how many rows it moved. Rows of batches still in flight are not seen
// and stay for the next fold. Two stores folding at once do not count a
// row twice: the second's DELETE waits for the first's row lock and then
// skips the rows it deleted.
const foldSQL = `WITH moved AS (
		DELETE FROM stats_counter_deltas
		WHERE ctid = ANY (ARRAY(SELECT ctid FROM stats_counter_deltas LIMIT $1))
		RETURNING region, class, bucket, n),
	sums AS (
		SELECT region, class, bucket, sum(n)::bigint AS n, count(*) AS rows
		FROM moved GROUP BY region, class, bucket),
	added AS (
		INSERT INTO stats_counters (region, class, bucket, n)
		SELECT region, class, bucket, n FROM sums WHERE n <> 0 ORDER BY region, class, bucket
		ON CONFLICT (region, class, bucket) DO UPDATE SET n = stats_counters.n + excluded.n)
	SELECT coalesce(sum(rows), 0)::bigint FROM sums`

// foldTimeout bounds one piece of a fold.
const foldTimeout = 10 * time.Second

// foldCounters folds the committed counter changes into the counters, a
// piece (foldPiece rows) a transaction, until none is left or ctx ends,
// and returns how many change rows it folded. A count reads the same sums
// before and after each piece. While another session holds the tables
// (a rebuild, for as long as it scans every person) it folds nothing,
// returns at once with skipped set and no error: the rebuild empties
// both, and the next fold takes what comes after.
func (s *Store) foldCounters(ctx context.Context) (total int64, skipped bool, err error) {
	for {
		n, skipped, err := s.foldPieceOf(ctx)
		total += n
		if err != nil || skipped || n < foldPiece {
			return total, skipped, err
		}
	}
}

// foldPieceOf folds one piece in one transaction.
func (s *Store) foldPieceOf(ctx context.Context) (rows int64, skipped bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, foldTimeout)
	defer cancel()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// In the order RebuildCounters locks them, so that the two
		// cannot deadlock.
		if _, err := tx.Exec(ctx, "LOCK TABLE stats_counter_deltas, stats_counters IN ROW EXCLUSIVE MODE NOWAIT"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, foldSQL, foldPiece).Scan(&rows)
	})
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "55P03" { // lock_not_available
		return 0, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("folding counter changes into the counters: %w", err)
	}
	return rows, false, nil
}

// foldWaitWarning is how long folds may find the tables held by another
// session before the store says so: longer than a lock taken by hand for
// a moment, shorter than the growth of the changes' table would matter.
const foldWaitWarning = 5 * time.Minute

func (s *Store) foldWaitWarning() time.Duration {
	if s.cfg.foldWaitWarning > 0 {
		return s.cfg.foldWaitWarning
	}
	return foldWaitWarning
}

// registerFoldAge exports, on a store that folds, pophub.stats.fold.age:
// the seconds since a fold last left no committed change behind. It stays
// under a few seconds while folds keep up, and grows while they fail or
// wait for other sessions' locks, when counts stay exact but read more
// rows and the changes' table grows.
func (s *Store) registerFoldAge(m metric.Meter) (metric.Registration, error) {
	gauge, err := m.Float64ObservableGauge("pophub.stats.fold.age", metric.WithUnit("s"),
		metric.WithDescription("Seconds since this instance last folded the statistics counters' changes up to the newest committed one; grows while folds fail or wait for other sessions' locks."))
	if err != nil {
		return nil, fmt.Errorf("creating fold age gauge: %w", err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveFloat64(gauge, time.Since(time.Unix(0, s.foldedAt.Load())).Seconds())
		return nil
	}, gauge)
	if err != nil {
		return nil, fmt.Errorf("registering fold age gauge: %w", err)
	}
	return reg, nil
}

// lockHolders names the other sessions holding locks on the counters'
// tables, for the warning that folds wait for them; "" when it cannot
// tell.
func (s *Store) lockHolders(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var holders string
	// Granted locks that conflict with the folds' ROW EXCLUSIVE, and
	// requests for one still waiting (an ALTER TABLE queued behind a
	// long reader blocks the folds as much), each with its session.
	err := s.pool.QueryRow(ctx, `SELECT coalesce(string_agg(DISTINCT format('pid %s (%s, %s%s since %s)', a.pid,
			coalesce(nullif(a.application_name, ''), a.usename), l.mode, CASE WHEN l.granted THEN '' ELSE ' waiting' END,
			to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS TZ')), '; '), '')
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.pid <> pg_backend_pid()
			AND l.relation IN ('stats_counters'::regclass, 'stats_counter_deltas'::regclass)
			AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')`).Scan(&holders)
	if err != nil {
		return ""
	}
	return holders
}

// vacuumEvery is how often, at most, the folding goroutine vacuums
// stats_counter_deltas after folding rows out of it. The table is a
// queue: rows deleted leave their space unusable until a vacuum, and
// every count reads the whole table, so without one (autovacuum off, or
// behind) it would grow for ever and counts slow down with it.
const vacuumEvery = 30 * time.Second

// vacuumDeltas vacuums stats_counter_deltas, unless another vacuum holds
// it. A role that does not own the table gets a warning from the server,
// not an error, and the vacuum does nothing: autovacuum then has to. It
// does not give back the table's empty end: that takes the table's
// strongest lock, which the folds, asking for theirs without waiting,
// gave way to for seconds at a time; the space is used again instead
// (autovacuum, if on, still gives it back).
//
// A vacuum has to leave the rows deleted after the oldest transaction
// still running began (a long report, a backup), which might read them:
// the folding goroutine looks again later (see foldInBackground). Unless
// forced (rows were folded out since the last vacuum, which the
// statistics may not count yet), it vacuums only if the statistics count
// dead rows. It reports whether a vacuum ran: one that did not (the role
// does not own the table, another vacuum had it) leaves the rows to the
// owner's, or to autovacuum.
func (s *Store) vacuumDeltas(ctx context.Context, force bool) (ran bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, vacuumEvery)
	defer cancel()
	const stats = `SELECT coalesce(vacuum_count, 0), coalesce(n_dead_tup, 0) FROM pg_stat_user_tables WHERE relid = 'stats_counter_deltas'::regclass`
	var before, after, dead int64
	if err := s.pool.QueryRow(ctx, stats).Scan(&before, &dead); err != nil {
		return false, fmt.Errorf("reading the counters' changes' vacuum statistics: %w", err)
	}
	if !force && dead == 0 {
		return false, nil
	}
	if _, err := s.pool.Exec(ctx, "VACUUM (SKIP_LOCKED, TRUNCATE false) stats_counter_deltas"); err != nil {
		return false, fmt.Errorf("vacuuming the counters' changes: %w", err)
	}
	if err := s.pool.QueryRow(ctx, stats).Scan(&after, new(int64)); err != nil {
		return false, fmt.Errorf("reading the counters' changes' vacuum statistics: %w", err)
	}
	return after > before, nil
}

// foldInBackground folds the counter changes every foldEvery (or
// Config.foldEvery) in a goroutine that Close stops, and vacuums their
// table now and then (vacuumEvery). A failed fold loses nothing: the
// changes stay where counts read them, and the next fold takes them.
// Only the first failure of a run of them is logged as a warning, and
// the recovery after it.
func (s *Store) foldInBackground() {
	every := s.cfg.foldEvery
	switch {
	case every < 0: // tests that look at the changes before a fold
		return
	case every == 0:
		every = foldEvery
	}
	s.foldedAt.Store(time.Now().UnixNano())
	fctx, cancel := context.WithCancel(context.Background())
	s.stopFolding = cancel
	s.folding.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		failing := false
		vacuumAfter := s.cfg.vacuumEvery
		if vacuumAfter == 0 {
			vacuumAfter = vacuumEvery
		}
		// foldedOut counts the rows folded out since the last vacuum;
		// recheck: the last vacuum ran, and may have left rows (or
		// the statistics counted a fold's deletions after it).
		var foldedOut int64
		recheck := false
		lastVacuum := time.Now()
		var waitingSince time.Time // the first of a run of rounds that found the tables held
		warned := false
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			folded, skipped, err := s.foldCounters(fctx)
			if folded > 10*foldPiece {
				s.cfg.Logger.Info("folded a backlog of statistics counter changes", "changes", folded)
			}
			switch {
			case err == nil && !skipped:
				s.foldedAt.Store(time.Now().UnixNano())
				if warned {
					s.cfg.Logger.Info("folding the statistics counters' changes again after waiting for other sessions' locks", "waited", time.Since(waitingSince).Round(time.Second).String())
				}
				waitingSince, warned = time.Time{}, false
			case skipped && waitingSince.IsZero():
				waitingSince = time.Now()
			case skipped && !warned && time.Since(waitingSince) >= s.foldWaitWarning():
				warned = true
				s.cfg.Logger.Warn("the statistics counters' changes have not been folded for a while: other sessions hold locks on the counters' tables (`pophub stats rebuild` does while it runs); counts stay exact but read more rows",
					"waiting", time.Since(waitingSince).Round(time.Second).String(), "holders", s.lockHolders(fctx))
			}
			if foldedOut += folded; (foldedOut > 0 || recheck) && time.Since(lastVacuum) >= vacuumAfter {
				ran, verr := s.vacuumDeltas(fctx, foldedOut > 0)
				if verr != nil && fctx.Err() == nil {
					s.cfg.Logger.Debug("vacuuming the statistics counters' changes failed; autovacuum has to", "err", verr)
				}
				foldedOut, recheck, lastVacuum = 0, ran, time.Now()
			}
			switch {
			case err != nil && fctx.Err() != nil:
				return
			case err != nil && !failing:
				s.cfg.Logger.Warn("the statistics counters' changes are not being folded into them; counts stay exact but read more rows until a fold succeeds", "err", err)
				failing = true
			case err == nil && failing:
				s.cfg.Logger.Info("folding the statistics counters' changes again")
				failing = false
			}
		}
	})
}
