package pgreach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestLost: the driver's ways of saying that no connection could
// be had or that it broke are outages; the server's answers to a statement,
// and anything after the caller's context ended, are not.
func TestLost(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"no connection could be opened", context.Background(), fmt.Errorf("acquiring: %w", &pgconn.ConnectError{}), true},
		{"connection closed by the server", context.Background(), fmt.Errorf("receive message failed: %w", io.ErrUnexpectedEOF), true},
		{"connection reset", context.Background(), &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{"connection refused", context.Background(), &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"connection closed by the driver", context.Background(), fmt.Errorf("querying: %w", pgconn.ErrConnClosed), true},
		{"server shutting down", context.Background(), &pgconn.PgError{Code: "57P01"}, true},
		{"connection failure", context.Background(), &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", context.Background(), &pgconn.PgError{Code: "53300"}, true},
		{"undefined table", context.Background(), &pgconn.PgError{Code: "42P01"}, false},
		{"serialization failure", context.Background(), &pgconn.PgError{Code: "40001"}, false},
		{"decoding a value", context.Background(), errors.New("can't scan into dest[0]"), false},
		{"caller cancelled", done, context.Canceled, false},
		{"connection lost after the caller cancelled", done, io.ErrUnexpectedEOF, false},
		{"no error", context.Background(), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Lost(tt.ctx, tt.err); got != tt.want {
				t.Errorf("Lost(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
