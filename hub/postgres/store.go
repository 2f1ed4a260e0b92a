// Package postgres is the production golden-record store on PostgreSQL
// (pgx v5).
//
// Writes are batch-first: one transaction per batch locks the touched
// persons' rows in key order, skips events whose (source, id) is already in
// history, merges in memory (hub/merge), then writes the persons with one
// statement and the history and outbox rows with COPY. Several hub
// instances may apply events of the same person at once: the row locks
// serialise them, a race to create the same new person is detected and the
// batch retried, and the unique idempotency key catches an event applied
// twice concurrently.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config configures a Store.
type Config struct {
	// URL is a PostgreSQL connection string (required).
	URL string
	// Schema holds the hub's tables (default "public"); created if missing.
	Schema string
	// MaxConns bounds the pool (default 8).
	MaxConns int32
	Logger   *slog.Logger
}

// Store implements hub.Store on PostgreSQL.
type Store struct {
	cfg       Config
	pool      *pgxpool.Pool
	closeOnce sync.Once
}

var _ hub.Store = (*Store)(nil)

// Open connects, creates the schema if needed and applies the embedded
// migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("postgres: a connection URL is required")
	}
	if cfg.Schema == "" {
		cfg.Schema = "public"
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing PostgreSQL URL: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.RuntimeParams["search_path"] = cfg.Schema
	pc.ConnConfig.RuntimeParams["application_name"] = "pophub"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	s := &Store{cfg: cfg, pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// migrate applies the embedded migrations not yet applied, under an
// advisory lock so that instances starting together do not race.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrating: acquiring connection: %w", err)
	}
	defer conn.Release()
	lockKey := "pophub-migrate:" + s.cfg.Schema
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lockKey); err != nil {
		return fmt.Errorf("migrating: taking lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", lockKey)

	schema := pgx.Identifier{s.cfg.Schema}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return fmt.Errorf("migrating: creating schema: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrating: creating schema_migrations: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrating: listing migrations: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		version := strings.TrimSuffix(strings.TrimPrefix(f, "migrations/"), ".sql")
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", version).Scan(&done); err != nil {
			return fmt.Errorf("migrating: checking %s: %w", version, err)
		}
		if done {
			continue
		}
		sql, err := migrations.ReadFile(f)
		if err != nil {
			return fmt.Errorf("migrating: reading %s: %w", version, err)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("migrating: %w", err)
		}
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("migrating: applying %s: %w", version, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", version); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("migrating: recording %s: %w", version, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("migrating: committing %s: %w", version, err)
		}
		s.cfg.Logger.Info("applied migration", "version", version, "schema", s.cfg.Schema)
	}
	return nil
}

// personKey derives the storage key of a person: the one place to change
// when records are keyed by a keyed hash of the ID.
func personKey(id citizenid.ID) string { return string(id) }

// errRetry marks a batch that lost a race with another instance.
var errRetry = errors.New("concurrent update, retrying batch")

// Apply implements hub.Store.
func (s *Store) Apply(ctx context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	const attempts = 8
	var err error
	// Most batches hold only new events, so the first attempt skips the
	// idempotency query and lets the unique key on history catch a repeat;
	// then the batch is retried with the query.
	checkKeys := false
	for attempt := 1; attempt <= attempts; attempt++ {
		var res hub.ApplyResult
		res, err = s.applyOnce(ctx, batch, checkKeys)
		if err == nil {
			return res, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return hub.ApplyResult{}, err
		}
		if isUniqueViolation(err) {
			checkKeys = true
			if attempt == 1 {
				continue // a repeat, not a race: retry at once
			}
		}
		// Jittered backoff so that racing instances do not collide again.
		d := time.Duration(attempt*attempt)*5*time.Millisecond + time.Duration(rand.IntN(10))*time.Millisecond
		select {
		case <-ctx.Done():
			return hub.ApplyResult{}, ctx.Err()
		case <-time.After(d):
		}
	}
	return hub.ApplyResult{}, fmt.Errorf("applying batch after retries: %w: %w", hub.ErrConflict, err)
}

func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505"
}

func retryable(err error) bool {
	if errors.Is(err, errRetry) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "40001", "40P01", "23505": // serialization failure, deadlock, unique violation
			return true
		}
	}
	return false
}

