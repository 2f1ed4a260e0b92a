package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNoStore is what OpenExisting returns, wrapped, for a schema that holds
// no hub store: most often a mistyped schema name or database URL.
var ErrNoStore = errors.New("no hub store")

// OpenExisting opens a schema that Open has created and migrated, for the
// tools that check or maintain a store while the hub owns it ('stats
// verify', 'stats rebuild', 'keys rotate'). Unlike Open it creates
// nothing, applies no migration and records no sealing mode: a tool
// pointed at the wrong schema would otherwise make a new, empty store,
// report success on it, and fix the empty schema's sealing mode to the
// tool's keys before the hub ever opened it. A schema without the hub's
// tables is ErrNoStore; one that lacks migrations of this binary, or has
// ones it does not know, is refused too.
func OpenExisting(ctx context.Context, cfg Config) (*Store, error) { return open(ctx, cfg, false) }

// checkExisting reports whether schema holds a hub store migrated exactly
// as far as this binary's migrations go.
func checkExisting(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	var db string
	var found bool
	table := pgx.Identifier{schema, "schema_migrations"}.Sanitize()
	if err := pool.QueryRow(ctx, "SELECT current_database(), to_regclass($1) IS NOT NULL", table).Scan(&db, &found); err != nil {
		return fmt.Errorf("looking for the store: %w", err)
	}
	if !found {
		return fmt.Errorf("%w in schema %q of database %q", ErrNoStore, schema, db)
	}
	rows, err := pool.Query(ctx, "SELECT version FROM "+table)
	if err != nil {
		return fmt.Errorf("reading applied migrations: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("reading applied migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("listing migrations: %w", err)
	}
	var known []string
	for _, name := range names {
		known = append(known, strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql"))
	}
	var missing, newer []string
	for _, v := range known {
		if !slices.Contains(applied, v) {
			missing = append(missing, v)
		}
	}
	for _, v := range applied {
		if !slices.Contains(known, v) {
			newer = append(newer, v)
		}
	}
	slices.Sort(missing)
	slices.Sort(newer)
	switch {
	case len(applied) == 0:
		return fmt.Errorf("%w in schema %q of database %q (no migration applied)", ErrNoStore, schema, db)
	case len(newer) > 0:
		return fmt.Errorf("schema %q has migrations this binary does not know (%s): a newer version migrated it; run that version or a later one",
			schema, strings.Join(newer, ", "))
	case len(missing) > 0:
		return fmt.Errorf("schema %q lacks migrations of this version (%s): start the hub of this version on it once, which applies them",
			schema, strings.Join(missing, ", "))
	}
	return nil
}
