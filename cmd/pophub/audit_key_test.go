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

// TestAuditToolsRefuseAnotherKey: who-read and export given a key other
// than the one the log is sealed with refuse, and append nothing. Before,
// who-read printed "0 entries" and sealed its own audit_read entry with
// the wrong key, after which the log verified under neither key.
func TestAuditToolsRefuseAnotherKey(t *testing.T) {
	dir := t.TempDir()
	logFile, keyFile, signing := seededAuditFile(t, dir)
	other := filepath.Join(dir, "other.key")
	if err := audit.GenerateKeyFile(other); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "2026-03.jsonl")
	commands := []struct {
		name string
		args []string
	}{
		{"who-read", []string{"who-read", "230102199001011230"}},
		{"export", []string{"export", "--from", "2026-03-01", "--to", "2026-03-31", "--out", archive, "--signing-key", signing}},
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			before := readFile(t, logFile)
			out, err := execute(t, auditCommand(), append(c.args, "--file", logFile, "--key-file", other)...)
			if err == nil || !strings.Contains(err.Error(), "the audit key does not match the one this log is sealed with") {
				t.Errorf("%s with another key: %v, want a key mismatch\n%s", c.name, err, out)
			}
			if got := readFile(t, logFile); !bytes.Equal(got, before) {
				t.Errorf("the log changed: %d bytes, was %d", len(got), len(before))
			}
			if _, err := os.Stat(archive); err == nil {
				t.Error("an archive was written")
			}
		})
	}
	out, err := execute(t, auditCommand(), "verify", "--file", logFile, "--key-file", keyFile)
	if err != nil || !strings.Contains(out, "the audit log verifies") || strings.Contains(out, "is --key-file this log's key") {
		t.Errorf("verify with the right key: %v\n%s", err, out)
	}
	// Verify reads a log whatever the key, to report tampering; with
	// another key it says what most likely happened.
	out, err = execute(t, auditCommand(), "verify", "--file", logFile, "--key-file", other)
	if err == nil || !strings.Contains(out, "every entry's seal fails: is --key-file this log's key?") {
		t.Errorf("verify with another key: %v, want the hint that the key is another\n%s", err, out)
	}
}

// TestOpenAuditRefusesMissingKey: a hub whose audit key is gone (a backup
// restored without it) or replaced refuses to start rather than generate
// a new key and seal further entries of the old log with it, which then
// would verify under neither key.
func TestOpenAuditRefusesMissingKey(t *testing.T) {
	ctx := context.Background()
	p, err := access.Load(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	open := func(dataDir string) error {
		m := &Main{Config: Config{DataDir: dataDir}, Logger: testLogger(t), Access: p}
		if err := m.openAudit(ctx); err != nil {
			return err
		}
		if err := m.auditLog.Close(ctx); err != nil {
			t.Fatal(err)
		}
		return m.auditStore.Close()
	}
	dataDir := t.TempDir()
	if err := open(dataDir); err != nil {
		t.Fatalf("first start: %v", err)
	}
	keyFile, logFile := filepath.Join(dataDir, "audit.key"), filepath.Join(dataDir, "audit.jsonl")
	moved := filepath.Join(t.TempDir(), "audit.key")

	tests := []struct {
		name  string
		setup func(t *testing.T)
		want  string
	}{
		{"key moved away", func(t *testing.T) {
			if err := os.Rename(keyFile, moved); err != nil {
				t.Fatal(err)
			}
		}, keyFile},
		{"another key", func(t *testing.T) {
			if err := audit.GenerateKeyFile(keyFile); err != nil {
				t.Fatal(err)
			}
		}, "the audit key does not match the one this log is sealed with"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			before := readFile(t, logFile)
			err := open(dataDir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("start: %v, want an error naming %q", err, tc.want)
			}
			if got := readFile(t, logFile); !bytes.Equal(got, before) {
				t.Errorf("the log changed: %d bytes, was %d", len(got), len(before))
			}
		})
	}
	// The restored key works again.
	if err := os.Rename(moved, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := open(dataDir); err != nil {
		t.Fatalf("start with the restored key: %v", err)
	}
}
