// Package pgmigrate applies a component's embedded SQL migrations to its
// PostgreSQL schema: the hub's store and the social-insurance consumer
// each keep theirs in the binary and apply them on start.
//
// A tiny runner rather than a migration library: the files are plain SQL
// applied forward only, and the one thing a library would add here, the
// lock that serialises instances starting at once, is one statement.
package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Apply applies the migrations of files (migrations/NNNN_name.sql, in
// name order) that the schema's schema_migrations table does not list
// yet, each in a transaction of its own together with its
// schema_migrations row, creating the schema and the table first if
// missing. The pool's search_path must name the schema. A session advisory
// lock named by lock and the schema serialises instances starting at
// once; the second finds everything applied. log (nil: discard) hears of
// each migration applied.
//
// A migration's statements wait at most lockTimeout for each lock (SET
// LOCAL lock_timeout), so that a migration queued behind a long reader
// holds up the table's other readers and writers that long at most; it is
// then tried again after a growing pause, logged at WARN with the lock
// and the sessions holding it, until ctx ends.
//
// When nothing is pending Apply only reads: it takes no lock and issues
// no DDL, so that a role without CREATE on the database or the schema (the
// owner of a schema a DBA created, or a role granted only DML on a schema
// another role migrated) gets past migrating, as does one on a read-only
// database (whose later start-up writes still refuse it). PostgreSQL checks CREATE before it looks whether an object exists, so
// even CREATE … IF NOT EXISTS needs it.
func Apply(ctx context.Context, pool *pgxpool.Pool, files fs.FS, schema, lock string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrating: listing migrations: %w", err)
	}
	sort.Strings(names)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrating: acquiring connection: %w", err)
	}
	defer conn.Release()
	st, err := readState(ctx, conn, schema)
	if err != nil {
		return err
	}
	if pending, err := st.pending(names, schema); err != nil || len(pending) == 0 {
		return err
	}

	lockKey := lock + ":" + schema
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lockKey); err != nil {
		return fmt.Errorf("migrating: taking lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", lockKey); err != nil {
			// A connection that cannot unlock is broken: drop it, which
			// releases the lock with its session.
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	// Another instance may have migrated while this one waited.
	if st, err = readState(ctx, conn, schema); err != nil {
		return err
	}
	pending, err := st.pending(names, schema)
	if err != nil || len(pending) == 0 {
		return err
	}
	if !st.schema {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("migrating: creating schema: %w", err)
		}
	}
	if !st.table {
		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("migrating: creating schema_migrations: %w", err)
		}
	}
	for _, name := range pending {
		version := versionOf(name)
		sql, err := fs.ReadFile(files, name)
		if err != nil {
			return fmt.Errorf("migrating: reading %s: %w", version, err)
		}
		if err := applyOne(ctx, pool, conn, version, string(sql), schema, log); err != nil {
			return fmt.Errorf("migrating %s: %w", version, err)
		}
		log.Info("applied migration", "version", version, "schema", schema)
	}
	return nil
}

// lockTimeout bounds each wait of a migration's statements for a lock. A
// statement that alters a table waits for ACCESS EXCLUSIVE behind every
// transaction reading it (pg_dump, a report, an audit export), and every
// later reader and writer of the table queues behind the migration: with
// no bound, one long reader stops everyone, and the starting instance
// hangs without a word. Bounded, the others are held back this long at
// most per attempt, and the migration is tried again (applyOne).
const lockTimeout = 2 * time.Second

// firstPause and maxPause bound the pause before a migration is tried
// again after it met lockTimeout; it doubles from one to the other, so
// that a long reader sees the queue behind the migration for a shrinking
// share of the time.
const (
	firstPause = 500 * time.Millisecond
	maxPause   = 15 * time.Second
)

