package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/internal/testenv"
)

// TestMaintenanceNeedsAnExistingStore: 'stats verify', 'stats rebuild'
// and 'keys rotate' refuse a store that is not there and create nothing.
// Before, a mistyped --schema or --data made and migrated a new store and
// the command reported "every counter equals the recount" or "re-sealed 0
// values" with exit status 0.
func TestMaintenanceNeedsAnExistingStore(t *testing.T) {
	url := testenv.PostgresURL()
	keys := filepath.Join(t.TempDir(), "keys")
	if err := sealing.CreateFile(keys); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// args runs the command on a store that is not there; created
		// reports whether the command made one.
		args    func(t *testing.T) (args []string, created func() bool)
		wantErr string
	}{
		{"stats verify --schema", func(t *testing.T) ([]string, func() bool) {
			schema := testenv.Schema(t)
			return []string{"stats", "verify", "--postgres", url, "--schema", schema, "--keys", "none"},
				func() bool { return schemaExists(t, url, schema) }
		}, "no hub store in schema"},
		{"stats verify --data", func(t *testing.T) ([]string, func() bool) {
			dir := filepath.Join(t.TempDir(), "typo")
			return []string{"stats", "verify", "--data", dir}, func() bool { _, err := os.Stat(dir); return err == nil }
		}, "no hub store in /"},
		{"stats rebuild --schema", func(t *testing.T) ([]string, func() bool) {
			schema := testenv.Schema(t)
			return []string{"stats", "rebuild", "--postgres", url, "--schema", schema, "--keys", "none"},
				func() bool { return schemaExists(t, url, schema) }
		}, "no hub store in schema"},
		{"keys rotate --schema", func(t *testing.T) ([]string, func() bool) {
			schema := testenv.Schema(t)
			return []string{"keys", "rotate", "--postgres", url, "--schema", schema, "--keys", keys},
				func() bool { return schemaExists(t, url, schema) }
		}, "no hub store in schema"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args, created := tc.args(t)
			out, err := execute(t, rootCommand(), args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), " right?") {
				t.Errorf("%v, want an error saying %q and asking whether the flag is right\n%s", err, tc.wantErr, out)
			}
			if created() {
				t.Error("the command created a store")
			}
		})
	}
}

// TestStatsVerifyLeavesTheSealingModeOpen: a tool run without keys on a
// schema the hub has not created yet does not decide that the schema
// holds personal data in clear. Before, 'stats verify' created the
// schema, recorded it as clear, and the hub's first start with --keys was
// refused.
func TestStatsVerifyLeavesTheSealingModeOpen(t *testing.T) {
	url, schema := testenv.PostgresURL(), testenv.Schema(t)
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := sealing.CreateFile(keyFile); err != nil {
		t.Fatal(err)
	}
	if out, err := execute(t, rootCommand(), "stats", "verify", "--postgres", url, "--schema", schema, "--keys", "none"); err == nil {
		t.Errorf("stats verify of a schema with no store succeeded\n%s", out)
	}
	// The hub's first open with keys.
	openSealedPostgres(t, keyFile, schema).Close()
	// On the hub's store, the tools work as before.
	if out, err := execute(t, rootCommand(), "stats", "verify", "--postgres", url, "--schema", schema, "--keys", keyFile); err != nil ||
		!strings.Contains(out, "every counter equals the recount") {
		t.Errorf("stats verify of the hub's store: %v\n%s", err, out)
	}
	if out, err := execute(t, rootCommand(), "keys", "rotate", "--postgres", url, "--schema", schema, "--keys", keyFile); err != nil ||
		!strings.Contains(out, "re-sealed 0 values") {
		t.Errorf("keys rotate of the hub's store: %v\n%s", err, out)
	}
}

// TestStatsPullHelpNamesItsEnvironment: --hub reads POPHUB_URL, and its
// help says so.
func TestStatsPullHelpNamesItsEnvironment(t *testing.T) {
	out, err := execute(t, rootCommand(), "stats", "pull", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--hub ") {
			if !strings.Contains(line, "(env POPHUB_URL)") {
				t.Errorf("--hub help does not name POPHUB_URL: %q", line)
			}
			return
		}
	}
	t.Fatalf("no --hub in the help:\n%s", out)
}
