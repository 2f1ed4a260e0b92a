package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/schemas/citizenid"
)

// counterDeltas derives the batch's counter changes from the states before
// and after it.
func counterDeltas(loaded, changed map[citizenid.ID]*merge.State, urban stats.Classify) []stats.Delta {
	acc := stats.Acc{}
	for id, st := range changed {
		var before stats.Timeline
		if old := loaded[id]; old != nil {
			before = old
		}
		acc.Person(before, st, urban)
	}
	return acc.Deltas()
}

// addCounterDeltas appends a batch's counter changes to
// stats_counter_deltas, which the store folds into the counters
// (counterdeltas.go): appending locks no row another batch needs.
func addCounterDeltas(ctx context.Context, tx pgx.Tx, deltas []stats.Delta) error {
	if len(deltas) == 0 {
		return nil
	}
	regions, classes, buckets, ns := deltaColumns(deltas)
	_, err := tx.Exec(ctx, `INSERT INTO stats_counter_deltas (region, class, bucket, n)
		SELECT r, c::"char", b, n FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(r, c, b, n)`,
		regions, classes, buckets, ns)
	if err != nil {
		return fmt.Errorf("writing counters: %w", err)
	}
	return nil
}

// writeCounters adds the deltas to the counters in place, for the writers
// that hold the counters to themselves (a rebuild, the bulk loader). The
// deltas come sorted by key, so concurrent writers lock counter rows in
// one order.
func writeCounters(ctx context.Context, tx pgx.Tx, deltas []stats.Delta) error {
	if len(deltas) == 0 {
		return nil
	}
	regions, classes, buckets, ns := deltaColumns(deltas)
	_, err := tx.Exec(ctx, `INSERT INTO stats_counters (region, class, bucket, n)
		SELECT r, c::"char", b, n FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(r, c, b, n)
		ON CONFLICT (region, class, bucket) DO UPDATE SET n = stats_counters.n + excluded.n`,
		regions, classes, buckets, ns)
	if err != nil {
		return fmt.Errorf("writing counters: %w", err)
	}
	return nil
}

// deltaColumns splits deltas into the columns of their rows.
func deltaColumns(deltas []stats.Delta) (regions, classes, buckets []string, ns []int64) {
	regions = make([]string, len(deltas))
	classes = make([]string, len(deltas))
	buckets = make([]string, len(deltas))
	ns = make([]int64, len(deltas))
	for i, d := range deltas {
		regions[i], classes[i], buckets[i], ns[i] = d.Region, string(d.Class), d.Bucket, d.N
	}
	return regions, classes, buckets, ns
}

// Counts implements hub.Store: one index range per region, class and
// bucket range.
func (s *Store) Counts(ctx context.Context, q hub.CountQuery) (map[string]hub.Tally, error) {
	rs, err := stats.AsOf(q.AsOf)
	if err != nil {
		return nil, err
	}
	// The counters by their index, and the changes not yet folded into
	// them by one scan of their small table, in one snapshot.
	rows, err := s.pool.Query(ctx, `WITH q AS (
			SELECT q.region, k.class::"char" AS class, r.lo, r.hi
			FROM unnest($1::text[]) AS q(region)
			CROSS JOIN unnest($2::text[]) AS k(class)
			CROSS JOIN unnest($3::text[], $4::text[]) AS r(lo, hi))
		SELECT region, class::text, sum(n)::bigint FROM (
			SELECT c.region, c.class, c.n FROM q
			JOIN stats_counters c ON c.region = q.region AND c.class = q.class AND c.bucket >= q.lo AND c.bucket < q.hi
			UNION ALL
			SELECT d.region, d.class, d.n FROM q
			JOIN stats_counter_deltas d ON d.region = q.region AND d.class = q.class AND d.bucket >= q.lo AND d.bucket < q.hi
		) AS c GROUP BY region, class`,
		q.Regions, []string{string(stats.Urban), string(stats.Rural), string(stats.Permit)},
		[]string{rs[0].Lo, rs[1].Lo, rs[2].Lo}, []string{rs[0].Hi, rs[1].Hi, rs[2].Hi})
	if err != nil {
		return nil, readFailed(ctx, "reading counters", err)
	}
	defer rows.Close()
	out := make(map[string]hub.Tally, len(q.Regions))
	for _, r := range q.Regions {
		out[r] = hub.Tally{}
	}
	for rows.Next() {
		var region, class string
		var n int64
		if err := rows.Scan(&region, &class, &n); err != nil {
			return nil, readFailed(ctx, "reading counters", err)
		}
		t := out[region]
		switch stats.Class(class[0]) {
		case stats.Urban:
			t.Urban = n
		case stats.Rural:
			t.Rural = n
		case stats.Permit:
			t.Permits = n
		}
		out[region] = t
	}
	if err := rows.Err(); err != nil {
		return nil, readFailed(ctx, "reading counters", err)
	}
	return out, nil
}

// RebuildCounters recomputes every counter from the persons' states and
// replaces the stored ones, in one transaction: needed after an official
// region table changes the urban/rural class of addresses, or after a bulk
// load that wrote no counters. It locks the counters and the changes not
// yet folded into them first, so batches applied meanwhile wait and then
// add their changes to the rebuilt counters; the scan sees every batch
// that committed before it. It answers the schema's request for a
// recount (recountMeta) too.
func (s *Store) RebuildCounters(ctx context.Context) (persons int64, err error) {
	persons, _, err = s.rebuildCounters(ctx, false)
	return persons, err
}

