package memdb

import (
	"context"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// KnownEvents implements hub.Store: a lookup per key in the set of
// applied events' keys, as of one committed batch.
func (s *Store) KnownEvents(ctx context.Context, keys []schemas.EventKey) ([]bool, error) {
	if err := hub.CheckKnownEvents(keys); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.events.has(keys), nil
}
