package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas/region"
)

// TestStatsVerifyStoreChoice: stats verify checks the store an operator
// means, and names it on its first line without credentials. A memdb
// hub's --data on a host with the PostgreSQL hub's POPHUB_POSTGRES
// exported is ambiguous and refused (it used to verify the PostgreSQL
// store silently); a PostgreSQL hub's --data, which holds only its region
// table, keeps the store of the environment, as stats rebuild, serve and
// dev do.
func TestStatsVerifyStoreChoice(t *testing.T) {
	t.Cleanup(func() { region.SetDefault(region.Builtin()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	memData := filepath.Join(t.TempDir(), "data")
	m := &Main{Config: Config{Embedded: true, DataDir: memData, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", Partitions: 1}, Logger: testLogger(t)}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	pgData := t.TempDir()
	url, schema := testenv.Postgres(t), testenv.Schema(t)
	hubWithOfficialRegions(t, pgData, func() (hub.Store, error) {
		return postgres.Open(ctx, postgres.Config{URL: url, Schema: schema})
	})
	region.SetDefault(region.Builtin())
	cc, err := pgconn.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "S3cretPw"
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantFirst string // the first line; "" when refused
		wantErr   string
	}{
		{"a memdb hub's --data", nil, []string{"--data", memData},
			"verifying the memdb store in " + filepath.Join(memData, "store"), ""},
		{"a memdb hub's --data with POPHUB_POSTGRES set", map[string]string{"POPHUB_POSTGRES": "postgres://postgres@127.0.0.1:1/none"},
			[]string{"--data", memData}, "", "POPHUB_POSTGRES is set and " + memData + " holds a memdb store"},
		{"a PostgreSQL hub's --data with POPHUB_POSTGRES set", map[string]string{"POPHUB_POSTGRES": url, "POPHUB_POSTGRES_SCHEMA": schema},
			[]string{"--data", pgData, "--keys", "none"}, "verifying the PostgreSQL store on ", ""},
		{"a password as a URL parameter", nil, []string{"--postgres", url + "?password=" + secret, "--schema", schema, "--keys", "none"},
			"verifying the PostgreSQL store on ", ""},
		{"a password as a keyword", nil, []string{"--postgres", fmt.Sprintf("host=%s port=%d user=%s dbname=%s password=%s",
			cc.Host, cc.Port, cc.User, cc.Database, secret), "--schema", schema, "--keys", "none"}, "verifying the PostgreSQL store on ", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POPHUB_POSTGRES", "")
			t.Setenv("POPHUB_POSTGRES_SCHEMA", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, err := execute(t, statsCommand(func() *slog.Logger { return testLogger(t) }),
				append([]string{"verify"}, tc.args...)...)
			if strings.Contains(out, secret) || err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the password is in the output or the error (%v):\n%s", err, out)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q\n%s", err, tc.wantErr, out)
				}
				return
			}
			if err != nil || !strings.Contains(out, "every counter equals the recount") {
				t.Fatalf("stats verify: %v\n%s", err, out)
			}
			if !strings.HasPrefix(out, tc.wantFirst) {
				t.Errorf("output does not start %q:\n%s", tc.wantFirst, out)
			}
			if strings.Contains(tc.wantFirst, "PostgreSQL") && !strings.Contains(strings.SplitN(out, "\n", 2)[0], "schema "+schema) {
				t.Errorf("the first line does not name schema %s:\n%s", schema, out)
			}
		})
	}
}

// TestAuditLogChoice: the audit commands' --postgres and --file each
// default to an environment variable; the one given on the command line
// wins over the other's environment value (README's `audit who-read ID
// --file …` on a host with POPHUB_POSTGRES exported was refused with "give
// either --postgres or --file, not both"). Both given, on the command line
// or only in the environment, are refused.
func TestAuditLogChoice(t *testing.T) {
	closedPG := "postgres://postgres@127.0.0.1:1/none"
	dir := t.TempDir()
	logFile, keyFile, _ := seededAuditFile(t, dir)
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantOut string // "" when the command must fail
		wantErr string
	}{
		{"--file with POPHUB_POSTGRES set", map[string]string{"POPHUB_POSTGRES": closedPG},
			[]string{"--file", logFile}, "the audit log verifies", ""},
		{"POPHUB_AUDIT_FILE alone", map[string]string{"POPHUB_AUDIT_FILE": logFile},
			nil, "the audit log verifies", ""},
		{"--postgres with POPHUB_AUDIT_FILE set", map[string]string{"POPHUB_AUDIT_FILE": logFile},
			[]string{"--postgres", closedPG}, "", "127.0.0.1"},
		{"both flags", nil,
			[]string{"--postgres", closedPG, "--file", logFile}, "", "give either --postgres or --file, not both"},
		{"both in the environment", map[string]string{"POPHUB_POSTGRES": closedPG, "POPHUB_AUDIT_FILE": logFile},
			nil, "", "POPHUB_POSTGRES and POPHUB_AUDIT_FILE are both set: give --postgres or --file to choose the log"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POPHUB_POSTGRES", "")
			t.Setenv("POPHUB_AUDIT_FILE", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, err := execute(t, auditCommand(), append([]string{"verify", "--key-file", keyFile}, tc.args...)...)
			if tc.wantOut != "" {
				if err != nil || !strings.Contains(out, tc.wantOut) {
					t.Errorf("error %v, want output holding %q\n%s", err, tc.wantOut, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one holding %q\n%s", err, tc.wantErr, out)
			}
		})
	}
}
