package postgres

import (
	"context"
	"fmt"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// KnownEvents implements hub.Store with one query: the keys go in as two
// arrays, and each is probed on the history_idempotency unique index
// (source, event_id). WITH ORDINALITY keeps the answer in the keys' order.
func (s *Store) KnownEvents(ctx context.Context, keys []schemas.EventKey) ([]bool, error) {
	if err := hub.CheckKnownEvents(keys); err != nil {
		return nil, err
	}
	out := make([]bool, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	sources := make([]string, len(keys))
	ids := make([]string, len(keys))
	for i, k := range keys {
		sources[i], ids[i] = string(k.Source), k.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT k.ord, EXISTS (SELECT 1 FROM history h WHERE h.source = k.source AND h.event_id = k.event_id)
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(source, event_id, ord)`, sources, ids)
	if err != nil {
		return nil, readFailed(ctx, "looking up event keys", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var ord int64
		var known bool
		if err := rows.Scan(&ord, &known); err != nil {
			return nil, readFailed(ctx, "looking up event keys", err)
		}
		if ord < 1 || ord > int64(len(out)) {
			return nil, fmt.Errorf("looking up event keys: ordinal %d out of range", ord)
		}
		out[ord-1] = known
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, readFailed(ctx, "looking up event keys", err)
	}
	if n != len(keys) {
		return nil, fmt.Errorf("looking up event keys: %d answers for %d keys", n, len(keys))
	}
	return out, nil
}
