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
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
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
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return fmt.Errorf("applying: %w", err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", version); err != nil {
				return fmt.Errorf("recording: %w", err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("migrating %s: %w", version, err)
		}
		log.Info("applied migration", "version", version, "schema", schema)
	}
	return nil
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
