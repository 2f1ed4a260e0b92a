package memdb

import (
	"context"
	"fmt"
	"time"
)

// OldestPendingOutbox reports when the oldest entry not yet marked
// published was created, the zero time when none is: the first entry of
// the first outbox row, since marking takes entries out of their row and
// deletes a row left empty. The relay reads it at every metrics scrape
// (notify.OutboxAge).
func (s *Store) OldestPendingOutbox(ctx context.Context) (time.Time, error) {
	raw, err := s.db.Txn(false).First("outbox", "id")
	if err != nil {
		return time.Time{}, fmt.Errorf("reading outbox: %w", err)
	}
	if raw == nil || len(raw.(*outboxRow).Entries) == 0 {
		return time.Time{}, nil
	}
	return raw.(*outboxRow).Entries[0].CreatedAt, nil
}
