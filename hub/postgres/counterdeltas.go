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

// foldSQL moves every committed row of stats_counter_deltas into
// stats_counters, summed per counter, in counter key order, and returns
// how many rows it moved. Rows of batches still in flight are not seen
// and stay for the next fold. Two stores folding at once do not count a
// row twice: the second's DELETE waits for the first's row lock and then
// skips the rows it deleted.
const foldSQL = `WITH moved AS (
		DELETE FROM stats_counter_deltas RETURNING region, class, bucket, n),
	sums AS (
		SELECT region, class, bucket, sum(n)::bigint AS n, count(*) AS rows
		FROM moved GROUP BY region, class, bucket),
	added AS (
		INSERT INTO stats_counters (region, class, bucket, n)
		SELECT region, class, bucket, n FROM sums WHERE n <> 0 ORDER BY region, class, bucket
		ON CONFLICT (region, class, bucket) DO UPDATE SET n = stats_counters.n + excluded.n)
	SELECT coalesce(sum(rows), 0)::bigint FROM sums`

// foldCounters folds the committed counter changes into the counters in
// one transaction and returns how many change rows it folded. A count
// reads the same sums before and after. While a rebuild holds the tables
// (for as long as it scans every person) it folds nothing and says
// nothing: the rebuild empties both, and the next fold takes what comes
// after.
func (s *Store) foldCounters(ctx context.Context) (int64, error) {
	var rows int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// In the order RebuildCounters locks them, so that the two
		// cannot deadlock.
		if _, err := tx.Exec(ctx, "LOCK TABLE stats_counter_deltas, stats_counters IN ROW EXCLUSIVE MODE NOWAIT"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, foldSQL).Scan(&rows)
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

// foldInBackground folds the counter changes every foldEvery (or
// Config.foldEvery) in a goroutine that Close stops. A failed fold loses
// nothing: the changes stay where counts read them, and the next fold
// takes them. Only the first failure of a run of them is logged as a
// warning, and the recovery after it.
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
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			rctx, cancelRound := context.WithTimeout(fctx, max(every, 5*time.Second))
			_, err := s.foldCounters(rctx)
			cancelRound()
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
