package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// TestOpenExisting: OpenExisting opens only a schema the hub has
// migrated, and creates, migrates and records nothing.
func TestOpenExisting(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL()
	k := storetest.Keyring(t, storetest.Keys(t))
	exec := func(t *testing.T, sql string) {
		t.Helper()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		// prepare makes the schema's state before OpenExisting.
		prepare func(t *testing.T, schema string)
		want    string
		noStore bool
	}{
		{"no schema", func(*testing.T, string) {}, "no hub store in schema", true},
		{"a schema without the hub's tables", func(t *testing.T, schema string) {
			exec(t, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
		}, "no hub store in schema", true},
		{"a schema a migration short", func(t *testing.T, schema string) {
			openTestStore(t, schema).Close()
			exec(t, "DELETE FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+" WHERE version = '0007_outbox_published_at'")
		}, "lacks migrations of this version (0007_outbox_published_at)", false},
		{"a schema a newer version migrated", func(t *testing.T, schema string) {
			openTestStore(t, schema).Close()
			exec(t, "INSERT INTO "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+" (version) VALUES ('9999_future')")
		}, "does not know (9999_future)", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schema := testenv.Schema(t)
			tc.prepare(t, schema)
			var tables int
			if s, err := OpenExisting(ctx, Config{URL: url, Schema: schema}); err == nil {
				s.Close()
				t.Fatal("opened")
			} else if !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrNoStore) != tc.noStore {
				t.Fatalf("error %q, want one saying %q (ErrNoStore %v)", err, tc.want, tc.noStore)
			}
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema).Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tc.noStore && tables != 0 {
				t.Errorf("OpenExisting created %d tables", tables)
			}
		})
	}

	t.Run("a migrated schema that records no sealing mode", func(t *testing.T) {
		schema := testenv.Schema(t)
		s := openTestStore(t, schema)
		if _, err := s.pool.Exec(ctx, `DELETE FROM hub_meta WHERE name = 'sealed'`); err != nil {
			t.Fatal(err)
		}
		e, err := OpenExisting(ctx, Config{URL: url, Schema: schema, Keys: k})
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM hub_meta WHERE name = 'sealed'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("OpenExisting recorded a sealing mode (%d rows, %v)", n, err)
		}
		// Open, the hub's, records the mode it opens with.
		openSealedStore(t, schema, k)
		if _, err := OpenExisting(ctx, Config{URL: url, Schema: schema}); err == nil || !strings.Contains(err.Error(), "is sealed") {
			t.Fatalf("OpenExisting without keys of a sealed schema: %v", err)
		}
	})
}

// TestSealingModeOfAnEmptySchema: a schema that holds no personal data
// takes the mode it is opened with, whatever an earlier open recorded (a
// hub that stopped before it wrote anything, or a tool); once it holds a
// person, the mode is fixed. Before, the first open decided for ever.
func TestSealingModeOfAnEmptySchema(t *testing.T) {
	ctx := context.Background()
	m := storetest.MarkedPerson(t)
	k := storetest.Keyring(t, storetest.Keys(t))
	schema := testenv.Schema(t)
	openTestStore(t, schema).Close() // in clear, and nothing written

	s, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: schema, Keys: k})
	if err != nil {
		t.Fatalf("opening an empty schema recorded in clear with keys: %v", err)
	}
	defer s.Close()
	var mode string
	if err := s.pool.QueryRow(ctx, `SELECT value FROM hub_meta WHERE name = 'sealed'`).Scan(&mode); err != nil || mode != k.Check() {
		t.Fatalf("recorded mode %q (%v), want the keys' check value", mode, err)
	}
	storetest.ApplyAll(t, s, m.In[:2], 10)

	tests := []struct {
		name string
		keys bool
		want string
	}{
		{"in clear", false, "is sealed; give its keys"},
		{"with other keys", true, "do not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: testenv.PostgresURL(), Schema: schema}
			if tc.keys {
				cfg.Keys = storetest.Keyring(t, storetest.Keys(t))
			}
			o, err := Open(ctx, cfg)
			if err == nil {
				o.Close()
				t.Fatal("a schema holding a sealed person opened " + tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestSealingModeChangedWhileOpen: an instance that opened an empty schema
// and has written nothing, when another instance then records the schema
// in its own mode, has its batches refused and writes nothing. Before, it
// kept writing in its old mode (persons keyed by the raw ID in a schema
// recorded as sealed), which the other could not read and it could not
// reopen.
func TestSealingModeChangedWhileOpen(t *testing.T) {
	ctx := context.Background()
	m := storetest.MarkedPerson(t)
	k1 := storetest.Keyring(t, storetest.Keys(t))
	k2 := storetest.Keyring(t, storetest.Keys(t))
	tests := []struct {
		name   string
		first  *sealing.Keyring
		second *sealing.Keyring
	}{
		{"clear, then sealed", nil, k1},
		{"sealed, then clear", k1, nil},
		{"sealed, then other keys", k1, k2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schema := testenv.Schema(t)
			cfg := func(k *sealing.Keyring) Config {
				return Config{URL: testenv.PostgresURL(), Schema: schema, Keys: k}
			}
			a, err := Open(ctx, cfg(tc.first))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := Open(ctx, cfg(tc.second)) // the schema is still empty: it takes b's mode
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()

			if _, err := a.Apply(ctx, m.In[:2]); !errors.Is(err, ErrSealingChanged) {
				t.Fatalf("the first instance's batch: %v, want ErrSealingChanged", err)
			}
			var rows int
			if err := a.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM persons) + (SELECT count(*) FROM history)
				+ (SELECT count(*) FROM outbox_batches)`).Scan(&rows); err != nil || rows != 0 {
				t.Fatalf("the refused batch left %d rows (%v)", rows, err)
			}
			res, err := b.Apply(ctx, m.In[:2])
			if err != nil || res.Applied != 2 {
				t.Fatalf("the second instance: %+v, %v; want both events applied", res, err)
			}
			if _, err := b.Person(ctx, m.ID); err != nil {
				t.Fatalf("the second instance cannot read its person: %v", err)
			}
			if _, err := a.Apply(ctx, m.In[2:3]); !errors.Is(err, ErrSealingChanged) {
				t.Fatalf("the first instance's batch on a schema holding a person: %v, want ErrSealingChanged", err)
			}
			// Restarted in the schema's mode, it writes.
			a2, err := Open(ctx, cfg(tc.second))
			if err != nil {
				t.Fatal(err)
			}
			defer a2.Close()
			storetest.ApplyAll(t, a2, m.In[2:], 10)
		})
	}
}
