package postgres

import (
	"context"
	"fmt"
	"math"

	"github.com/pophub/pophub/hub"
)

// Stats implements hub.Store with exact totals: count(*) over persons and
// history, a full scan of each, which takes minutes on a province's
// history. It is for tests and tools that need the exact numbers; the
// status page reads StatusTotals.
func (s *Store) Stats(ctx context.Context) (hub.StoreStats, error) {
	var st hub.StoreStats
	err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM persons), (SELECT count(*) FROM history), (`+pendingCountSQL+`)`).
		Scan(&st.Persons, &st.Changes, &st.OutboxPending)
	if err != nil {
		return st, readFailed(ctx, "reading store totals", err)
	}
	return st, nil
}

// exactBelow is the size under which StatusTotals counts a table's rows
// rather than estimating them. Counting that many takes milliseconds; a
// small store shows exactly what it holds, and PostgreSQL may not have
// gathered statistics for a young table yet.
const exactBelow = 10_000

// StatusTotals is the store's totals for the status page (GET
// /v1/admin/status, which must answer within its probe timeout, and is
// polled): persons and changes are PostgreSQL's estimate for a table of
// exactBelow rows or more, and estimated then names them ("persons",
// "changes"); OutboxPending is
// always exact, counted on the pending index. It reads at most
// exactBelow rows of each table, however large. An estimate is the
// planner's: the rows per page that VACUUM or ANALYZE last measured times
// the table's pages now, so growth since is counted; usually within a few
// per cent.
func (s *Store) StatusTotals(ctx context.Context) (st hub.StoreStats, estimated []string, err error) {
	var estPersons, estChanges bool
	if st.Persons, estPersons, err = s.tableRows(ctx, "persons"); err != nil {
		return hub.StoreStats{}, nil, readFailed(ctx, "reading store totals: persons", err)
	}
	if st.Changes, estChanges, err = s.tableRows(ctx, "history"); err != nil {
		return hub.StoreStats{}, nil, readFailed(ctx, "reading store totals: history", err)
	}
	if err := s.pool.QueryRow(ctx, pendingCountSQL).Scan(&st.OutboxPending); err != nil {
		return hub.StoreStats{}, nil, readFailed(ctx, "reading store totals: pending notifications", err)
	}
	if estPersons {
		estimated = append(estimated, "persons")
	}
	if estChanges {
		estimated = append(estimated, "changes")
	}
	return st, estimated, nil
}

// tableRows is table's row count, exact below exactBelow rows, else
// estimated (see StatusTotals). table is one of the store's own.
func (s *Store) tableRows(ctx context.Context, table string) (n int64, estimated bool, err error) {
	var relTuples float64
	var relPages, pages, live int64
	// pg_class holds what VACUUM or ANALYZE last measured, the statistics
	// system the live rows since (n_live_tup); pg_relation_size is the
	// table's size now.
	if err := s.pool.QueryRow(ctx, `SELECT c.reltuples::float8, c.relpages::bigint,
			pg_relation_size(c.oid) / current_setting('block_size')::bigint, coalesce(pg_stat_get_live_tuples(c.oid), 0)
		FROM pg_class c WHERE c.oid = $1::text::regclass`, table).Scan(&relTuples, &relPages, &pages, &live); err != nil {
		return 0, false, fmt.Errorf("reading statistics: %w", err)
	}
	if est := estimatedRows(relTuples, relPages, pages, live); est >= exactBelow {
		return est, true, nil
	}
	// Small by the statistics: count, but no further than exactBelow
	// rows, in case the statistics are missing (a table restored and
	// not analysed yet whose counters were reset by a crash). The
	// blocks those rows lie in give the density to estimate from then.
	var blocks int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (ctid::text::point)[0])
		FROM (SELECT ctid FROM `+table+` LIMIT $1) AS s`, exactBelow).Scan(&n, &blocks); err != nil {
		return 0, false, fmt.Errorf("counting rows: %w", err)
	}
	if n < exactBelow {
		return n, false, nil
	}
	return max(n, int64(math.Round(float64(n)/float64(blocks)*float64(pages)))), true, nil
}

// estimatedRows is how many rows a table holds by PostgreSQL's statistics,
// as the planner estimates it: relTuples rows in relPages pages when
// VACUUM or ANALYZE last measured, scaled to the pages the table has now.
// A table never measured (relTuples -1 since PostgreSQL 14, 0 before) or
// measured while it was empty has no rows per page to go by; the
// statistics system's count of live rows (live, n_live_tup) is taken then.
func estimatedRows(relTuples float64, relPages, pages, live int64) int64 {
	if relTuples > 0 && relPages > 0 {
		return int64(math.Round(relTuples / float64(relPages) * float64(pages)))
	}
	return live
}
