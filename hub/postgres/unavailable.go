package postgres

import (
	"context"
	"fmt"

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