// applyOne applies one migration in a transaction of its own together
// with its schema_migrations row, under lockTimeout. When a lock is not
// granted in time it is tried again after a pause, until ctx ends; each
// time it logs at WARN which lock it waited for and which sessions held
// it (pid, application name, when their transaction and query began), so
// that the DBA can see what keeps the start waiting.
func applyOne(ctx context.Context, pool *pgxpool.Pool, conn *pgxpool.Conn, version, sql, schema string, log *slog.Logger) error {
	pause := firstPause
	// last is the lock wait last seen: a start given up early in an
	// attempt, before its wait was looked at, names the one before.
	var last *lockWait
	for attempt := 1; ; attempt++ {
		waits := watchWaits(ctx, pool, conn.Conn().PgConn().PID())
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds())); err != nil {
				return fmt.Errorf("setting lock_timeout: %w", err)
			}
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("applying: %w", err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", version); err != nil {
				return fmt.Errorf("recording: %w", err)
			}
			return nil
		})
		w := waits()
		if err == nil {
			return nil
		}
		if w == nil {
			w = last
		}
		last = w
		var pg *pgconn.PgError
		timedOut := errors.As(err, &pg) && pg.Code == "55P03"
		if !timedOut {
			if ctx.Err() != nil && w != nil {
				return fmt.Errorf("%s: %w", w, err)
			}
			return err
		}
		d := pause/2 + rand.N(pause/2+1)
		log.Warn("a migration waits for a lock another session holds; trying again",
			"version", version, "schema", schema, "attempt", attempt, "waited", lockTimeout.String(),
			"lock", w.lock(), "held_by", w.heldBy(), "retry_in", d.Round(time.Millisecond).String())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			what := "a lock"
			if w != nil {
				what = w.String()
			}
			return fmt.Errorf("%s; gave up after %d waits of %s: %w", what, attempt, lockTimeout, context.Cause(ctx))
		case <-t.C:
		}
		pause = min(2*pause, maxPause)
	}
}

// lockWait is a lock a session waits for and the sessions it waits on.
type lockWait struct {
	relation, mode string // relation (or lock type) and the mode asked for
	holders        []holder
}

// holder is a session that holds, or waits ahead for, a lock another
// waits for. Its query is left out: it may hold personal data.
type holder struct {
	pid                   int32
	app, backend, state   string
	xactStart, queryStart *time.Time
}

