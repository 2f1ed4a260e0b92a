package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas/citizenid"
)

// baselineBatch holds the rows one batch of the hub writes.
type baselineBatch struct {
	keys       []string
	versions   []int64
	addrs      []string
	households []string
	statuses   []string
	states     [][]byte
	history    [][]any
}

// Baseline measures what PostgreSQL itself sustains for the writes the hub
// makes, without the hub: the events are merged beforehand, untimed, into
// exactly the golden rows and history rows the hub would write for each
// batch of batchSize; then each batch is written as one INSERT … ON
// CONFLICT DO UPDATE of its golden rows plus a COPY of its history rows, in
// one transaction with synchronous commit on. It returns events per
// second. The tables are created in schema, which the caller drops.
func Baseline(ctx context.Context, url, schema string, events []hub.Input, batchSize int) (float64, error) {
	s, err := Open(ctx, Config{URL: url, Schema: schema})
	if err != nil {
		return 0, err
	}
	defer s.Close()

	states := map[citizenid.ID]*merge.State{}
	now := time.Now().UTC()
	var batches []baselineBatch
	for i := 0; i < len(events); i += batchSize {
		out := merge.Batch(states, events[i:min(i+batchSize, len(events))], now)
		var b baselineBatch
		for id, st := range out.States {
			raw, err := encodeState(st)
			if err != nil {
				return 0, err
			}
			states[id] = st
			b.keys = append(b.keys, s.personKey(id))
			b.versions = append(b.versions, st.Version())
			b.addrs = append(b.addrs, st.AddressCode())
			b.households = append(b.households, s.seal.householdKey(st.AddressCode(), householdOf(st)))
			b.statuses = append(b.statuses, st.Status())
			b.states = append(b.states, raw)
		}
		for _, h := range out.History {
			c := h.Change
			b.history = append(b.history, []any{s.personKey(h.CitizenID), c.Version, string(c.Source), c.EventID, string(c.Type),
				c.Time, c.AppliedAt, c.Sections, []byte(c.Data)})
		}
		batches = append(batches, b)
	}

	start := time.Now()
	for _, b := range batches {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return 0, fmt.Errorf("baseline: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO persons (person_key, version, address_code, household_key, status, state, updated_at)
			SELECT k, v, a, h, s, st, $7 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[]) AS u(k, v, a, h, s, st)
			ON CONFLICT (person_key) DO UPDATE SET version = excluded.version, address_code = excluded.address_code,
				household_key = excluded.household_key, status = excluded.status, state = excluded.state, updated_at = excluded.updated_at`,
			b.keys, b.versions, b.addrs, b.households, b.statuses, b.states, now)
		if err == nil {
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"history"},
				[]string{"person_key", "version", "source", "event_id", "type", "time", "applied_at", "sections", "data"}, pgx.CopyFromRows(b.history))
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			tx.Rollback(ctx)
			return 0, fmt.Errorf("baseline batch: %w", err)
		}
	}
	return float64(len(events)) / time.Since(start).Seconds(), nil
}
