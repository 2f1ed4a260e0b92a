package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Person implements hub.Store. A state this process holds at the stored
// version is not read again.
func (s *Store) Person(ctx context.Context, id citizenid.ID) (hub.Record, error) {
	key := s.personKey(id)
	cachedVersion := int64(-1)
	var hit *merge.State
	if s.cache != nil {
		if e, ok := s.cache.get(key); ok {
			cachedVersion, hit = e.version, e.state
		}
	}
	var raw []byte
	err := s.pool.QueryRow(ctx, "SELECT CASE WHEN version = $2 THEN NULL ELSE state END FROM persons WHERE person_key = $1",
		key, cachedVersion).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return hub.Record{}, fmt.Errorf("person %v: %w", id, hub.ErrNotFound)
	}
	if err != nil {
		return hub.Record{}, readFailed(ctx, "reading person", err)
	}
	if raw == nil {
		return hit.Record(), nil
	}
	st, err := s.seal.openState(key, raw)
	if err != nil {
		return hub.Record{}, fmt.Errorf("reading person: %w", err)
	}
	return st.Record(), nil
}

// History implements hub.Store. Times are returned in UTC.
func (s *Store) History(ctx context.Context, id citizenid.ID) ([]hub.Change, error) {
	key := s.personKey(id)
	rows, err := s.pool.Query(ctx, `SELECT version, event_id, source, type, time, applied_at, sections, data
		FROM history WHERE person_key = $1 ORDER BY version`, key)
	if err != nil {
		return nil, readFailed(ctx, "reading history", err)
	}
	defer rows.Close()
	var out []hub.Change
	for rows.Next() {
		var c hub.Change
		var src, typ string
		var data []byte
		if err := rows.Scan(&c.Version, &c.EventID, &src, &typ, &c.Time, &c.AppliedAt, &c.Sections, &data); err != nil {
			return nil, readFailed(ctx, "reading history", err)
		}
		c.Source, c.Type = schemas.Source(src), schemas.Type(typ)
		c.Time, c.AppliedAt = c.Time.UTC(), c.AppliedAt.UTC()
		if data, err = s.seal.openHistory(key, c.Version, data); err != nil {
			return nil, fmt.Errorf("reading history: %w", err)
		}
		if len(data) > 0 {
			c.Data = data
		}
		if c.Sections == nil {
			c.Sections = []string{}
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, readFailed(ctx, "reading history", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("person %v: %w", id, hub.ErrNotFound)
	}
	return out, nil
}

// Stats implements hub.Store. It counts rows, which takes time on large
// tables: it is meant for status pages and reconciliation, not for every
// request.
func (s *Store) Stats(ctx context.Context) (hub.StoreStats, error) {
	var st hub.StoreStats
	err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM persons), (SELECT count(*) FROM history),
		(SELECT coalesce(sum(size - cardinality(published)), 0) FROM outbox_batches)`).Scan(&st.Persons, &st.Changes, &st.OutboxPending)
	if err != nil {
		return st, readFailed(ctx, "reading store totals", err)
	}
	return st, nil
}

// Persons implements hub.Store. It walks persons in (address code, key)
// order on the persons_address index; the cursor is the last address code
// and key returned.
func (s *Store) Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	var afterAddr, afterKey string
	if q.After != "" {
		var ok bool
		afterAddr, afterKey, ok = strings.Cut(q.After, "|")
		if !ok {
			return nil, "", fmt.Errorf("cursor %q was not made by this store: %w", q.After, hub.ErrInvalid)
		}
	}
	// '~' sorts after every digit: [region, region~) is the prefix range.
	// An empty region walks everyone, from the persons without an address.
	lower, upper := q.Region, q.Region+"~"
	if q.Region == "" {
		upper = "~"
	}
	rows, err := s.pool.Query(ctx, `SELECT address_code, person_key, state FROM persons
		WHERE address_code COLLATE "C" >= $1 AND address_code COLLATE "C" < $2
		  AND (address_code COLLATE "C", person_key COLLATE "C") > ($3, $4)
		  AND version > 0
		ORDER BY address_code COLLATE "C", person_key COLLATE "C" LIMIT $5`,
		lower, upper, afterAddr, afterKey, q.Limit)
	if err != nil {
		return nil, "", readFailed(ctx, "listing persons", err)
	}
	defer rows.Close()
	var out []hub.Record
	var lastAddr, lastKey string
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&lastAddr, &lastKey, &raw); err != nil {
			return nil, "", readFailed(ctx, "listing persons", err)
		}
		st, err := s.seal.openState(lastKey, raw)
		if err != nil {
			return nil, "", fmt.Errorf("listing persons: %w", err)
		}
		out = append(out, st.Record())
	}
	if err := rows.Err(); err != nil {
		return nil, "", readFailed(ctx, "listing persons", err)
	}
	if len(out) < q.Limit {
		return out, "", nil
	}
	return out, lastAddr + "|" + lastKey, nil
}
