package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Person implements hub.Store. A state this process holds as the stored
// row's write stored it is not read again.
func (s *Store) Person(ctx context.Context, id citizenid.ID) (hub.Record, error) {
	key := s.personKey(id)
	cachedVersion, cachedWrite := int64(-1), int64(0)
	var hit *merge.State
	if s.cache != nil {
		if e, ok := s.cache.get(key); ok {
			cachedVersion, cachedWrite, hit = e.version, e.writeID, e.state
		}
	}
	var raw []byte
	err := s.pool.QueryRow(ctx, "SELECT CASE WHEN version = $2 AND write_id = $3 THEN NULL ELSE state END FROM persons WHERE person_key = $1",
		key, cachedVersion, cachedWrite).Scan(&raw)
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

// History implements hub.Store. Event times are returned in China
// Standard Time (schemas.CST), the zone schemas.Decode gives them and the
// golden record's provenance keeps: timestamptz holds the instant but not
// the offset. Applied-at times are returned in UTC.
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
		c.Time, c.AppliedAt = c.Time.In(schemas.CST()), c.AppliedAt.UTC()
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

// Persons implements hub.Store.
//
// A walk of everyone goes in person key order on the primary key, the
// order memdb walks in (for the keys a store makes, digits and X or
// lower-case hex, the database's collation and byte order agree); its
// cursor is the last key returned, and nothing else: a caller may walk
// everyone without the right to read hukou addresses, and a cursor
// holding the last person's address would hand it over.
//
// A walk of a region goes in (address code, key) order on the
// persons_address index, so that a page reads only the region's rows; its
// cursor is the last address code and key returned, "address|key": for a
// caller who may read the hukou section (hub/api asks for this order
// only then).
//
// A walk of a region in key order (q.KeyOrder), for a caller who may not
// read addresses, has the last key returned for its cursor, as a walk of
// everyone has (personsInRegionByKey).
//
// A household (q.Household) is read in key order from the
// persons_household index (personsInHousehold), its cursor the last key.
//
// A cursor of another kind of walk, or of any other shape (a key that is
// not of the shape this store's keys have, keyShape), wraps
// hub.ErrInvalid.
func (s *Store) Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	if q.Region == "" {
		return s.personsByKey(ctx, q)
	}
	if q.Household != "" {
		return s.personsInHousehold(ctx, q)
	}
	if q.KeyOrder {
		return s.personsInRegionByKey(ctx, q)
	}
	var afterAddr, afterKey string
	if q.After != "" {
		var ok bool
		afterAddr, afterKey, ok = strings.Cut(q.After, "|")
		if !ok || !s.regionCursor(afterAddr, afterKey) {
			return nil, "", errCursor
		}
	}
	// '~' sorts after every digit: [region, region~) is the prefix range.
	rows, err := s.pool.Query(ctx, `SELECT address_code, person_key, state FROM persons
		WHERE address_code COLLATE "C" >= $1 AND address_code COLLATE "C" < $2
		  AND (address_code COLLATE "C", person_key COLLATE "C") > ($3, $4)
		  AND version > 0
		ORDER BY address_code COLLATE "C", person_key COLLATE "C" LIMIT $5`,
		q.Region, q.Region+"~", afterAddr, afterKey, q.Limit)
	if err != nil {
		return nil, "", readFailed(ctx, "listing persons", err)
	}
	out, lastAddr, lastKey, err := s.scanPersons(ctx, rows, true)
	if err != nil || len(out) < q.Limit {
		return out, "", err
	}
	return out, lastAddr + "|" + lastKey, nil
}

// personsByKey walks everyone, those without a hukou registration
// included, in key order.
func (s *Store) personsByKey(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	if q.After != "" && !s.keyShape(q.After) {
		return nil, "", errCursor
	}
	rows, err := s.pool.Query(ctx, `SELECT person_key, state FROM persons
		WHERE person_key > $1 AND version > 0
		ORDER BY person_key LIMIT $2`, q.After, q.Limit)
	if err != nil {
		return nil, "", readFailed(ctx, "listing persons", err)
	}
	out, _, lastKey, err := s.scanPersons(ctx, rows, false)
	if err != nil || len(out) < q.Limit {
		return out, "", err
	}
	return out, lastKey, nil
}

