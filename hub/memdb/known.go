package memdb

import (
	"context"
	"fmt"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// KnownEvents implements hub.Store: one lookup per key on the history
// table's unique (Source, EventID) index, in one read transaction (a
// consistent snapshot of committed batches).
func (s *Store) KnownEvents(ctx context.Context, keys []schemas.EventKey) ([]bool, error) {
	if err := hub.CheckKnownEvents(keys); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	txn := s.db.Txn(false)
	out := make([]bool, len(keys))
	for i, k := range keys {
		raw, err := txn.First("history", "id", string(k.Source), k.ID)
		if err != nil {
			return nil, fmt.Errorf("looking up event keys: %w", err)
		}
		out[i] = raw != nil
	}
	return out, nil
}
