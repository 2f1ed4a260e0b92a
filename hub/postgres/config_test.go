package postgres

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
)

// withParams adds query parameters to a PostgreSQL URL.
func withParams(t *testing.T, base string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("the test database's URL %q is not a URL: %v", base, err)
	}
	q := u.Query()
	for i := 0; i < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	// pgconn reads a "+" in a URL as itself, not as a blank.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

// TestOpenTakesURLSettings: the schema and pool size a connection URL
// sets (search_path, pool_max_conns) are the ones the store uses, unless
// the Config names others; a Config and a URL that name different
// schemas are refused before anything is written. A case whose Config
// names no schema opens stores the test made with OpenExisting, which
// creates nothing: a store that ignored the URL would find no store in
// public instead of writing its tables there.
func TestOpenTakesURLSettings(t *testing.T) {
	ctx := context.Background()
	base := testenv.Postgres(t)
	tests := []struct {
		name string
		// config builds the Config from schemas of the test's own.
		config func(t *testing.T, a, b, c string) Config
		// want is the schema the store must write in (a or b), or ""
		// when Open must fail with an error holding wantErr.
		want     string
		wantErr  []string
		maxConns int32
		// existing opens with OpenExisting, once Open has made a and b.
		existing bool
	}{
		{name: "the URL's search_path", want: "a", maxConns: 8, existing: true,
			config: func(t *testing.T, a, b, c string) Config {
				return Config{URL: withParams(t, base, "search_path", a)}
			}},
		{name: "the URL's search_path, the Config the same", want: "a", maxConns: 8,
			config: func(t *testing.T, a, b, c string) Config {
				return Config{URL: withParams(t, base, "search_path", a), Schema: a}
			}},
		{name: "the Config's schema without a search_path", want: "b", maxConns: 8,
			config: func(t *testing.T, a, b, c string) Config { return Config{URL: base, Schema: b} }},
		{name: "several schemas in the search_path, the Config naming one", want: "b", maxConns: 8,
			config: func(t *testing.T, a, b, c string) Config {
				return Config{URL: withParams(t, base, "search_path", a+", "+b), Schema: b}
			}},
		{name: "the URL's pool_max_conns", want: "a", maxConns: 3, existing: true,
			config: func(t *testing.T, a, b, c string) Config {
				return Config{URL: withParams(t, base, "search_path", a, "pool_max_conns", "3")}
			}},
		{name: "the Config's MaxConns over the URL's", want: "a", maxConns: 5,
			config: func(t *testing.T, a, b, c string) Config {
				return Config{URL: withParams(t, base, "pool_max_conns", "3"), Schema: a, MaxConns: 5}
			}},
		{name: "a Config and a URL naming different schemas", wantErr: []string{"a", "b", "search_path"},
			config: func(t *testing.T, a, b, c string) Config {
				return Config{URL: withParams(t, base, "search_path", a), Schema: b}
			}},
		{name: "several schemas in the search_path and none configured", wantErr: []string{"a", "b", "several schemas"}, existing: true,
			config: func(t *testing.T, a, b, c string) Config {
				return Config{URL: withParams(t, base, "search_path", a+","+b)}
			}},
		{name: "several schemas in the search_path, the Config naming another", wantErr: []string{"a", "b", "c", "search_path"},
			config: func(t *testing.T, a, b, c string) Config {
				return Config{URL: withParams(t, base, "search_path", a+","+b), Schema: c}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schemas := map[string]string{"a": testenv.Schema(t), "b": testenv.Schema(t), "c": testenv.Schema(t)}
			cfg := tc.config(t, schemas["a"], schemas["b"], schemas["c"])
			open := Open
			if tc.existing {
				openTestStore(t, schemas["a"]).Close()
				openTestStore(t, schemas["b"]).Close()
				open = OpenExisting
			}
			s, err := open(ctx, cfg)
			if tc.want == "" {
				if err == nil {
					s.Close()
					t.Fatal("opened")
				}
				for _, w := range tc.wantErr {
					if name, ok := schemas[w]; ok {
						w = name
					}
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				if !tc.existing {
					assertNoSchemas(t, schemas["a"], schemas["b"], schemas["c"])
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			want := schemas[tc.want]
			var path, current string
			if err := s.Pool().QueryRow(ctx, "SELECT current_setting('search_path'), current_schema()").Scan(&path, &current); err != nil {
				t.Fatal(err)
			}
			if current != want || path != (pgx.Identifier{want}).Sanitize() {
				t.Errorf("search_path %s (current schema %s), want %s", path, current, want)
			}
			var holder string
			if err := s.Pool().QueryRow(ctx, "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'persons'::regclass").Scan(&holder); err != nil || holder != want {
				t.Errorf("persons is in schema %q (%v), want %q", holder, err, want)
			}
			if got := s.Pool().Config().MaxConns; got != tc.maxConns {
				t.Errorf("pool of %d connections, want %d", got, tc.maxConns)
			}
		})
	}
}

// assertNoSchemas checks that a refused Open created none of the schemas.
func assertNoSchemas(t *testing.T, schemas ...string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)", schemas).Scan(&n); err != nil || n != 0 {
		t.Errorf("a refused Open created %d of the schemas (%v)", n, err)
	}
}

// TestResolveSchema covers how the schema is chosen from Config.Schema and
// the URL's search_path, as PostgreSQL reads a search_path.
func TestResolveSchema(t *testing.T) {
	tests := []struct {
		configured, searchPath string
		want                   string
		wantErr                string
	}{
		{"", "", "public", ""},
		{"hub", "", "hub", ""},
		{"", "hub", "hub", ""},
		{"", " Hub ", "hub", ""}, // unquoted names fold to lower case
		{"", `"Hub"`, "Hub", ""},
		{"", `"a,""b"`, `a,"b`, ""},
		{"Hub", "hub", "", "different schemas"},
		{"Hub", `"Hub"`, "Hub", ""},
		{"", "a, b", "", "several schemas"},
		{"b", "a, b", "b", ""},
		{"c", "a, b", "", "different schemas"},
		{"", `"$user", public`, "", "several schemas"},
		{"", `$user`, "", "$user"},
		{"", `"a`, "", "unterminated"},
		{"", "a,,b", "", "empty"},
	}
	for _, tc := range tests {
		got, err := resolveSchema(tc.configured, tc.searchPath)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("resolveSchema(%q, %q) = %q, %v; want an error containing %q", tc.configured, tc.searchPath, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("resolveSchema(%q, %q) = %q, %v; want %q", tc.configured, tc.searchPath, got, err, tc.want)
		}
	}
	if got, _ := parseSearchPath(`x, "Y z" ,w`); !slices.Equal(got, []string{"x", "Y z", "w"}) {
		t.Errorf("parseSearchPath: %q", got)
	}
}

// TestURLSchemaDoesNotHideAnOlderStore: a hub upgraded with the URL it
// always had, whose search_path earlier versions ignored, keeps its store
// in public; Open must not create an empty store in the URL's schema and
// serve it, hiding every record. It refuses, naming both schemas, and
// either, named explicitly, opens. A URL schema that holds a store, or
// with no store in public, opens as before.
func TestURLSchemaDoesNotHideAnOlderStore(t *testing.T) {
	ctx := context.Background()
	base := testenv.Postgres(t)
	legacy, named, fresh := testenv.Schema(t), testenv.Schema(t), testenv.Schema(t)
	defer func(old string) { legacySchema = old }(legacySchema)
	legacySchema = legacy

	// A fresh schema from the URL while the legacy one holds nothing.
	s, err := Open(ctx, Config{URL: withParams(t, base, "search_path", fresh)})
	if err != nil {
		t.Fatalf("a URL schema with no older store anywhere: %v", err)
	}
	s.Close()

	old, err := Open(ctx, Config{URL: base, Schema: legacy})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	_, err = Open(ctx, Config{URL: withParams(t, base, "search_path", named)})
	if err == nil || !strings.Contains(err.Error(), named) || !strings.Contains(err.Error(), legacy) {
		t.Fatalf("a URL schema without a store while the legacy schema holds one: %v, want a refusal naming %s and %s", err, named, legacy)
	}
	if schemaHasTable(t, base, named, "persons") {
		t.Errorf("the refused Open created tables in %s", named)
	}
	for _, cfg := range []Config{
		{URL: withParams(t, base, "search_path", legacy)},               // the older store, by the URL
		{URL: withParams(t, base, "search_path", fresh)},                // a URL schema that holds a store
		{URL: withParams(t, base, "search_path", named), Schema: named}, // a new store, asked for explicitly
	} {
		s, err := Open(ctx, cfg)
		if err != nil {
			t.Errorf("Open(%s, schema %q): %v", cfg.URL, cfg.Schema, err)
			continue
		}
		s.Close()
	}
}

// schemaHasTable reports whether schema holds table.
func schemaHasTable(t *testing.T, url, schema, table string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{schema, table}.Sanitize()).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}