// personsInRegionByKey walks the persons of a region in key order (byte
// order, as memdb walks), the region only a filter. A region within one
// county (six digits or more, as every such walk the API serves is) reads
// a page's keys in order from persons_county_key (migration 0008), then
// only those rows from the table: about 5 ms a page of 1,000 whatever the
// county's size. A wider region (a province or city, which the API walks
// in address order) sorts its range of persons_address by key, a page
// reading the region's index entries from the cursor on.
//
// The scan needs no version > 0 of its own: a placeholder row (version 0,
// see lockSQL) has no address yet, so is in no region.
func (s *Store) personsInRegionByKey(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	if q.After != "" && !s.keyShape(q.After) {
		return nil, "", errCursor
	}
	// '~' sorts after every digit: [region, region~) is the prefix range.
	inRegion := `address_code COLLATE "C" >= $1 AND address_code COLLATE "C" < $2`
	args := []any{q.Region, q.Region + "~", q.After, q.Limit}
	if len(q.Region) >= 6 {
		// The index's expression, written as it is, for the planner.
		inRegion += ` AND substr(address_code, 1, 6) COLLATE "C" = $5`
		args = append(args, q.Region[:6])
	}
	rows, err := s.pool.Query(ctx, `WITH page AS (
			SELECT person_key FROM persons
			WHERE `+inRegion+`
			  AND person_key COLLATE "C" > $3
			ORDER BY person_key COLLATE "C" LIMIT $4)
		SELECT p.person_key, p.state FROM page JOIN persons p USING (person_key)
		WHERE p.version > 0
		ORDER BY p.person_key COLLATE "C"`, args...)
	if err != nil {
		return nil, "", readFailed(ctx, "listing persons", err)
	}
	out, _, lastKey, err := s.scanPersons(ctx, rows, false)
	if err != nil || len(out) < q.Limit {
		return out, "", err
	}
	return out, lastKey, nil
}

// scanPersons reads the rows of a walk: (address_code,) person_key, state.
// It returns the records and the last address code and key read.
func (s *Store) scanPersons(ctx context.Context, rows pgx.Rows, withAddr bool) (out []hub.Record, lastAddr, lastKey string, err error) {
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		dest := []any{&lastKey, &raw}
		if withAddr {
			dest = []any{&lastAddr, &lastKey, &raw}
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, "", "", readFailed(ctx, "listing persons", err)
		}
		st, err := s.seal.openState(lastKey, raw)
		if err != nil {
			return nil, "", "", fmt.Errorf("listing persons: %w", err)
		}
		out = append(out, st.Record())
	}
	if err := rows.Err(); err != nil {
		return nil, "", "", readFailed(ctx, "listing persons", err)
	}
	return out, lastAddr, lastKey, nil
}

// errCursor refuses a cursor this store did not make for the walk asked.
// It does not repeat the cursor, which is the caller's to know.
var errCursor = fmt.Errorf("listing persons: the cursor was not made by this store for this walk: %w", hub.ErrInvalid)

// regionCursor reports whether addr and key have the shapes a region
// walk's cursor has: an address code (up to 12 digits) and a person key.
func (s *Store) regionCursor(addr, key string) bool {
	if len(addr) > 12 || !s.keyShape(key) {
		return false
	}
	for i := 0; i < len(addr); i++ {
		if addr[i] < '0' || addr[i] > '9' {
			return false
		}
	}
	return true
}

// keyShape reports whether k has the shape of the keys this store makes
// (sealer.key). Anything else, invalid UTF-8 included, which PostgreSQL
// would refuse, is no key of this store, and so no cursor it made.
func (s *Store) keyShape(k string) bool { return sealing.IsPersonKey(k, s.seal.k != nil) }
