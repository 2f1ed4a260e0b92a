package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/internal/par"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// maxAttempts bounds the tries of one batch that keeps conflicting.
const maxAttempts = 10

// Retries are the batch attempts made again since the store opened, by
// cause. Repeats are expected after a redelivery; the others mean that
// concurrent batches got in each other's way, and a deadlock costs its
// batch PostgreSQL's deadlock_timeout (one second by default).
type Retries struct {
	Repeats       int64 // a batch held events applied before
	Deadlocks     int64
	Serialization int64
	Unique        int64 // a unique key other than the idempotency key
}

type retryCounters struct {
	repeats, deadlocks, serialization, unique atomic.Int64
}

func (r *retryCounters) snapshot() Retries {
	return Retries{Repeats: r.repeats.Load(), Deadlocks: r.deadlocks.Load(), Serialization: r.serialization.Load(), Unique: r.unique.Load()}
}

// register exports the counts as pophub.store.retries{cause}.
func (r *retryCounters) register(m metric.Meter) (metric.Registration, error) {
	counter, err := m.Int64ObservableCounter("pophub.store.retries", metric.WithUnit("{batch}"),
		metric.WithDescription("Store batch attempts made again, by cause: repeat (the batch held events applied before), deadlock, serialization, unique."))
	if err != nil {
		return nil, fmt.Errorf("creating retry counter: %w", err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		n := r.snapshot()
		for _, c := range []struct {
			cause string
			n     int64
		}{{"repeat", n.Repeats}, {"deadlock", n.Deadlocks}, {"serialization", n.Serialization}, {"unique", n.Unique}} {
			o.ObserveInt64(counter, c.n, metric.WithAttributes(attribute.String("cause", c.cause)))
		}
		return nil
	}, counter)
	if err != nil {
		return nil, fmt.Errorf("registering retry counter: %w", err)
	}
	return reg, nil
}

// Retries returns the retry counts since the store opened.
func (s *Store) Retries() Retries { return s.retries.snapshot() }

// Apply implements hub.Store: one transaction per batch, retried as a whole
// when it holds an event applied before or hits a deadlock or
// serialization failure (see the package comment).
//
// A batch handed a turn (hub.WithTurn) waits for it before its transaction
// begins, so it holds no connection and no lock while it waits, and passes
// it once its attempt locked its persons and wrote their history rows: a
// later batch then locks the persons it shares with this one only after
// this one committed or rolled back, so one partition's records take
// effect in offset order. Not before the history rows: a repeat fails
// there, and the batch, tried again with the look-up, must not let the
// next one lock its persons in between. An Apply that fails before that
// (PostgreSQL unreachable, the connection lost while locking) keeps the
// turn for the caller's retry, as hub.Store asks. A batch retried after a
// conflict with another instance (unique, serialization, deadlock) or
// failing after it passed its turn may still be applied after the next
// one; only a second instance on the same partitions, or a failure between
// history and commit, causes that.
func (s *Store) Apply(ctx context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	if len(batch) == 0 {
		hub.PassTurn(ctx)
		return hub.ApplyResult{}, ctx.Err()
	}
	if err := hub.AwaitTurn(ctx); err != nil {
		return hub.ApplyResult{}, fmt.Errorf("applying batch: %w", err)
	}
	// Most batches hold only new events, so the first attempt skips the
	// idempotency look-up and lets the unique key on history catch a
	// repeat; the batch is then tried again with the look-up.
	checkKeys := false
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		var res hub.ApplyResult
		res, err = s.applyOnce(ctx, batch, checkKeys)
		if err == nil {
			hub.PassTurn(ctx) // a batch of repeats only never wrote history
			return res, nil
		}
		if ctx.Err() != nil {
			return hub.ApplyResult{}, fmt.Errorf("applying batch: %w", ctx.Err())
		}
		var pg *pgconn.PgError
		if !errors.As(err, &pg) {
			return hub.ApplyResult{}, writeFailed(ctx, "applying batch", err)
		}
		if sessionSetting[pg.Code] {
			// A session keeps the settings it started with: once the
			// DBA fixes the role's or database's, only new sessions
			// have them, and the pool keeps its sessions for up to an
			// hour. An attempt then connects anew, but at most every
			// resetEvery: a lock_timeout met while another holds a
			// lock is no setting to fix, and every session reading or
			// writing meanwhile would be closed at each retry.
			s.resetSessions()
		}
		switch {
		case pg.Code == "23505" && pg.ConstraintName == "history_idempotency" && !checkKeys:
			s.retries.repeats.Add(1)
			checkKeys = true
			continue // a repeat: again at once, leaving it out
		// Unique violation, serialization failure, deadlock: another
		// instance got in the way; try again after a jittered pause so
		// that the two do not collide again.
		case pg.Code == "23505":
			s.retries.unique.Add(1)
		case pg.Code == "40001":
			s.retries.serialization.Add(1)
		case pg.Code == "40P01":
			s.retries.deadlocks.Add(1)
		default:
			return hub.ApplyResult{}, writeFailed(ctx, "applying batch", err)
		}
		s.cfg.Logger.Debug("retrying batch", "attempt", attempt, "code", pg.Code, "constraint", pg.ConstraintName)
		d := time.Duration(attempt*attempt)*2*time.Millisecond + rand.N(5*time.Millisecond)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return hub.ApplyResult{}, fmt.Errorf("applying batch: %w", ctx.Err())
		case <-t.C:
		}
	}
	return hub.ApplyResult{}, fmt.Errorf("applying batch after %d attempts: %w: %w", maxAttempts, hub.ErrConflict, err)
}

