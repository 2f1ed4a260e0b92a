package main

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// TestPostgresSchemaFromURL: a --postgres URL that names the hub's schema
// in its search_path is enough for the tools, as for serve, and a
// --schema that names another is refused, naming both. Before, the tools
// looked in public whatever the URL said.
func TestPostgresSchemaFromURL(t *testing.T) {
	schema, other := testenv.Schema(t), testenv.Schema(t)
	s, err := postgres.Open(context.Background(), postgres.Config{URL: testenv.PostgresURL(), Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	storetest.ApplyAll(t, s, storetest.Population(t, 20, 3), 20)
	s.Close()
	u, err := url.Parse(testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	pg := u.String()
	tests := []struct {
		name    string
		args    []string
		wantOut string
		wantErr []string
	}{
		{"stats verify", []string{"stats", "verify", "--postgres", pg, "--keys", "none"}, "every counter equals the recount", nil},
		{"stats verify --schema the same", []string{"stats", "verify", "--postgres", pg, "--schema", schema, "--keys", "none"}, "every counter equals the recount", nil},
		{"stats rebuild", []string{"stats", "rebuild", "--postgres", pg, "--keys", "none"}, "rebuilt the counters of 20 persons", nil},
		{"stats verify --schema another", []string{"stats", "verify", "--postgres", pg, "--schema", other, "--keys", "none"}, "", []string{schema, other}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(t, rootCommand(), tc.args...)
			if tc.wantErr == nil {
				if err != nil || !strings.Contains(out, tc.wantOut) {
					t.Errorf("%v, want %q\n%s", err, tc.wantOut, out)
				}
				return
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%v, want an error naming %s\n%s", err, w, out)
				}
			}
			if schemaExists(t, testenv.PostgresURL(), other) {
				t.Error("the refused command created the other schema")
			}
		})
	}
}

// TestServePostgresSchemaDefault: serve's --postgres-schema defaults to
// nothing, so that the URL's search_path decides, and its help says so.
func TestServePostgresSchemaDefault(t *testing.T) {
	t.Setenv("POPHUB_POSTGRES_SCHEMA", "")
	f := serveCommand(func() *slog.Logger { return testLogger(t) }).Flags().Lookup("postgres-schema")
	if f.DefValue != "" || !strings.Contains(f.Usage, "search_path") {
		t.Errorf("--postgres-schema defaults to %q (%s), want nothing and the URL's search_path named", f.DefValue, f.Usage)
	}
}

// TestOfflineToolsTakeSchemaFromEnv: the store tools read the hub's
// schema from POPHUB_POSTGRES_SCHEMA, as they read its database from
// POPHUB_POSTGRES and as serve reads both. Before, they took the database
// from the environment and looked in public, where stats rebuild would
// have rewritten another store's counters.
func TestOfflineToolsTakeSchemaFromEnv(t *testing.T) {
	schema, absent := testenv.Schema(t), testenv.Schema(t)
	s, err := postgres.Open(context.Background(), postgres.Config{URL: testenv.PostgresURL(), Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	storetest.ApplyAll(t, s, storetest.Population(t, 20, 3), 20)
	s.Close()
	t.Setenv("POPHUB_POSTGRES", testenv.PostgresURL())
	for _, tc := range []struct {
		name, env string
		args      []string
		want      string // in the output, or in the error when wantErr
		wantErr   bool
	}{
		{"stats verify", schema, []string{"stats", "verify", "--keys", "none"}, "every counter equals the recount", false},
		{"stats rebuild", schema, []string{"stats", "rebuild", "--keys", "none"}, "rebuilt the counters of 20 persons", false},
		{"stats verify, no store there", absent, []string{"stats", "verify", "--keys", "none"}, absent, true},
		{"stats rebuild, no store there", absent, []string{"stats", "rebuild", "--keys", "none"}, absent, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POPHUB_POSTGRES_SCHEMA", tc.env)
			out, err := execute(t, rootCommand(), tc.args...)
			switch {
			case tc.wantErr && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%v, want an error naming %s\n%s", err, tc.want, out)
			case !tc.wantErr && (err != nil || !strings.Contains(out, tc.want)):
				t.Errorf("%v, want %q\n%s", err, tc.want, out)
			}
		})
	}
}
