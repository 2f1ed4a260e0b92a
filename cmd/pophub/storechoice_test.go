package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatsVerifyDataOverridesEnvironment: on a host with the hub's
// POPHUB_POSTGRES exported, `stats verify --data DIR` verified the
// PostgreSQL store of the environment and read DIR only for its region
// table. The memdb store named on the command line is the one checked now,
// and the output names it.
func TestStatsVerifyDataOverridesEnvironment(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	m := &Main{Config: Config{Embedded: true, DataDir: data, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", Partitions: 1}, Logger: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POPHUB_POSTGRES", "postgres://postgres@127.0.0.1:1/none")
	out, err := execute(t, statsCommand(func() *slog.Logger { return testLogger(t) }), "verify", "--data", data)
	if err != nil || !strings.Contains(out, "every counter equals the recount") {
		t.Fatalf("stats verify --data with POPHUB_POSTGRES in the environment: %v\n%s", err, out)
	}
	if want := "verifying the memdb store in " + filepath.Join(data, "store") + "\n"; !strings.HasPrefix(out, want) {
		t.Errorf("output does not start %q:\n%s", want, out)
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