// resetEvery bounds how often refused writes close the pool's sessions.
const resetEvery = 30 * time.Second

// resetSessions closes the pool's sessions, unless it did within
// resetEvery.
func (s *Store) resetSessions() {
	now := time.Now().UnixNano()
	last := s.sessionsReset.Load()
	if last != 0 && now-last < int64(resetEvery) || !s.sessionsReset.CompareAndSwap(last, now) {
		return
	}
	s.pool.Reset()
}

// sessionSetting holds the SQLSTATEs of writes refused for a setting a
// session takes from its role or database when it starts: read-only
// (25006, default_transaction_read_only), cancelled at statement_timeout
// (57014; ctx's own cancellations return before this check) or at
// lock_timeout (55P03).
var sessionSetting = map[string]bool{"25006": true, "57014": true, "55P03": true}

// lockSQL locks the row of every person of $1, inserting a placeholder
// row for each person not stored yet, all in key order and in one
// statement, and returns the keys it inserted. One global order is what
// keeps concurrent batches (and hub instances) from deadlocking: locking
// the stored persons first and inserting the new ones after would not be,
// since a person new to one batch may be stored and locked by another.
// ON CONFLICT … DO UPDATE … WHERE false locks a stored row without
// changing it; a key another transaction is inserting at the same moment
// waits for that transaction and is then locked like any stored row.
const lockSQL = `INSERT INTO persons (person_key, version, address_code, status, state, updated_at)
	SELECT k, 0, '', '', '\x'::bytea, now() FROM unnest($1::text[]) AS k ORDER BY k
	ON CONFLICT (person_key) DO UPDATE SET version = persons.version WHERE false
	RETURNING person_key`

// readSQL returns the state of each locked person, and the write that
// stored it, unless the caller holds it as that write stored it (version
// $2, -1 when not cached, and write_id $3). Run after lockSQL in its own
// statement, it sees what the transactions it waited for committed.
const readSQL = `SELECT p.person_key, CASE WHEN p.version = c.v AND p.write_id = c.w THEN NULL ELSE p.state END, p.write_id
	FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS c(k, v, w) JOIN persons p ON p.person_key = c.k`

