package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrTransactionPooling is the error Open and OpenExisting return when the
// connection is pooled per transaction (PgBouncer's pool_mode =
// transaction or statement): the hub keeps state in its sessions (the
// advisory locks of migrations and of the relay lease, pgx's prepared
// statements), which such a pooler hands from one client to the next.
var ErrTransactionPooling = errors.New("postgres: the connection is pooled per transaction (PgBouncer's pool_mode = transaction or statement, or a similar pooler); " +
	"the hub keeps session state (advisory locks, prepared statements) and needs a direct connection or session pooling (pool_mode = session)")

// checkSearchPath is the pool's AfterConnect: it refuses a session whose
// search_path is not the hub's schema alone, unless the schema is already
// the one current_schema() resolves to. The hub names the schema in the
// search_path startup parameter and writes unqualified statements; a
// connection pooler that drops that parameter (PgBouncer with
// ignore_startup_parameters = search_path) would otherwise have the hub
// create and use its tables in the role's default schema, public, while
// it logs, and hashes into its store id, the schema it was given. The
// check runs before the schema exists, when current_schema() is null,
// hence search_path first.
func checkSearchPath(schema string) func(context.Context, *pgx.Conn) error {
	return func(ctx context.Context, conn *pgx.Conn) error {
		ss, err := readSession(ctx, conn)
		if err != nil {
			return err
		}
		if p, err := parseSearchPath(ss.path); err == nil && len(p) == 1 && p[0] == schema {
			return nil
		}
		if ss.current != nil && *ss.current == schema {
			return nil
		}
		return ss.wrongSchema(schema)
	}
}

// session is what a session says of its schema: its search_path, the
// schema that resolves to (nil while none of it exists), its role and
// database.
type session struct {
	path, role, db string
	current        *string
}

// readSession reads the session's schema settings, in the simple
// protocol (a pooler per transaction breaks prepared statements first).
func readSession(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (session, error) {
	var ss session
	err := q.QueryRow(ctx, "SELECT current_setting('search_path'), current_schema(), current_user, current_database()",
		pgx.QueryExecModeSimpleProtocol).Scan(&ss.path, &ss.current, &ss.role, &ss.db)
	if err != nil {
		return session{}, fmt.Errorf("postgres: reading the session's search_path: %w", err)
	}
	return ss, nil
}

// wrongSchema says that the session searches its path rather than the
// hub's schema, and what to do about it.
func (ss session) wrongSchema(schema string) error {
	return fmt.Errorf("postgres: the session's search_path is %q, not the hub's schema %q, so the hub would keep its tables elsewhere: "+
		"a connection pooler such as PgBouncer (ignore_startup_parameters = search_path) drops the search_path the hub sends when it connects; "+
		"connect directly, or through a pooler in session mode with the schema set on the role: ALTER ROLE %s IN DATABASE %s SET search_path = %s",
		ss.path, schema, pgx.Identifier{ss.role}.Sanitize(), pgx.Identifier{ss.db}.Sanitize(), pgx.Identifier{schema}.Sanitize())
}

// checkCurrentSchema is checkSearchPath once the schema exists: the
// schema the session's unqualified names resolve to must be the hub's.
func checkCurrentSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	ss, err := readSession(ctx, pool)
	if err != nil {
		return err
	}
	if ss.current == nil || *ss.current != schema {
		return ss.wrongSchema(schema)
	}
	return nil
}

// checkPooling refuses a connection pooled per transaction
// (ErrTransactionPooling). Two sessions of their own answer two
// different backends, each the same for as long as it lasts; a pooler
// per transaction gives a client whichever server connection is idle at
// each statement. So: the backend of a pool connection, then that of a
// second session inside a transaction, which holds its server
// connection, then the first's again. PgBouncer hands out the server
// connection used last (server_round_robin = 0, its default), so the
// second session gets the first's; with round robin the first gets
// another one if one is idle. A pooler that happens to give the first
// session the same server connection again is not caught. The probes use
// the simple protocol: prepared statements are what such a pooler breaks
// first (42P05, prepared statement already exists).
func checkPooling(ctx context.Context, pool *pgxpool.Pool) error {
	a, err := pool.Acquire(ctx)
	if err != nil {
		return connectFailed(pool, err)
	}
	defer a.Release()
	b, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return connectFailed(pool, err)
	}
	defer b.Close(context.WithoutCancel(ctx))
	pid := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) (int32, error) {
		var pid int32
		err := q.QueryRow(ctx, "SELECT pg_backend_pid()", pgx.QueryExecModeSimpleProtocol).Scan(&pid)
		return pid, err
	}
	first, err := pid(a)
	if err != nil {
		return fmt.Errorf("postgres: checking for transaction pooling: %w", err)
	}
	tx, err := b.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: checking for transaction pooling: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	other, err := pid(tx)
	if err != nil {
		return fmt.Errorf("postgres: checking for transaction pooling: %w", err)
	}
	again, err := pid(a)
	if err != nil {
		return fmt.Errorf("postgres: checking for transaction pooling: %w", err)
	}
	if other == first || again != first {
		return ErrTransactionPooling
	}
	return nil
}

// connectFailed wraps the error of a first connection. PgBouncer refuses a
// startup parameter it was not told to ignore, and the hub sends
// search_path (and application_name, which PgBouncer knows): the bare
// refusal does not say what to change.
func connectFailed(pool *pgxpool.Pool, err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "08P01" && strings.Contains(pg.Message, "unsupported startup parameter") {
		cc := pool.Config().ConnConfig
		return fmt.Errorf("connecting to PostgreSQL: %w: a connection pooler such as PgBouncer refuses the schema the hub sends as a startup parameter; "+
			"in session pooling, add search_path to its ignore_startup_parameters and set the schema on the role: ALTER ROLE %s IN DATABASE %s SET search_path = %s",
			err, pgx.Identifier{cc.User}.Sanitize(), pgx.Identifier{cc.Database}.Sanitize(), cc.RuntimeParams["search_path"])
	}
	return fmt.Errorf("connecting to PostgreSQL: %w", err)
}
