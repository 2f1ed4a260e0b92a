package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/faults"
)

// PostgresCluster starts a PostgreSQL server of the test's own (a private
// instance from the machine's binaries, see faults.StartPostgres) and
// returns the URL of its database postgres. It is for tests that change
// what the machine's server shares with every other test: server settings
// that invalidate replication slots, for one. Each of settings is
// name=value ("max_slot_wal_keep_size=1MB"). The server is stopped and its
// files removed when the test ends. Missing binaries skip the test, except
// under CI=true.
func PostgresCluster(t testing.TB, settings ...string) string {
	t.Helper()
	if _, err := faults.FindPostgresBin(); err != nil {
		Unavailable(t, "no PostgreSQL server binaries to start a server with: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := faults.StartPostgres(ctx, settings...)
	if err != nil {
		t.Fatalf("starting the test's own PostgreSQL: %v", err)
	}
	t.Cleanup(func() { pg.Close() })
	return pg.URL()
}
