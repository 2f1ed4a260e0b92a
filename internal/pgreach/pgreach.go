// Package pgreach tells PostgreSQL being out of reach from PostgreSQL
// refusing a statement: the first passes (a restart, a failover, a cut
// link) and is worth waiting out or answering 503; the second does not.
// The hub's store and the social-insurance subscriber both ask.
package pgreach

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Lost reports whether err says that no connection to PostgreSQL could be
// had (refused, reset or timed out while connecting, the pool unable to
// open one, the server out of connections), that the server was not
// serving (shutting down, crashed, starting up), or that the connection
// was lost during the statement, rather than an error the server answered
// the statement with. An error after ctx ended is the caller giving up,
// never an outage.
func Lost(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is a connection exception, class 53 insufficient
		// resources (too many connections); 57P01 to 57P03 a server
		// shutting down, crashed or starting up.
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "53") || c == "57P01" || c == "57P02" || c == "57P03"
	}
	var netErr net.Error
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &netErr)
}
