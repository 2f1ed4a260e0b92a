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
// needed. The pool's search_path must name the schema. A session advisory
// lock named by lock and the schema serialises instances starting at
// once; the second finds everything applied. log (nil: discard) hears of
// each migration applied.
func Apply(ctx context.Context, pool *pgxpool.Pool, files fs.FS, schema, lock string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrating: acquiring connection: %w", err)
	}
	defer conn.Release()
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

	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("migrating: creating schema: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrating: creating schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrating: reading applied versions: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("migrating: reading applied versions: %w", err)
	}
	done := make(map[string]bool, len(applied))
	for _, v := range applied {
		done[v] = true
	}

	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrating: listing migrations: %w", err)
	}
	sort.Strings(names)
	// A schema a newer binary has migrated may hold tables this one does
	// not know and lack ones it writes: running would fail every batch,
	// for ever, behind a healthy start.
	known := make(map[string]bool, len(names))
	for _, name := range names {
		known[strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")] = true
	}
	var newer []string
	for _, v := range applied {
		if !known[v] {
			newer = append(newer, v)
		}
	}
	if len(newer) > 0 {
		sort.Strings(newer)
		return fmt.Errorf("migrating: schema %s has migrations this binary does not know (%s): a newer version migrated it; run that version or a later one",
			schema, strings.Join(newer, ", "))
	}
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		if done[version] {
			continue
		}
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
