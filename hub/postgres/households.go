package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
)

// householdsMeta names the hub_meta row by which migration
// 0012_household_lookup asks for the household_key of rows written
// before it to be filled in; indexHouseholdsIfAsked deletes it.
const householdsMeta = "households_unindexed"

// householdKey is what persons.household_key holds for a person whose
// hukou is at addr in household hh: hh in clear, or, when the store
// seals personal data, its keyed hash (bound to the address, so that the
// same id at two addresses gives two keys); "" without a household, which
// keeps the row out of the persons_household index.
func (z sealer) householdKey(addr, hh string) string {
	if addr == "" || hh == "" {
		return ""
	}
	if z.k == nil {
		return hh
	}
	return z.k.PersonKey("household/" + addr + "/" + hh)
}

// householdOf is the household id of st's hukou ("" without one), as the
// golden record shows it (Hukou.HouseholdID).
func householdOf(st *merge.State) string {
	if st.AddressCode() == "" || st.Household.V == nil {
		return ""
	}
	return *st.Household.V
}

// personsInHousehold is Persons for q.Household: the members of one
// household in key order, from persons_household.
func (s *Store) personsInHousehold(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	if q.After != "" && !s.keyShape(q.After) {
		return nil, "", errCursor
	}
	if err := s.checkHouseholdsIndexed(ctx); err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, `SELECT person_key, state FROM persons
		WHERE address_code COLLATE "C" = $1 AND household_key COLLATE "C" = $2 AND household_key <> ''
		  AND person_key COLLATE "C" > $3 AND version > 0
		ORDER BY person_key COLLATE "C" LIMIT $4`,
		q.Region, s.seal.householdKey(q.Region, q.Household), q.After, q.Limit)
	if err != nil {
		return nil, "", readFailed(ctx, "listing a household", err)
	}
	out, _, lastKey, err := s.scanPersons(ctx, rows, false)
	if err != nil || len(out) < q.Limit {
		return out, "", err
	}
	return out, lastKey, nil
}

// errHouseholdsUnindexed refuses a household lookup while rows written
// before the household index lack their key: it would miss members.
var errHouseholdsUnindexed = fmt.Errorf("listing a household: the household index of persons written before it is not built yet "+
	"(a hub of this release builds it when it opens the schema): %w", hub.ErrUnavailable)

// checkHouseholdsIndexed fails while the schema still asks for the
// household index to be built (householdsMeta): a store opened with
// OpenExisting, or one whose build failed, on a schema no hub has
// finished it on. Once it is built, no lookup asks again.
func (s *Store) checkHouseholdsIndexed(ctx context.Context) error {
	if s.householdsIndexed.Load() {
		return nil
	}
	var asked bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM hub_meta WHERE name = $1)", householdsMeta).Scan(&asked); err != nil {
		return readFailed(ctx, "reading whether the household index is built", err)
	}
	if asked {
		return errHouseholdsUnindexed
	}
	s.householdsIndexed.Store(true)
	return nil
}

// indexHouseholdsIfAsked fills in household_key for the rows written
// before migration 0012 when the schema asks for it (householdsMeta),
// before the store serves a lookup: state may be sealed, so only the
// store can read the household from it. It walks the persons in key
// order, a page per transaction, and sets a row's key only if its
// version is still the one read: a batch applied meanwhile, by this
// release, wrote the key with its state. Instances opening the schema
// together all walk it, to the same result; the last one deletes the
// row. A schema that does not ask pays one look-up by key.
func (s *Store) indexHouseholdsIfAsked(ctx context.Context) error {
	var reason string
	err := s.pool.QueryRow(ctx, "SELECT value FROM hub_meta WHERE name = $1", householdsMeta).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		s.householdsIndexed.Store(true)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading whether the household index needs building: %w", err)
	}
	log := s.cfg.Logger.With("schema", s.cfg.Schema)
	log.Warn("indexing the households of the persons written before the household index, before serving", "reason", reason)
	start := time.Now()
	var persons int64
	after := ""
	for {
		n, last, err := s.indexHouseholdsPage(ctx, after)
		if err != nil {
			return fmt.Errorf("indexing households of persons written before the index: %w", err)
		}
		persons += int64(n)
		if n == 0 {
			break
		}
		after = last
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM hub_meta WHERE name = $1", householdsMeta); err != nil {
		return fmt.Errorf("recording the household index built: %w", err)
	}
	s.householdsIndexed.Store(true)
	log.Info("indexed the households", "persons", persons, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// indexHouseholdsPage sets household_key of up to 1,000 persons after
// key after, and returns how many it read and the last key.
func (s *Store) indexHouseholdsPage(ctx context.Context, after string) (n int, last string, err error) {
	rows, err := s.pool.Query(ctx, `SELECT person_key, version, state FROM persons
		WHERE person_key > $1 AND version > 0 ORDER BY person_key LIMIT 1000`, after)
	if err != nil {
		return 0, "", err
	}
	var keys, households []string
	var versions []int64
	for rows.Next() {
		var v int64
		var raw []byte
		if err := rows.Scan(&last, &v, &raw); err != nil {
			rows.Close()
			return 0, "", err
		}
		st, err := s.seal.openState(last, raw)
		if err != nil {
			rows.Close()
			return 0, "", err
		}
		keys, versions = append(keys, last), append(versions, v)
		households = append(households, s.seal.householdKey(st.AddressCode(), householdOf(st)))
	}
	if err := rows.Err(); err != nil {
		return 0, "", err
	}
	if len(keys) == 0 {
		return 0, "", nil
	}
	_, err = s.pool.Exec(ctx, `UPDATE persons p SET household_key = u.h
		FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(k, v, h)
		WHERE p.person_key = u.k AND p.version = u.v AND p.household_key <> u.h`, keys, versions, households)
	if err != nil {
		return 0, "", err
	}
	return len(keys), last, nil
}