func (s *Store) applyOnce(ctx context.Context, batch []hub.Input, checkKeys bool) (res hub.ApplyResult, err error) {
	// The touched persons, in key order, with what the cache holds.
	ids := make(map[string]citizenid.ID, len(batch))
	for i := range batch {
		id := batch[i].Event.Subject
		ids[s.personKey(id)] = id
	}
	keys := make([]string, 0, len(ids))
	for k := range ids {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()

	// The mode first: resetSealing takes its row before the tables, so
	// taking it in the same order cannot deadlock.
	if err := s.checkMode(ctx, tx); err != nil {
		return res, err
	}
	loaded, err := s.lockPersons(ctx, tx, keys, ids)
	if err != nil {
		return res, err
	}

	// Leave out events applied in earlier batches.
	fresh := batch
	var before map[schemas.EventKey]bool
	if checkKeys {
		if fresh, before, err = unapplied(ctx, tx, batch); err != nil {
			return res, err
		}
		res.Duplicates = len(batch) - len(fresh)
	}
	if len(fresh) == 0 {
		// Nothing to write; placeholders claimed for persons of repeated
		// events only must not stay.
		if err := tx.Rollback(ctx); err != nil {
			return res, fmt.Errorf("ending transaction: %w", err)
		}
		res.DuplicateAt = hub.DuplicateIndexes(batch, res.Duplicates, func(schemas.EventKey) bool { return true })
		return res, nil
	}

	now := time.Now().UTC().Truncate(time.Microsecond) // the precision PostgreSQL keeps
	out := merge.Batch(loaded, fresh, now)
	writeID := newWriteID()
	if len(out.States) < len(keys) {
		// Some persons had only repeated events: drop their placeholders.
		if err := s.dropUnused(ctx, tx, loaded, out.States); err != nil {
			return res, err
		}
	}

	// Encode the new states and derive the counter changes on other cores
	// while the history and outbox rows are copied.
	encoded := make(chan personColumns, 1)
	go func() {
		c := s.encodePersons(out.States, writeID)
		if !s.noCounters {
			c.counters = counterDeltas(loaded, out.States, s.cfg.Classify)
		}
		encoded <- c
	}()
	if err := s.writeHistory(ctx, tx, out.History); err != nil {
		<-encoded
		return res, err
	}
	// The persons are locked and the batch is no repeat: the next batch
	// may go ahead (see Apply).
	hub.PassTurn(ctx)
	if err := s.writeOutbox(ctx, tx, out.Outbox, writeID); err != nil {
		<-encoded
		return res, err
	}
	cols := <-encoded
	if cols.err != nil {
		return res, cols.err
	}
	if err := writePersons(ctx, tx, cols, now); err != nil {
		return res, err
	}
	if err := addCounterDeltas(ctx, tx, cols.counters); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		// The outcome may be unknown (the connection broke during the
		// commit): forget these persons so that they are read again.
		if s.cache != nil {
			for id := range out.States {
				s.cache.forget(s.personKey(id))
			}
		}
		return res, fmt.Errorf("committing batch: %w", err)
	}
	if s.cache != nil {
		for id, st := range out.States {
			s.cache.put(s.personKey(id), st, writeID)
		}
	}
	res.Applied = out.Applied
	res.Duplicates += out.Duplicates
	res.Notifications = len(out.Outbox)
	res.DuplicateAt = hub.DuplicateIndexes(batch, res.Duplicates, func(k schemas.EventKey) bool { return before[k] })
	return res, nil
}