func (s *Store) applyOnce(ctx context.Context, batch []hub.Input, checkKeys bool) (res hub.ApplyResult, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()

	// Lock and load the touched persons, in key order.
	keys := make([]string, 0, len(batch))
	ids := make(map[string]citizenid.ID, len(batch))
	for _, in := range batch {
		k := personKey(in.Event.Subject)
		if _, ok := ids[k]; !ok {
			ids[k] = in.Event.Subject
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	loaded := make(map[citizenid.ID]*merge.State, len(keys))
	rows, err := tx.Query(ctx, "SELECT person_key, state FROM persons WHERE person_key = ANY($1) ORDER BY person_key FOR UPDATE", keys)
	if err != nil {
		return res, fmt.Errorf("loading persons: %w", err)
	}
	for rows.Next() {
		var key string
		var raw []byte
		if err := rows.Scan(&key, &raw); err != nil {
			rows.Close()
			return res, fmt.Errorf("loading persons: %w", err)
		}
		st, err := merge.Unmarshal(raw)
		if err != nil {
			rows.Close()
			return res, fmt.Errorf("loading person state: %w", err)
		}
		loaded[ids[key]] = st
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("loading persons: %w", err)
	}

	// Leave out events applied in earlier batches.
	fresh := batch
	if checkKeys {
		if fresh, res.Duplicates, err = applied(ctx, tx, batch); err != nil {
			return res, err
		}
	}
	if len(fresh) == 0 {
		return res, tx.Commit(ctx)
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	out := merge.Batch(loaded, fresh, now)
	if err := writePersons(ctx, tx, loaded, out.States, now); err != nil {
		return res, err
	}
	if err := writeHistory(ctx, tx, out.History); err != nil {
		return res, err
	}
	if err := writeOutbox(ctx, tx, out.Outbox); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("committing batch: %w", err)
	}
	res.Applied = out.Applied
	res.Duplicates += out.Duplicates
	res.Notifications = len(out.Outbox)
	return res, nil
}

// applied returns the events of batch not yet in history, and how many
// were.
func applied(ctx context.Context, tx pgx.Tx, batch []hub.Input) ([]hub.Input, int, error) {
	sources := make([]string, len(batch))
	eventIDs := make([]string, len(batch))
	for i, in := range batch {
		sources[i], eventIDs[i] = string(in.Event.Source), in.Event.ID
	}
	rows, err := tx.Query(ctx, `SELECT h.source, h.event_id FROM history h
		JOIN unnest($1::text[], $2::text[]) AS b(source, event_id) ON h.source = b.source AND h.event_id = b.event_id`, sources, eventIDs)
	if err != nil {
		return nil, 0, fmt.Errorf("checking idempotency keys: %w", err)
	}
	seen := map[schemas.EventKey]bool{}
	for rows.Next() {
		var src, id string
		if err := rows.Scan(&src, &id); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("checking idempotency keys: %w", err)
		}
		seen[schemas.EventKey{Source: schemas.Source(src), ID: id}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("checking idempotency keys: %w", err)
	}
	if len(seen) == 0 {
		return batch, 0, nil
	}
	fresh := make([]hub.Input, 0, len(batch))
	dups := 0
	for _, in := range batch {
		if seen[in.Event.Key()] {
			dups++
			continue
		}
		fresh = append(fresh, in)
	}
	return fresh, dups, nil
}

func writePersons(ctx context.Context, tx pgx.Tx, loaded, states map[citizenid.ID]*merge.State, now time.Time) error {
	var newKeys, updKeys []string
	var newVer, updVer []int64
	var newAddr, updAddr, newStatus, updStatus []string
	var newState, updState [][]byte
	for id, st := range states {
		raw, err := merge.Marshal(st)
		if err != nil {
			return err
		}
		if loaded[id] == nil {
			newKeys, newVer, newAddr, newStatus, newState = append(newKeys, personKey(id)), append(newVer, st.Version()),
				append(newAddr, st.AddressCode()), append(newStatus, st.Status()), append(newState, raw)
		} else {
			updKeys, updVer, updAddr, updStatus, updState = append(updKeys, personKey(id)), append(updVer, st.Version()),
				append(updAddr, st.AddressCode()), append(updStatus, st.Status()), append(updState, raw)
		}
	}
	if len(newKeys) > 0 {
		tag, err := tx.Exec(ctx, `INSERT INTO persons (person_key, version, address_code, status, state, updated_at)
			SELECT k, v, a, s, st, $6 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bytea[]) AS u(k, v, a, s, st)
			ON CONFLICT (person_key) DO NOTHING`, newKeys, newVer, newAddr, newStatus, newState, now)
		if err != nil {
			return fmt.Errorf("inserting persons: %w", err)
		}
		if tag.RowsAffected() != int64(len(newKeys)) {
			// Another instance created one of these persons meanwhile.
			return errRetry
		}
	}
	if len(updKeys) > 0 {
		_, err := tx.Exec(ctx, `UPDATE persons p SET version = u.v, address_code = u.a, status = u.s, state = u.st, updated_at = $6
			FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bytea[]) AS u(k, v, a, s, st)
			WHERE p.person_key = u.k`, updKeys, updVer, updAddr, updStatus, updState, now)
		if err != nil {
			return fmt.Errorf("updating persons: %w", err)
		}
	}
	return nil
}

func writeHistory(ctx context.Context, tx pgx.Tx, history []merge.Entry) error {
	rows := make([][]any, len(history))
	for i, h := range history {
		c := h.Change
		data := []byte(c.Data)
		if data == nil {
			data = []byte{}
		}
		rows[i] = []any{personKey(h.CitizenID), c.Version, string(c.Source), c.EventID, string(c.Type), c.Time, c.AppliedAt, c.Sections, data}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"history"},
		[]string{"person_key", "version", "source", "event_id", "type", "time", "applied_at", "sections", "data"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("writing history: %w", err)
	}
	return nil
}

func writeOutbox(ctx context.Context, tx pgx.Tx, entries []hub.OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	rows := make([][]any, len(entries))
	for i, e := range entries {
		var trace []byte
		if len(e.Trace) > 0 {
			trace, _ = json.Marshal(e.Trace)
		}
		rows[i] = []any{e.Subject, e.MsgID, e.Body, trace, e.CreatedAt}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"subject", "msg_id", "body", "trace", "created_at"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("writing outbox: %w", err)
	}
	return nil
}

// Person implements hub.Store.
func (s *Store) Person(ctx context.Context, id citizenid.ID) (hub.Record, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx, "SELECT state FROM persons WHERE person_key = $1", personKey(id)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return hub.Record{}, fmt.Errorf("person %v: %w", id, hub.ErrNotFound)
	}
	if err != nil {
		return hub.Record{}, fmt.Errorf("reading person: %w", err)
	}
	st, err := merge.Unmarshal(raw)
	if err != nil {
		return hub.Record{}, err
	}
	return st.Record(), nil
}

// History implements hub.Store.
func (s *Store) History(ctx context.Context, id citizenid.ID) ([]hub.Change, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, event_id, source, type, time, applied_at, sections, data
		FROM history WHERE person_key = $1 ORDER BY version`, personKey(id))
	if err != nil {
		return nil, fmt.Errorf("reading history: %w", err)
	}
	defer rows.Close()
	var out []hub.Change
	for rows.Next() {
		var c hub.Change
		var src, typ string
		var data []byte
		if err := rows.Scan(&c.Version, &c.EventID, &src, &typ, &c.Time, &c.AppliedAt, &c.Sections, &data); err != nil {
			return nil, fmt.Errorf("reading history: %w", err)
		}
		c.Source, c.Type = schemas.Source(src), schemas.Type(typ)
		if len(data) > 0 {
			c.Data = data
		}
		if c.Sections == nil {
			c.Sections = []string{}
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading history: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("person %v: %w", id, hub.ErrNotFound)
	}
	return out, nil
}

// PendingOutbox implements hub.Store.
func (s *Store) PendingOutbox(ctx context.Context, after int64, limit int) ([]hub.OutboxEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, subject, msg_id, body, trace, created_at FROM outbox
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	defer rows.Close()
	var out []hub.OutboxEntry
	for rows.Next() {
		var e hub.OutboxEntry
		var trace []byte
		if err := rows.Scan(&e.Seq, &e.Subject, &e.MsgID, &e.Body, &trace, &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("reading outbox: %w", err)
		}
		if len(trace) > 0 {
			_ = json.Unmarshal(trace, &e.Trace)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	return out, nil
}

// MarkPublished implements hub.Store. Published entries are deleted: a
// delete only marks the row, where an update would write a new version
// of it and of its index entries.
func (s *Store) MarkPublished(ctx context.Context, seqs []int64) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM outbox WHERE seq = ANY($1)", seqs); err != nil {
		return fmt.Errorf("marking outbox entries published: %w", err)
	}
	return nil
}

// Stats implements hub.Store.
func (s *Store) Stats(ctx context.Context) (hub.StoreStats, error) {
	var st hub.StoreStats
	err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM persons), (SELECT count(*) FROM history),
		(SELECT count(*) FROM outbox)`).Scan(&st.Persons, &st.Changes, &st.OutboxPending)
	if err != nil {
		return st, fmt.Errorf("reading store totals: %w", err)
	}
	return st, nil
}

// Ping implements hub.Store.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the connection pool, for tools and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool. Safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}
