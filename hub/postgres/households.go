package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
)

// householdsMeta names the hub_meta row by which migration
// 0012_household_lookup asks for the household_key of rows written
// before it to be filled in; the walk that fills them in keeps its
// progress in it (householdsProgress) and deletes it once done
// (indexHouseholdsInBackground).
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
	"(a hub of this release builds it in the background once it has opened the schema, and logs \"indexed the households\"): %w", hub.ErrUnavailable)

// checkHouseholdsIndexed fails while the schema still asks for the
// household index to be built (householdsMeta): while a hub walks the
// persons written before it, or before any hub of this release has
// finished that walk. Once it is built, no lookup asks again.
func (s *Store) checkHouseholdsIndexed(ctx context.Context) error {
	if s.householdsIndexed.Load() {
		return nil
	}
	unindexed, err := s.householdsUnindexed(ctx)
	if err != nil {
		return readFailed(ctx, "listing a household", err)
	}
	if unindexed {
		return errHouseholdsUnindexed
	}
	return nil
}

// householdsUnindexed reports whether the schema still asks for the
// household index to be filled in (householdsMeta), and remembers once
// it does not. A schema that does not ask pays one look-up by key.
func (s *Store) householdsUnindexed(ctx context.Context) (bool, error) {
	var asked bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM hub_meta WHERE name = $1)", householdsMeta).Scan(&asked); err != nil {
		return false, fmt.Errorf("reading whether the household index needs building: %w", err)
	}
	if !asked {
		s.householdsIndexed.Store(true)
	}
	return asked, nil
}

// HouseholdIndexing reports whether the household index of persons
// written before it is still being built (householdsMeta), and how many
// of them the walks have indexed so far: for the status page (GET
// /v1/admin/status), since household lookups answer 503 meanwhile.
func (s *Store) HouseholdIndexing(ctx context.Context) (indexed int64, building bool, err error) {
	if s.householdsIndexed.Load() {
		return 0, false, nil
	}
	var value string
	err = s.pool.QueryRow(ctx, "SELECT value FROM hub_meta WHERE name = $1", householdsMeta).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		s.householdsIndexed.Store(true)
		return 0, false, nil
	}
	if err != nil {
		return 0, false, readFailed(ctx, "reading the household index walk's progress", err)
	}
	return parseHouseholdsProgress(value).Persons, true, nil
}

// indexingTuning tunes the walk that fills in the household index; its
// zero value is the production setting, and tests lower it.
type indexingTuning struct {
	// page is how many persons one transaction fills in (default 1,000).
	page int
	// retry is how long an instance waits before it tries the lease
	// again while another walks, or walks again after a failure; it also
	// reads then whether the other has finished (default 10 s).
	retry time.Duration
	// logEvery is how often the walk logs its progress (default 30 s).
	logEvery time.Duration
	// paged, if set, is called after each page committed, with the
	// persons this walk has read so far.
	paged func(ctx context.Context, persons int64)
	// standingBy, if set, is called each time another instance is found
	// holding the lease.
	standingBy func()
}

func (t *indexingTuning) setDefaults() {
	if t.page == 0 {
		t.page = 1000
	}
	if t.retry == 0 {
		t.retry = 10 * time.Second
	}
	if t.logEvery == 0 {
		t.logEvery = 30 * time.Second
	}
}

// householdsProgress is the value of the householdsMeta row once a walk
// has committed a page (until then it holds the migration's reason):
// where the next walk resumes, and how far it got.
type householdsProgress struct {
	// After is the last person_key filled in.
	After string `json:"after"`
	// Persons is how many persons the walks have read up to After.
	Persons int64 `json:"persons"`
}

// parseHouseholdsProgress reads the householdsMeta value; the reason
// migration 0012 wrote means no progress yet.
func parseHouseholdsProgress(value string) householdsProgress {
	var p householdsProgress
	if json.Unmarshal([]byte(value), &p) != nil {
		return householdsProgress{}
	}
	return p
}

// indexHouseholdsInBackground fills in household_key for the rows written
// before migration 0012, which the schema asks for (householdsMeta), in
// a goroutine that Close stops: state may be sealed, so only the store
// can read the household from it, and at 100–200 µs a person a province
// takes from minutes to hours, which Open must not wait for. Meanwhile
// ingest and the API serve; only household lookups are refused
// (checkHouseholdsIndexed).
//
// One instance walks at a time: the one holding the schema's household
// index lease, a session-level advisory lock on a session of its own, on
// which it also walks, so that no walk outlives its lease. The others
// try the lease again every indexingTuning.retry, and stop once the
// schema no longer asks. A walk saves where it got to with each page
// (householdsProgress), in the page's own transaction, so a walk cut
// short (Close, a crash, a lost connection) is resumed from there by
// whichever instance takes the lease next.
func (s *Store) indexHouseholdsInBackground() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopIndexing = cancel
	s.indexing.Add(1)
	go func() {
		defer s.indexing.Done()
		s.indexHouseholds(ctx)
	}()
}

