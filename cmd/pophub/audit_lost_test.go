package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/audit"
)

// openHubAudit opens and closes the audit trail of a memdb hub under the
// example policy, as a start of the hub does.
func openHubAudit(t *testing.T, cfg Config) error {
	t.Helper()
	ctx := context.Background()
	p, err := access.Load(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Logger: testLogger(t), Access: p}
	if err := m.openAudit(ctx); err != nil {
		return err
	}
	if err := m.auditLog.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return m.auditStore.Close()
}

// TestHubRefusesToStartANewTrailWhereTheAuditLogWasLost: auditors rely
// on a trail that verifies being the whole trail. A hub whose audit log
// is gone (a data directory restored without audit.jsonl, a volume lost
// while --audit-key-file lives elsewhere) but whose key or the log's
// mark is still there must not begin a new log under the old key, which
// `audit verify` would pass while every earlier access entry is lost; it
// refuses to start, as it does for a missing key, and creates nothing.
func TestHubRefusesToStartANewTrailWhereTheAuditLogWasLost(t *testing.T) {
	tests := []struct {
		name string
		// supplied: the key is given with --audit-key-file, outside <data>.
		supplied bool
		// lose does to <data> what the disaster did.
		lose func(t *testing.T, dataDir string)
		want []string
	}{
		{"log removed, generated key kept", false, func(t *testing.T, dataDir string) {
			remove(t, filepath.Join(dataDir, "audit.jsonl"))
		}, []string{"audit log", "audit.jsonl is missing", "audit.key", "Restore", "from the same backup"}},
		{"log and mark removed, generated key kept", false, func(t *testing.T, dataDir string) {
			remove(t, filepath.Join(dataDir, "audit.jsonl"))
			remove(t, filepath.Join(dataDir, "audit.jsonl.last-policy"))
		}, []string{"audit.jsonl is missing", "audit.key"}},
		{"log removed, supplied key, mark kept", true, func(t *testing.T, dataDir string) {
			remove(t, filepath.Join(dataDir, "audit.jsonl"))
		}, []string{"audit.jsonl is missing", "audit.jsonl.last-policy"}},
		{"log removed, supplied key, a crash left the mark's temporary file", true, func(t *testing.T, dataDir string) {
			remove(t, filepath.Join(dataDir, "audit.jsonl"))
			mark := filepath.Join(dataDir, "audit.jsonl.last-policy")
			if err := os.Rename(mark, mark+".4711"); err != nil {
				t.Fatal(err)
			}
		}, []string{"audit.jsonl is missing", "audit.jsonl.last-policy.4711"}},
		{"log emptied, mark kept", false, func(t *testing.T, dataDir string) {
			if err := os.Truncate(filepath.Join(dataDir, "audit.jsonl"), 0); err != nil {
				t.Fatal(err)
			}
		}, []string{"audit.jsonl holds no entry", "audit.jsonl.last-policy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			cfg := Config{DataDir: dataDir}
			if tc.supplied {
				cfg.AuditKeyFile = filepath.Join(t.TempDir(), "audit.key")
				if err := audit.GenerateKeyFile(cfg.AuditKeyFile); err != nil {
					t.Fatal(err)
				}
			}
			if err := openHubAudit(t, cfg); err != nil {
				t.Fatalf("first start: %v", err)
			}
			logFile := filepath.Join(dataDir, "audit.jsonl")
			if st, err := os.Stat(logFile); err != nil || st.Size() == 0 {
				t.Fatalf("no audit entries after the first start: %v", err)
			}
			tc.lose(t, dataDir)
			before, beforeErr := os.ReadFile(logFile)

			err := openHubAudit(t, cfg)
			if err == nil {
				st, _ := os.Stat(logFile)
				keyFile := cfg.AuditKeyFile
				if keyFile == "" {
					keyFile = filepath.Join(dataDir, "audit.key")
				}
				out, verr := execute(t, auditCommand(), "verify", "--file", logFile, "--key-file", keyFile)
				t.Fatalf("the hub started on a lost audit log with its old key and began a new trail (%d bytes); audit verify: %v\n%s",
					st.Size(), verr, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q does not say %q", err, w)
				}
			}
			after, afterErr := os.ReadFile(logFile)
			if (beforeErr == nil) != (afterErr == nil) || !bytes.Equal(after, before) {
				t.Errorf("the refused start changed the log: %d bytes (%v), was %d bytes (%v)", len(after), afterErr, len(before), beforeErr)
			}
			// The refusal holds at the next attempt too.
			if err := openHubAudit(t, cfg); err == nil {
				t.Error("the second attempt started")
			}
		})
	}
}

