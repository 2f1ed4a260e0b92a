package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pophub/pophub/hub"
)

// readFailed wraps the error of a read with what the read was doing. When
// PostgreSQL could not be reached or the connection broke under the read,
// it also wraps hub.ErrUnavailable, which the API answers as 503 with
// Retry-After: the same read succeeds once the store is back.
func readFailed(ctx context.Context, doing string, err error) error {
	if connectionLost(ctx, err) {
		return fmt.Errorf("%s: %w: %w", doing, hub.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// connectionLost reports whether err says that no connection to PostgreSQL
// could be had (refused, reset or timed out while connecting, the pool unable
// to open one) or that the connection was lost during the statement,
// rather than an error the server answered the statement with. An error
// after ctx ended is the caller giving up, never an outage.
func connectionLost(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is a connection exception; 57P01 to 57P03 a server
		// shutting down, crashed or starting up.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var netErr net.Error
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &netErr)
}