func (h holder) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d", h.pid)
	if h.app != "" {
		fmt.Fprintf(&b, " application_name %q", h.app)
	}
	if h.backend != "" && h.backend != "client backend" {
		fmt.Fprintf(&b, " (%s)", h.backend)
	}
	if h.state != "" {
		fmt.Fprintf(&b, " %s", h.state)
	}
	if h.xactStart != nil {
		fmt.Fprintf(&b, ", transaction since %s", h.xactStart.UTC().Format(time.RFC3339))
	}
	if h.queryStart != nil {
		fmt.Fprintf(&b, ", query since %s", h.queryStart.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// lock names the lock waited for, "unknown" when none was seen.
func (w *lockWait) lock() string {
	if w == nil {
		return "unknown"
	}
	return w.mode + " on " + w.relation
}

// heldBy lists the sessions waited on, "unknown" when none was seen.
func (w *lockWait) heldBy() string {
	if w == nil || len(w.holders) == 0 {
		return "unknown"
	}
	s := make([]string, len(w.holders))
	for i, h := range w.holders {
		s[i] = h.String()
	}
	return strings.Join(s, "; ")
}

func (w *lockWait) String() string {
	return "waiting for " + w.lock() + " held by " + w.heldBy()
}

// waitSQL lists the locks session $1 waits for, with the sessions it
// waits on (pg_blocking_pids: those holding the lock and those queued
// ahead for it). A role that may not see another role's sessions
// (pg_read_all_stats) still sees their pid and application name.
const waitSQL = `SELECT coalesce(w.relation::regclass::text, w.locktype), w.mode, b.pid,
		coalesce(a.application_name, ''), coalesce(a.backend_type, ''), coalesce(a.state, ''), a.xact_start, a.query_start
	FROM pg_locks w
	CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid)
	LEFT JOIN pg_stat_activity a ON a.pid = b.pid
	WHERE w.pid = $1 AND NOT w.granted
	ORDER BY b.pid`

// watchWaits looks, on another of pool's connections, every half
// lockTimeout until the returned function is called, at what session pid
// waits for: once lock_timeout has cancelled the wait, it is too late to
// ask. The function stops the watch and returns the last wait seen, nil
// if none was. A look that fails is passed over: the watch only words
// the log.
func watchWaits(ctx context.Context, pool *pgxpool.Pool, pid uint32) func() *lockWait {
	wctx, stop := context.WithCancel(ctx)
	seen := make(chan *lockWait, 1)
	go func() {
		var last *lockWait
		defer func() { seen <- last }()
		tick := time.NewTicker(lockTimeout / 2)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			if w := lookAtWait(wctx, pool, pid); w != nil {
				last = w
			}
		}
	}()
	return func() *lockWait {
		stop()
		return <-seen
	}
}

// lookAtWait is the lock session pid waits for now, nil if none (or the
// look failed).
func lookAtWait(ctx context.Context, pool *pgxpool.Pool, pid uint32) *lockWait {
	rows, err := pool.Query(ctx, waitSQL, int32(pid))
	if err != nil {
		return nil
	}
	defer rows.Close()
	var w *lockWait
	for rows.Next() {
		var rel, mode string
		var h holder
		if err := rows.Scan(&rel, &mode, &h.pid, &h.app, &h.backend, &h.state, &h.xactStart, &h.queryStart); err != nil {
			return nil
		}
		if w == nil {
			w = &lockWait{relation: rel, mode: mode}
		}
		if rel == w.relation && mode == w.mode {
			w.holders = append(w.holders, h)
		}
	}
	if rows.Err() != nil {
		return nil
	}
	return w
}

// state is what a schema holds of the migrations' bookkeeping.
type state struct {
	schema, table bool     // the schema and its schema_migrations exist
	applied       []string // the versions schema_migrations lists
}

// readState looks the schema and its schema_migrations table up, with
// reads only.
func readState(ctx context.Context, conn *pgxpool.Conn, schema string) (state, error) {
	var st state
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), to_regclass($2) IS NOT NULL",
		schema, pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&st.schema, &st.table)
	if err != nil {
		return state{}, fmt.Errorf("migrating: looking for schema %s: %w", schema, err)
	}
	if !st.table {
		return st, nil
	}
	rows, err := conn.Query(ctx, "SELECT version FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize())
	if err != nil {
		return state{}, fmt.Errorf("migrating: reading applied versions: %w", err)
	}
	if st.applied, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return state{}, fmt.Errorf("migrating: reading applied versions: %w", err)
	}
	return st, nil
}

// pending is the migrations of names (sorted) not applied yet, or an
// error when the schema lists one that names does not hold.
func (st state) pending(names []string, schema string) ([]string, error) {
	// A schema a newer binary has migrated may hold tables this one does
	// not know and lack ones it writes: running would fail every batch,
	// for ever, behind a healthy start.
	known := make(map[string]bool, len(names))
	for _, name := range names {
		known[versionOf(name)] = true
	}
	done := make(map[string]bool, len(st.applied))
	var newer []string
	for _, v := range st.applied {
		done[v] = true
		if !known[v] {
			newer = append(newer, v)
		}
	}
	if len(newer) > 0 {
		sort.Strings(newer)
		return nil, fmt.Errorf("migrating: schema %s has migrations this binary does not know (%s): a newer version migrated it; run that version or a later one",
			schema, strings.Join(newer, ", "))
	}
	var pending []string
	for _, name := range names {
		if !done[versionOf(name)] {
			pending = append(pending, name)
		}
	}
	return pending, nil
}

// versionOf is the version of the migration file name.
func versionOf(name string) string {
	return strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
}
