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

// flushCounters bounds the counters held in memory: a person adds about
// fifteen, so millions of persons would otherwise hold gigabytes.
const flushCounters = 2_000_000

// NewLoader starts a bulk load.
func (s *Store) NewLoader() *Loader { return &Loader{s: s, acc: stats.Acc{}} }

// Load merges and writes one chunk of events in one transaction.
func (l *Loader) Load(ctx context.Context, chunk []hub.Input) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	out := merge.Batch(nil, chunk, now)
	cols := l.s.encodePersons(out.States, newWriteID())
	if cols.err != nil {
		return cols.err
	}
	for _, st := range out.States {
		l.acc.Person(nil, st, l.s.cfg.Classify)
	}
	rows := make([][]any, len(cols.keys))
	for i := range cols.keys {
		rows[i] = []any{cols.keys[i], cols.versions[i], cols.addresses[i], cols.households[i], cols.statuses[i], cols.states[i], now, cols.writeID}
	}
	err := pgx.BeginFunc(ctx, l.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"persons"}, []string{"person_key", "version", "address_code", "household_key", "status", "state", "updated_at", "write_id"},
			pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("writing persons: %w", err)
		}
		return l.s.writeHistory(ctx, tx, out.History)
	})
	if err != nil {
		return fmt.Errorf("loading chunk: %w", err)
	}
	l.n += len(chunk)
	if len(l.acc) >= flushCounters {
		return l.flush(ctx)
	}
	return nil
}

// Close writes the counters not written yet.
func (l *Loader) Close(ctx context.Context) error { return l.flush(ctx) }

// flush adds the counters summed so far to the table and starts afresh.
func (l *Loader) flush(ctx context.Context) error {
	deltas := l.acc.Deltas()
	l.acc = stats.Acc{}
	err := pgx.BeginFunc(ctx, l.s.pool, func(tx pgx.Tx) error { return writeCountersChunked(ctx, tx, deltas) })
	if err != nil {
		return fmt.Errorf("writing counters: %w", err)
	}
	return nil
}
