package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/stats"
)

// Loader builds a store's first population in bulk: a city's records
// exported from the old system, or a benchmark's millions. It writes what
// Apply would write for the same events — golden records, history and
// counters, the same rows — with COPY instead of row locks and upserts,
// and raises no notifications (an initial load announces nothing). Every
// chunk must hold all events of persons the store does not hold yet; the
// counters are summed in memory and written by Close. Not safe for
// concurrent use; nothing else may write to the store meanwhile.
type Loader struct {
	s   *Store
	acc stats.Acc
	n   int
}

// NewLoader starts a bulk load.
func (s *Store) NewLoader() *Loader { return &Loader{s: s, acc: stats.Acc{}} }

// Load merges and writes one chunk of events in one transaction.
func (l *Loader) Load(ctx context.Context, chunk []hub.Input) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	out := merge.Batch(nil, chunk, now)
	cols := encodePersons(out.States)
	if cols.err != nil {
		return cols.err
	}
	for _, st := range out.States {
		l.acc.Person(nil, st, l.s.cfg.Classify)
	}
	rows := make([][]any, len(cols.keys))
	for i := range cols.keys {
		rows[i] = []any{cols.keys[i], cols.versions[i], cols.addresses[i], cols.statuses[i], cols.states[i], now}
	}
	err := pgx.BeginFunc(ctx, l.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"persons"}, []string{"person_key", "version", "address_code", "status", "state", "updated_at"},
			pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("writing persons: %w", err)
		}
		return writeHistory(ctx, tx, out.History)
	})
	if err != nil {
		return fmt.Errorf("loading chunk: %w", err)
	}
	l.n += len(chunk)
	return nil
}

// Close writes the counters of everything loaded.
func (l *Loader) Close(ctx context.Context) error {
	deltas := l.acc.Deltas()
	rows := make([][]any, len(deltas))
	for i, d := range deltas {
		rows[i] = []any{d.Region, string(d.Class), d.Bucket, d.N}
	}
	err := pgx.BeginFunc(ctx, l.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE load_counters (region text, class text, bucket text, n bigint) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"load_counters"}, []string{"region", "class", "bucket", "n"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO stats_counters (region, class, bucket, n)
			SELECT region, class::"char", bucket, n FROM load_counters
			ON CONFLICT (region, class, bucket) DO UPDATE SET n = stats_counters.n + excluded.n`)
		return err
	})
	if err != nil {
		return fmt.Errorf("writing counters: %w", err)
	}
	return nil
}
