package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// TestThroughPgBouncerInSessionMode: through PgBouncer in session
// pooling, which refuses or drops the search_path the hub sends, the hub
// keeps its store in its schema or refuses to start, saying how to set the
// schema instead; once it is set on the role, the store and the relay
// lease work through it.
func TestThroughPgBouncerInSessionMode(t *testing.T) {
	ctx := context.Background()

	t.Run("search_path refused", func(t *testing.T) {
		url := testenv.PgBouncer(t, "session")
		_, err := Open(ctx, Config{URL: url, Schema: testenv.Schema(t)})
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "ignore_startup_parameters") || !strings.Contains(err.Error(), "ALTER ROLE") {
			t.Fatalf("Open through a PgBouncer refusing search_path = %v, want an error saying to ignore it and set it on the role", err)
		}
	})

	t.Run("search_path ignored", func(t *testing.T) {
		url := testenv.PgBouncer(t, "session", "search_path")
		schema := testenv.Schema(t)
		inPublic := tablesIn(t, "public")
		if inPublic == 0 { // what the defect created there, should it come back
			t.Cleanup(func() {
				admin(t, testenv.Postgres(t), "DROP TABLE IF EXISTS public.history, public.hub_meta, public.outbox_batches, public.persons, public.schema_migrations, public.stats_counters, public.stats_counter_deltas",
					"DROP SEQUENCE IF EXISTS public.outbox_batch_seq")
			})
		}
		_, err := Open(ctx, Config{URL: url, Schema: schema})
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "ALTER ROLE") || !strings.Contains(err.Error(), schema) {
			t.Fatalf("Open through a PgBouncer dropping search_path = %v, want an error saying to set it on the role", err)
		}
		if tablesIn(t, schema) != 0 || tablesIn(t, "public") != inPublic {
			t.Errorf("a refused Open created a store (in %s: %d, public: %d before, %d after)", schema, tablesIn(t, schema), inPublic, tablesIn(t, "public"))
		}
	})

	t.Run("search_path set on the role", func(t *testing.T) {
		schema := testenv.Schema(t)
		role := testRole(t)
		admin(t, testenv.Postgres(t), "CREATE SCHEMA "+schema+" AUTHORIZATION "+role, "ALTER ROLE "+role+" SET search_path = "+schema)
		url := urlAs(t, testenv.PgBouncer(t, "session", "search_path"), role)
		open := func() *Store {
			t.Helper()
			s, err := Open(ctx, Config{URL: url, Schema: schema})
			if err != nil {
				t.Fatalf("Open through PgBouncer as a role whose search_path is the schema: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		a, b := open(), open()
		if _, err := a.Apply(ctx, storetest.Population(t, 5, 1)); err != nil {
			t.Fatalf("Apply through PgBouncer: %v", err)
		}
		if tablesIn(t, schema) != 1 {
			t.Errorf("the store is not in schema %s", schema)
		}

		la, lb := a.RelayLease(), b.RelayLease()
		for _, l := range []*RelayLease{la, lb} {
			t.Cleanup(func() { l.Release(ctx) })
		}
		if got, err := la.TryAcquire(ctx); !got || err != nil {
			t.Fatalf("first instance's TryAcquire through PgBouncer = %v, %v; want the lease", got, err)
		}
		if got, err := lb.TryAcquire(ctx); got || err != nil {
			t.Fatalf("second instance's TryAcquire through PgBouncer while the first holds the lease = %v, %v; want false", got, err)
		}
		if err := la.Check(ctx); err != nil {
			t.Errorf("holder's Check through PgBouncer: %v", err)
		}
		la.Release(ctx)
		if got, err := lb.TryAcquire(ctx); !got || err != nil {
			t.Fatalf("second instance's TryAcquire after the first released = %v, %v; want the lease", got, err)
		}
	})
}

// TestThroughPgBouncerInTransactionMode: a connection pooled per
// transaction, which breaks the hub's session state (advisory locks,
// prepared statements), is refused at open with an error saying what the
// hub needs, even when everything else about the connection is right.
func TestThroughPgBouncerInTransactionMode(t *testing.T) {
	schema := testenv.Schema(t)
	role := testRole(t)
	admin(t, testenv.Postgres(t), "CREATE SCHEMA "+schema+" AUTHORIZATION "+role, "ALTER ROLE "+role+" SET search_path = "+schema)
	url := urlAs(t, testenv.PgBouncer(t, "transaction", "search_path"), role)
	for _, open := range []struct {
		name string
		open func(context.Context, Config) (*Store, error)
	}{{"Open", Open}, {"OpenExisting", OpenExisting}} {
		s, err := open.open(context.Background(), Config{URL: url, Schema: schema})
		if err == nil {
			s.Close()
		}
		t.Log(err)
		if !errors.Is(err, ErrTransactionPooling) {
			t.Errorf("%s through PgBouncer in transaction mode = %v, want ErrTransactionPooling", open.name, err)
		}
	}
	if tablesIn(t, schema) != 0 {
		t.Errorf("a refused Open migrated schema %s", schema)
	}
}
