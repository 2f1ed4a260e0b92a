package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/internal/pgreach"
)

// readFailed wraps the error of a read with what the read was doing. When
// PostgreSQL could not be reached or the connection broke under the read,
// it also wraps hub.ErrUnavailable, which the API answers as 503 with
// Retry-After: the same read succeeds once the store is back.
func readFailed(ctx context.Context, doing string, err error) error {
	if pgreach.Lost(ctx, err) {
		return fmt.Errorf("%s: %w: %w", doing, hub.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// ErrReadOnly marks the errors of writes the database refused because it
// is read-only (SQLSTATE 25006): a standby, or default_transaction_read_only
// on for the role, the database or the server. It comes with
// hub.ErrUnavailable: the events are fine, and the same write succeeds
// once the database accepts writes again, so ingest retries it rather
// than setting the batch aside.
var ErrReadOnly = errors.New("the database refuses writes (read-only)")

// writeFailed is readFailed for a write: a refusal by a read-only database
// also wraps hub.ErrUnavailable, with ErrReadOnly.
func writeFailed(ctx context.Context, doing string, err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "25006" {
		return fmt.Errorf("%s: %w: %w: %w", doing, hub.ErrUnavailable, ErrReadOnly, err)
	}
	return readFailed(ctx, doing, err)
}