// recountMeta names the hub_meta row by which migration
// 0009_counters_recount asks for the counters to be recounted: the schema
// holds persons older than its counters.
const recountMeta = "counters_recount"

// staleMeta names the hub_meta row by which migration
// 0011_counting_rules marks counters an earlier release counted by rules
// since changed; a rebuild deletes it.
const staleMeta = "counters_stale"

// warnIfStale warns, at every open until a rebuild, when the counters were
// counted by an earlier release's rules: some counts may be off, and only
// 'pophub stats rebuild' (or the hub's automatic recount of a store older
// than the counters) scans every person to set them right.
func (s *Store) warnIfStale(ctx context.Context) error {
	var reason string
	err := s.pool.QueryRow(ctx, "SELECT value FROM hub_meta WHERE name = $1", staleMeta).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading whether the counters follow this release's rules: %w", err)
	}
	s.cfg.Logger.Warn("the statistics counters were counted by an earlier release's rules, and some counts may be off until "+
		"'pophub stats rebuild' is run once (batches wait while it scans every person)",
		"schema", s.cfg.Schema, "reason", reason)
	return nil
}

// recountIfAsked recounts the counters when the schema asks for it
// (recountMeta), before the store serves a count: a store upgraded from a
// release before the counters would otherwise count none of the persons
// it held. A schema that does not ask pays one look-up by key.
func (s *Store) recountIfAsked(ctx context.Context) error {
	var reason string
	err := s.pool.QueryRow(ctx, "SELECT value FROM hub_meta WHERE name = $1", recountMeta).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading whether the counters need a recount: %w", err)
	}
	log := s.cfg.Logger.With("schema", s.cfg.Schema)
	log.Warn("recounting the statistics counters from every person before serving: the schema holds persons its counters do not count (a store older than the counters)",
		"reason", reason)
	start := time.Now()
	persons, done, err := s.rebuildCounters(ctx, true)
	if err != nil {
		return fmt.Errorf("recounting the counters of a store older than them: %w", err)
	}
	if !done {
		log.Info("another instance has recounted the statistics counters")
		return nil
	}
	log.Info("recounted the statistics counters", "persons", persons, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// rebuildCounters is RebuildCounters. With onlyIfAsked it rebuilds only
// if the schema still asks for a recount once the counters are locked,
// and reports whether it did: of several instances opening an upgraded
// schema at once, the first recounts and the others find it done.
func (s *Store) rebuildCounters(ctx context.Context, onlyIfAsked bool) (persons int64, done bool, err error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return 0, false, fmt.Errorf("rebuilding counters: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// LOCK is taken before the transaction's snapshot, which the first
	// query after it fixes.
	// In the order the fold locks them (foldCounters).
	if _, err := tx.Exec(ctx, "LOCK TABLE stats_counter_deltas, stats_counters IN EXCLUSIVE MODE"); err != nil {
		return 0, false, fmt.Errorf("rebuilding counters: %w", err)
	}
	if onlyIfAsked {
		var asked bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM hub_meta WHERE name = $1)", recountMeta).Scan(&asked); err != nil {
			return 0, false, fmt.Errorf("rebuilding counters: %w", err)
		}
		if !asked {
			return 0, false, nil
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM stats_counter_deltas"); err != nil {
		return 0, false, fmt.Errorf("rebuilding counters: %w", err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM stats_counters"); err != nil {
		return 0, false, fmt.Errorf("rebuilding counters: %w", err)
	}
	// Pages of persons in key order: every query of the transaction sees
	// its one snapshot, and between pages the connection is free to write
	// the sums, which bounds the memory they take.
	acc := stats.Acc{}
	after := ""
	for {
		rows, err := tx.Query(ctx, "SELECT person_key, state FROM persons WHERE person_key > $1 AND version > 0 ORDER BY person_key LIMIT 10000", after)
		if err != nil {
			return 0, false, fmt.Errorf("rebuilding counters: %w", err)
		}
		n := 0
		for rows.Next() {
			var raw []byte
			if err := rows.Scan(&after, &raw); err != nil {
				rows.Close()
				return 0, false, fmt.Errorf("rebuilding counters: %w", err)
			}
			st, err := s.seal.openState(after, raw)
			if err != nil {
				rows.Close()
				return 0, false, fmt.Errorf("rebuilding counters: %w", err)
			}
			acc.Person(nil, st, s.cfg.Classify)
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, false, fmt.Errorf("rebuilding counters: %w", err)
		}
		persons += int64(n)
		if n == 0 || len(acc) >= flushCounters {
			if err := writeCountersChunked(ctx, tx, acc.Deltas()); err != nil {
				return 0, false, fmt.Errorf("rebuilding counters: %w", err)
			}
			acc = stats.Acc{}
		}
		if n == 0 {
			break
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM hub_meta WHERE name = ANY($1)", []string{recountMeta, staleMeta}); err != nil {
		return 0, false, fmt.Errorf("rebuilding counters: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("rebuilding counters: %w", err)
	}
	return persons, true, nil
}

// writeCountersChunked writes many deltas in statements of bounded size.
func writeCountersChunked(ctx context.Context, tx pgx.Tx, deltas []stats.Delta) error {
	for len(deltas) > 0 {
		n := min(len(deltas), 200_000)
		if err := writeCounters(ctx, tx, deltas[:n]); err != nil {
			return err
		}
		deltas = deltas[n:]
	}
	return nil
}