// TestHubStartsAnAuditTrailWhereNoneWasKept: the checks for a lost log
// leave the ordinary starts alone: a first start that generates its key,
// a first start with a key the operator made beforehand, a restart, and
// a deliberate new trail after moving the old key and mark aside, as the
// refusal says.
func TestHubStartsAnAuditTrailWhereNoneWasKept(t *testing.T) {
	supplied := func(t *testing.T, dataDir string) Config {
		keyFile := filepath.Join(t.TempDir(), "audit.key")
		if err := audit.GenerateKeyFile(keyFile); err != nil {
			t.Fatal(err)
		}
		return Config{DataDir: dataDir, AuditKeyFile: keyFile}
	}
	generated := func(t *testing.T, dataDir string) Config { return Config{DataDir: dataDir} }
	tests := []struct {
		name string
		cfg  func(t *testing.T, dataDir string) Config
		// before runs before the start under test (nil: a first start).
		before func(t *testing.T, cfg Config)
		// entries the log holds after the start.
		entries string
	}{
		{"first start, key generated", generated, nil, "1 entries"},
		{"first start, key supplied", supplied, nil, "1 entries"},
		{"first start, supplied key placed in <data>", func(t *testing.T, dataDir string) Config {
			keyFile := filepath.Join(dataDir, "audit.key")
			if err := audit.GenerateKeyFile(keyFile); err != nil {
				t.Fatal(err)
			}
			return Config{DataDir: dataDir, AuditKeyFile: keyFile}
		}, nil, "1 entries"},
		{"restart, key generated", generated, func(t *testing.T, cfg Config) {
			if err := openHubAudit(t, cfg); err != nil {
				t.Fatalf("first start: %v", err)
			}
		}, "1 entries"},
		{"restart, key supplied", supplied, func(t *testing.T, cfg Config) {
			if err := openHubAudit(t, cfg); err != nil {
				t.Fatalf("first start: %v", err)
			}
		}, "1 entries"},
		{"restart after a first start interrupted before its first entry", generated, func(t *testing.T, cfg Config) {
			// What a crash between generating the key and storing the
			// first entry leaves: an empty log, a key, no mark.
			if err := os.WriteFile(filepath.Join(cfg.DataDir, "audit.jsonl"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := audit.GenerateKeyFile(filepath.Join(cfg.DataDir, "audit.key")); err != nil {
				t.Fatal(err)
			}
		}, "1 entries"},
		{"new trail after the old key and mark were moved aside", generated, func(t *testing.T, cfg Config) {
			if err := openHubAudit(t, cfg); err != nil {
				t.Fatalf("first start: %v", err)
			}
			aside := t.TempDir()
			for _, name := range []string{"audit.jsonl", "audit.key", "audit.jsonl.last-policy"} {
				if err := os.Rename(filepath.Join(cfg.DataDir, name), filepath.Join(aside, name)); err != nil {
					t.Fatal(err)
				}
			}
		}, "1 entries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			cfg := tc.cfg(t, dataDir)
			if tc.before != nil {
				tc.before(t, cfg)
			}
			logFile := filepath.Join(dataDir, "audit.jsonl")
			before, _ := os.ReadFile(logFile)
			if err := openHubAudit(t, cfg); err != nil {
				t.Fatalf("start: %v", err)
			}
			if after := readFile(t, logFile); !bytes.HasPrefix(after, before) {
				t.Errorf("the start did not keep the log's %d bytes: now %d", len(before), len(after))
			}
			keyFile := cfg.AuditKeyFile
			if keyFile == "" {
				keyFile = filepath.Join(dataDir, "audit.key")
			}
			out, err := execute(t, auditCommand(), "verify", "--file", logFile, "--key-file", keyFile)
			if err != nil || !strings.Contains(out, "the audit log verifies") || !strings.Contains(out, tc.entries) {
				t.Errorf("audit verify: %v, want %s that verify\n%s", err, tc.entries, out)
			}
		})
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
