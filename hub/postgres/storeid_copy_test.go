package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
)

// TestStoreIDTellsCopiesApart: a copy of a schema (pg_dump and restore
// into another database or schema) keeps the hub_meta row with the
// store's id, and a hub on the copy must still not pass for one on the
// original: in one consumer group the two would split the events between
// them. Stores on the same schema agree.
func TestStoreIDTellsCopiesApart(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	orig := openTestStore(t, schema)
	logical := hubMetaStoreID(t, testenv.PostgresURL(), schema)
	if !strings.HasPrefix(orig.StoreID(), logical+"/") {
		t.Errorf("store id %q does not extend the schema's hub_meta id %q: hubs of the previous release, which send that alone, "+
			"could not be matched with it", orig.StoreID(), logical)
	}
	otherDB := testDatabase(t)

	tests := []struct {
		name        string
		url, schema string
		// copied sets the store's hub_meta id to the original's, as a
		// dump and restore does.
		copied bool
		same   bool
	}{
		{"the same schema", testenv.PostgresURL(), schema, false, true},
		{"a copy under the same schema name in another database", otherDB, schema, true, false},
		{"a copy in another schema of the same database", testenv.PostgresURL(), testenv.Schema(t), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.copied {
				s, err := Open(ctx, Config{URL: tt.url, Schema: tt.schema})
				if err != nil {
					t.Fatal(err)
				}
				_, err = s.Pool().Exec(ctx, `UPDATE hub_meta SET value = $1 WHERE name = $2`, logical, storeIDMeta)
				s.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open(ctx, Config{URL: tt.url, Schema: tt.schema})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := hubMetaStoreID(t, tt.url, tt.schema); got != logical {
				t.Fatalf("hub_meta store id %q, want the original's %q", got, logical)
			}
			if (s.StoreID() == orig.StoreID()) != tt.same {
				t.Errorf("store id %q, the original's %q: want the same: %v", s.StoreID(), orig.StoreID(), tt.same)
			}
			existing, err := OpenExisting(ctx, Config{URL: tt.url, Schema: tt.schema})
			if err != nil {
				t.Fatal(err)
			}
			defer existing.Close()
			if existing.StoreID() != s.StoreID() {
				t.Errorf("OpenExisting's store id %q, Open's %q: want one", existing.StoreID(), s.StoreID())
			}
		})
	}
}

// TestStoreIDWithoutServerIdentity: a role that may not read the
// server's system identifier (a managed service may revoke
// pg_control_system) still opens the store, and its instances agree on
// an id that tells the schema's database apart.
func TestStoreIDWithoutServerIdentity(t *testing.T) {
	ctx := context.Background()
	// The role first: its cleanup runs after the database's, which
	// holds its grants.
	role := fmt.Sprintf("pophub_test_role_%d_%d", os.Getpid(), databaseSeq.Add(1))
	admin(t, testenv.Postgres(t), "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN")
	t.Cleanup(func() { admin(t, testenv.PostgresURL(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()) })
	dbURL := testDatabase(t)
	db := strings.TrimPrefix(mustParseURL(t, dbURL).Path, "/")
	admin(t, dbURL, "GRANT CREATE ON DATABASE "+pgx.Identifier{db}.Sanitize()+" TO "+pgx.Identifier{role}.Sanitize())
	admin(t, dbURL, "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")

	u := mustParseURL(t, dbURL)
	u.User = url.User(role)
	schema := "hub"
	var ids []string
	for range 2 {
		s, err := Open(ctx, Config{URL: u.String(), Schema: schema})
		if err != nil {
			t.Fatalf("Open as a role without pg_control_system: %v", err)
		}
		ids = append(ids, s.StoreID())
		s.Close()
	}
	logical := hubMetaStoreID(t, dbURL, schema)
	if ids[0] != ids[1] || !strings.HasPrefix(ids[0], logical+"/") {
		t.Errorf("store ids %q on one schema with hub_meta id %q: want one, extending it", ids, logical)
	}
}

var databaseSeq atomic.Int64

// testDatabase creates a database of its own for the test, dropped when
// the test ends, and returns its URL.
func testDatabase(t *testing.T) string {
	t.Helper()
	base := testenv.Postgres(t)
	name := fmt.Sprintf("pophub_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e12, databaseSeq.Add(1))
	admin(t, base, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() { admin(t, base, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)") })
	u := mustParseURL(t, base)
	u.Path = "/" + name
	return u.String()
}

// admin runs statements on the database at url as its (superuser) user.
func admin(t testing.TB, url string, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, sql := range sqls {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// hubMetaStoreID reads the store id the schema's hub_meta holds.
func hubMetaStoreID(t *testing.T, url, schema string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var id string
	q := `SELECT value FROM ` + pgx.Identifier{schema, "hub_meta"}.Sanitize() + ` WHERE name = $1`
	if err := c.QueryRow(ctx, q, storeIDMeta).Scan(&id); err != nil {
		t.Fatalf("reading hub_meta's store id: %v", err)
	}
	return id
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		testenv.Unavailable(t, "the test database %q is not a URL another database's can be made from: %v", s, err)
	}
	return u
}