// lockPersons locks the row of every person of keys (sorted), creating
// placeholder rows for persons not stored yet, and returns the current
// state of every stored person (nil for new ones): from the cache when it
// holds the locked version, decoded from the row otherwise.
func (s *Store) lockPersons(ctx context.Context, tx pgx.Tx, keys []string, ids map[string]citizenid.ID) (map[citizenid.ID]*merge.State, error) {
	rows, err := tx.Query(ctx, lockSQL, keys)
	if err != nil {
		return nil, fmt.Errorf("locking persons: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("locking persons: %w", err)
	}
	loaded := make(map[citizenid.ID]*merge.State, len(keys))
	for _, k := range inserted {
		loaded[ids[k]] = nil
	}
	if len(inserted) == len(keys) {
		return loaded, nil
	}
	stored := keys
	if len(inserted) > 0 {
		stored = make([]string, 0, len(keys)-len(inserted))
		for _, k := range keys {
			if _, ok := loaded[ids[k]]; !ok {
				stored = append(stored, k)
			}
		}
	}
	found, err := s.readLocked(ctx, tx, stored, ids, loaded)
	if err != nil {
		return nil, err
	}
	if found != len(stored) {
		// Persons are never deleted, and this transaction holds their rows.
		return nil, fmt.Errorf("locking persons: %d of %d locked persons not found", len(stored)-found, len(stored))
	}
	return loaded, nil
}

// readLocked adds the states of the locked persons of keys to loaded and
// returns how many it found.
func (s *Store) readLocked(ctx context.Context, tx pgx.Tx, keys []string, ids map[string]citizenid.ID, loaded map[citizenid.ID]*merge.State) (int, error) {
	versions, writeIDs := make([]int64, len(keys)), make([]int64, len(keys))
	hits := make(map[string]*merge.State, len(keys))
	for i, k := range keys {
		versions[i] = -1
		if s.cache != nil {
			if e, ok := s.cache.get(k); ok {
				versions[i], writeIDs[i] = e.version, e.writeID
				hits[k] = e.state
			}
		}
	}
	rows, err := tx.Query(ctx, readSQL, keys, versions, writeIDs)
	if err != nil {
		return 0, fmt.Errorf("reading persons: %w", err)
	}
	type miss struct {
		key     string
		raw     []byte
		writeID int64
	}
	var misses []miss
	found := 0
	for rows.Next() {
		var key string
		var raw []byte
		var writeID int64
		if err := rows.Scan(&key, &raw, &writeID); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reading persons: %w", err)
		}
		found++
		if raw == nil {
			loaded[ids[key]] = hits[key]
			continue
		}
		misses = append(misses, miss{key, raw, writeID})
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading persons: %w", err)
	}
	// Decode the states read, in parallel when there are many.
	states := make([]*merge.State, len(misses))
	err = par.Each(len(misses), 64, func(i int) error {
		st, err := s.seal.openState(misses[i].key, misses[i].raw)
		states[i] = st
		return err
	})
	if err != nil {
		return 0, err
	}
	for i, m := range misses {
		loaded[ids[m.key]] = states[i]
		if s.cache != nil {
			s.cache.put(m.key, states[i], m.writeID) // committed, as the locked row holds it
		}
	}
	return found, nil
}

// dropUnused deletes the placeholders of new persons the batch did not
// change after all (all their events were repeats).
func (s *Store) dropUnused(ctx context.Context, tx pgx.Tx, loaded, changed map[citizenid.ID]*merge.State) error {
	var unused []string
	for id, st := range loaded {
		if st == nil && changed[id] == nil {
			unused = append(unused, s.personKey(id))
		}
	}
	if len(unused) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "DELETE FROM persons WHERE person_key = ANY($1) AND version = 0", unused); err != nil {
		return fmt.Errorf("dropping placeholders: %w", err)
	}
	return nil
}

