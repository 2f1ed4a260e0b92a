package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
// before and after each piece. While a rebuild holds the tables (for as
// long as it scans every person) it folds nothing and says nothing: the
// rebuild empties both, and the next fold takes what comes after.
func (s *Store) foldCounters(ctx context.Context) (int64, error) {
	var total int64
	for {
		n, err := s.foldPieceOf(ctx)
		total += n
		if err != nil || n < foldPiece {
			return total, err
		}
	}
}

// foldPieceOf folds one piece in one transaction.
func (s *Store) foldPieceOf(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, foldTimeout)
	defer cancel()
	var rows int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// In the order RebuildCounters locks them, so that the two
		// cannot deadlock.
		if _, err := tx.Exec(ctx, "LOCK TABLE stats_counter_deltas, stats_counters IN ROW EXCLUSIVE MODE NOWAIT"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, foldSQL, foldPiece).Scan(&rows)
	})
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "55P03" { // lock_not_available
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("folding counter changes into the counters: %w", err)
	}
	return rows, nil
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
func (s *Store) vacuumDeltas(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, vacuumEvery)
	defer cancel()
	if _, err := s.pool.Exec(ctx, "VACUUM (SKIP_LOCKED, TRUNCATE false) stats_counter_deltas"); err != nil {
		return fmt.Errorf("vacuuming the counters' changes: %w", err)
	}
	return nil
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
		var sinceVacuum int64
		lastVacuum := time.Now()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			folded, err := s.foldCounters(fctx)
			if folded > 10*foldPiece {
				s.cfg.Logger.Info("folded a backlog of statistics counter changes", "changes", folded)
			}
			if sinceVacuum += folded; sinceVacuum > 0 && time.Since(lastVacuum) >= vacuumAfter {
				if verr := s.vacuumDeltas(fctx); verr != nil && fctx.Err() == nil {
					s.cfg.Logger.Debug("vacuuming the statistics counters' changes failed; autovacuum has to", "err", verr)
				}
				sinceVacuum, lastVacuum = 0, time.Now()
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