// indexHouseholds is the goroutine of indexHouseholdsInBackground: it
// returns once the index is built, by this instance or another, or when
// ctx ends.
func (s *Store) indexHouseholds(ctx context.Context) {
	log := s.cfg.Logger.With("schema", s.cfg.Schema)
	lease := s.sessionLease("pophub-households:"+s.cfg.Schema, "the household index lease")
	for {
		built, err := s.indexHouseholdsUnderLease(ctx, lease, log)
		switch {
		case ctx.Err() != nil:
			return
		case built:
			s.householdsIndexed.Store(true)
			return
		case err != nil:
			log.Warn("indexing the households failed; household lookups answer 503 until it is done, trying again",
				"in", s.cfg.indexing.retry, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.indexing.retry):
		}
	}
}

// indexHouseholdsUnderLease walks the persons if it takes the lease, and
// reports whether the index is built: by this walk, or by another
// instance's.
func (s *Store) indexHouseholdsUnderLease(ctx context.Context, lease *RelayLease, log *slog.Logger) (built bool, err error) {
	held, err := lease.TryAcquire(ctx)
	if err != nil {
		return false, err
	}
	if !held {
		unindexed, err := s.householdsUnindexed(ctx)
		if err != nil || unindexed {
			if err == nil && s.cfg.indexing.standingBy != nil {
				s.cfg.indexing.standingBy()
			}
			return false, err
		}
		log.Info("another instance has indexed the households")
		return true, nil
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		lease.Release(rctx)
	}()
	return s.walkHouseholds(ctx, lease.conn, log)
}

// walkHouseholds fills in household_key page by page from where the last
// walk stopped, on conn, the lease's session, and then deletes the
// householdsMeta row. It names the schema in every statement: conn is
// not one of the pool's, whose search_path is checked.
func (s *Store) walkHouseholds(ctx context.Context, conn *pgx.Conn, log *slog.Logger) (built bool, err error) {
	meta := pgx.Identifier{s.cfg.Schema, "hub_meta"}.Sanitize()
	var value string
	err = conn.QueryRow(ctx, "SELECT value FROM "+meta+" WHERE name = $1", householdsMeta).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		log.Info("another instance has indexed the households")
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading where the household index walk stopped: %w", err)
	}
	p := parseHouseholdsProgress(value)
	total, _, err := s.tableRows(ctx, "persons")
	if err != nil {
		return false, fmt.Errorf("counting the persons to index the households of: %w", err)
	}
	log.Info("indexing the households of the persons written before the household index, in the background; household lookups answer 503 until it is done",
		"persons_done", p.Persons, "persons_about", total)
	start, logged := time.Now(), time.Now()
	var read int64
	for {
		n, err := s.indexHouseholdsPage(ctx, conn, &p)
		if err != nil {
			return false, fmt.Errorf("indexing the households after %d persons: %w", p.Persons, err)
		}
		if n == 0 {
			break
		}
		read += int64(n)
		if s.cfg.indexing.paged != nil {
			s.cfg.indexing.paged(ctx, read)
		}
		if time.Since(logged) >= s.cfg.indexing.logEvery {
			logged = time.Now()
			log.Info("indexing the households", "persons_done", p.Persons, "persons_about", total,
				"persons_per_second", int64(float64(read)/time.Since(start).Seconds()))
		}
	}
	if _, err := conn.Exec(ctx, "DELETE FROM "+meta+" WHERE name = $1", householdsMeta); err != nil {
		return false, fmt.Errorf("recording the household index built: %w", err)
	}
	log.Info("indexed the households", "persons", read, "resumed_after", p.Persons-read, "took", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// indexHouseholdsPage sets household_key of up to a page of persons after
// p.After and moves p past them, in one transaction that also saves p:
// a walk resumes after the last page committed. It sets a row's key only
// if its version is still the one read: a batch applied meanwhile wrote
// the key with its state. It returns how many persons it read.
func (s *Store) indexHouseholdsPage(ctx context.Context, conn *pgx.Conn, p *householdsProgress) (int, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	persons := pgx.Identifier{s.cfg.Schema, "persons"}.Sanitize()
	rows, err := tx.Query(ctx, `SELECT person_key, version, state FROM `+persons+`
		WHERE person_key > $1 AND version > 0 ORDER BY person_key LIMIT $2`, p.After, s.cfg.indexing.page)
	if err != nil {
		return 0, err
	}
	var keys, households []string
	var versions []int64
	var last string
	for rows.Next() {
		var v int64
		var raw []byte
		if err := rows.Scan(&last, &v, &raw); err != nil {
			rows.Close()
			return 0, err
		}
		st, err := s.seal.openState(last, raw)
		if err != nil {
			rows.Close()
			return 0, err
		}
		keys, versions = append(keys, last), append(versions, v)
		households = append(households, s.seal.householdKey(st.AddressCode(), householdOf(st)))
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(keys) == 0 {
		return 0, nil
	}
	_, err = tx.Exec(ctx, `UPDATE `+persons+` p SET household_key = u.h
		FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(k, v, h)
		WHERE p.person_key = u.k AND p.version = u.v AND p.household_key <> u.h`, keys, versions, households)
	if err != nil {
		return 0, err
	}
	next := householdsProgress{After: last, Persons: p.Persons + int64(len(keys))}
	value, err := json.Marshal(next)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "UPDATE "+pgx.Identifier{s.cfg.Schema, "hub_meta"}.Sanitize()+" SET value = $2 WHERE name = $1",
		householdsMeta, string(value)); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	*p = next
	return len(keys), nil
}