// unapplied returns the events of batch not yet in history, and the keys
// of those that were (nil when none was).
func unapplied(ctx context.Context, tx pgx.Tx, batch []hub.Input) ([]hub.Input, map[schemas.EventKey]bool, error) {
	sources := make([]string, len(batch))
	eventIDs := make([]string, len(batch))
	for i := range batch {
		sources[i], eventIDs[i] = string(batch[i].Event.Source), batch[i].Event.ID
	}
	rows, err := tx.Query(ctx, `SELECT h.source, h.event_id FROM unnest($1::text[], $2::text[]) AS b(source, event_id)
		JOIN history h ON h.source = b.source AND h.event_id = b.event_id`, sources, eventIDs)
	if err != nil {
		return nil, nil, fmt.Errorf("checking idempotency keys: %w", err)
	}
	seen := map[schemas.EventKey]bool{}
	for rows.Next() {
		var src, id string
		if err := rows.Scan(&src, &id); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("checking idempotency keys: %w", err)
		}
		seen[schemas.EventKey{Source: schemas.Source(src), ID: id}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("checking idempotency keys: %w", err)
	}
	if len(seen) == 0 {
		return batch, nil, nil
	}
	fresh := make([]hub.Input, 0, len(batch))
	for _, in := range batch {
		if !seen[in.Event.Key()] {
			fresh = append(fresh, in)
		}
	}
	return fresh, seen, nil
}

// newWriteID is the identity of a transaction's writes (migration
// 0013_write_ids): random, never 0, which rows written before it hold.
func newWriteID() int64 {
	for {
		if id := rand.Int64(); id != 0 {
			return id
		}
	}
}

// personColumns are the persons rows to write, as parallel arrays for
// unnest.
type personColumns struct {
	keys      []string
	versions  []int64
	addresses []string
	// households are the household_key values (sealer.householdKey).
	households []string
	statuses   []string
	states     [][]byte
	writeID    int64 // the transaction's (newWriteID)
	err        error
	counters   []stats.Delta // the batch's counter changes, sorted
}

// encodePersons encodes (and seals) the changed states, in parallel.
func (s *Store) encodePersons(states map[citizenid.ID]*merge.State, writeID int64) personColumns {
	c := personColumns{writeID: writeID}
	sts := make([]*merge.State, 0, len(states))
	for id, st := range states {
		sts = append(sts, st)
		c.keys = append(c.keys, s.personKey(id))
		c.versions = append(c.versions, st.Version())
		c.addresses = append(c.addresses, st.AddressCode())
		c.households = append(c.households, s.seal.householdKey(st.AddressCode(), householdOf(st)))
		c.statuses = append(c.statuses, st.Status())
	}
	c.states = make([][]byte, len(sts))
	c.err = par.Each(len(sts), 64, func(i int) error {
		raw, err := s.seal.sealState(c.keys[i], sts[i])
		c.states[i] = raw
		return err
	})
	return c
}

// writePersons writes the new states. Every row exists and is locked by
// this transaction (new persons have placeholders).
func writePersons(ctx context.Context, tx pgx.Tx, c personColumns, now time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE persons p SET version = u.v, address_code = u.a, household_key = u.h, status = u.s, state = u.st,
			updated_at = $7, write_id = $8
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[]) AS u(k, v, a, h, s, st)
		WHERE p.person_key = u.k`, c.keys, c.versions, c.addresses, c.households, c.statuses, c.states, now, c.writeID)
	if err != nil {
		return fmt.Errorf("writing persons: %w", err)
	}
	if tag.RowsAffected() != int64(len(c.keys)) {
		return fmt.Errorf("writing persons: %d of %d rows updated", tag.RowsAffected(), len(c.keys))
	}
	return nil
}

var historyColumns = []string{"person_key", "version", "source", "event_id", "type", "time", "applied_at", "sections", "data"}

func (s *Store) writeHistory(ctx context.Context, tx pgx.Tx, history []merge.Entry) error {
	rows := make([][]any, len(history))
	for i := range history {
		c := &history[i].Change
		data := []byte(c.Data)
		if data == nil {
			data = []byte{}
		}
		key := s.personKey(history[i].CitizenID)
		rows[i] = []any{key, c.Version, string(c.Source), c.EventID, string(c.Type), c.Time, c.AppliedAt, c.Sections, s.seal.sealHistory(key, c.Version, data)}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"history"}, historyColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("writing history: %w", err)
	}
	return nil
}
