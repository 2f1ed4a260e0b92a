package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas/citizenid"
)

// seedAudit writes reads of two citizens through a Log, as the HTTP API
// would, and returns the key.
func seedAudit(t *testing.T, s audit.Store, keyFile string) audit.Key {
	t.Helper()
	k, err := audit.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.NewLog(s, k, audit.LogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, chinaTime)
	for i, who := range []string{"housing-bureau", "tax-bureau", "employment-bureau", "housing-bureau", "stats-bureau"} {
		id := citizenid.ID("230102199001011230")
		if i%2 == 1 {
			id = "11010519491231002X"
		}
		e := audit.Entry{Time: at.Add(time.Duration(i) * time.Minute), Identity: who, Action: audit.ActionReadRecord,
			Subject: k.Subject(id), Sections: []string{"identity", "hukou"}, Purpose: "subsidy check", Status: 200, Result: "ok"}
		if who == "stats-bureau" {
			e.Action, e.Subject, e.Sections = audit.ActionStatsPull, "", nil
		}
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return k
}

// auditKeygen runs audit keygen into dir: the audit key file and the
// signing key.
func auditKeygen(t *testing.T, dir string) (keyFile, signing string) {
	t.Helper()
	keyFile, signing = filepath.Join(dir, "audit.key"), filepath.Join(dir, "signing.pem")
	if out, err := execute(t, auditCommand(), "keygen", "--key-file", keyFile, "--signing-key", signing); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	return keyFile, signing
}

// seededAuditFile sets up a file audit log as a hub leaves it: audit
// keygen run into dir, and the reads seedAudit writes appended to
// dir/audit.jsonl, closed again for the audit commands to open. It
// returns the log, the audit key file and the signing key.
// newAuditFile makes an audit key pair in dir and opens a file log there
// for appending: the log, its store (to close), its key, and the paths of
// the log, the key and the export signing key.
func newAuditFile(t *testing.T, dir string) (l *audit.Log, s *audit.File, k audit.Key, logFile, keyFile, signing string) {
	t.Helper()
	keyFile, signing = auditKeygen(t, dir)
	logFile = filepath.Join(dir, "audit.jsonl")
	s, err := audit.OpenFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if k, err = audit.LoadKey(keyFile); err != nil {
		t.Fatal(err)
	}
	if l, err = audit.NewLog(s, k, audit.LogConfig{}); err != nil {
		t.Fatal(err)
	}
	return l, s, k, logFile, keyFile, signing
}

func seededAuditFile(t *testing.T, dir string) (logFile, keyFile, signing string) {
	t.Helper()
	keyFile, signing = auditKeygen(t, dir)
	logFile = filepath.Join(dir, "audit.jsonl")
	s, err := audit.OpenFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	seedAudit(t, s, keyFile)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return logFile, keyFile, signing
}

func TestAuditCommandsFile(t *testing.T) {
	dir := t.TempDir()
	logFile, keyFile, signing := seededAuditFile(t, dir)
	target := []string{"--file", logFile, "--key-file", keyFile}

	out, err := execute(t, auditCommand(), append([]string{"verify"}, target...)...)
	if err != nil || !strings.Contains(out, "the audit log verifies") || !strings.Contains(out, "5 entries") {
		t.Fatalf("verify: %v\n%s", err, out)
	}

	out, err = execute(t, auditCommand(), append([]string{"who-read", "230102199001011230", "--from", "2026-03-01", "--to", "2026-03-01", "--identity", "ombudsman"}, target...)...)
	if err != nil {
		t.Fatalf("who-read: %v\n%s", err, out)
	}
	if !strings.Contains(out, "2301**********1230: 2 entries") || strings.Count(out, "housing-bureau") != 1 ||
		!strings.Contains(out, "employment-bureau") || strings.Contains(out, "tax-bureau") || strings.Contains(out, "230102199001011230") {
		t.Errorf("who-read output:\n%s", out)
	}
	if out, err := execute(t, auditCommand(), append([]string{"verify"}, target...)...); err != nil || !strings.Contains(out, "6 entries") {
		t.Errorf("the who-read was not recorded: %v\n%s", err, out)
	}
	if _, err := execute(t, auditCommand(), "who-read", "230102199001011231", "--file", logFile, "--key-file", keyFile); err == nil {
		t.Error("who-read accepted an invalid ID")
	}

	archive := filepath.Join(dir, "2026-03.jsonl")
	out, err = execute(t, auditCommand(), append([]string{"export", "--from", "2026-03-01", "--to", "2026-03-31", "--out", archive, "--signing-key", signing}, target...)...)
	if err != nil || !strings.Contains(out, "5 entries") { // not the who-read entry, written today
		t.Fatalf("export: %v\n%s", err, out)
	}
	out, err = execute(t, auditCommand(), "verify-export", archive, "--public-key", signing+".pub")
	if err != nil || !strings.Contains(out, "the export verifies: 5 entries") {
		t.Fatalf("verify-export: %v\n%s", err, out)
	}
	out, err = execute(t, auditCommand(), append([]string{"verify", "--manifest", archive + ".manifest.json", "--public-key", signing + ".pub"}, target...)...)
	if err != nil {
		t.Fatalf("verify --manifest: %v\n%s", err, out)
	}

	// Alter the archive: verify-export fails.
	b, _ := os.ReadFile(archive)
	os.WriteFile(archive, bytes.Replace(b, []byte("tax-bureau"), []byte("tax-bureaU"), 1), 0o644)
	out, err = execute(t, auditCommand(), "verify-export", archive, "--public-key", signing+".pub")
	if !errors.Is(err, exitError(1)) || !strings.Contains(out, "does NOT verify") {
		t.Errorf("verify-export of an altered archive: %v\n%s", err, out)
	}

	// Alter the log: verify names the entry.
	b, _ = os.ReadFile(logFile)
	lines := bytes.SplitAfter(b, []byte("\n"))
	lines[2] = bytes.Replace(lines[2], []byte("subsidy check"), []byte("curiosity"), 1)
	os.WriteFile(logFile, bytes.Join(lines, nil), 0o600)
	out, err = execute(t, auditCommand(), append([]string{"verify"}, target...)...)
	if !errors.Is(err, exitError(1)) || !strings.Contains(out, "changed   seq 3") || !strings.Contains(out, "first at seq 3") {
		t.Errorf("verify of a changed log: %v\n%s", err, out)
	}

	out, err = execute(t, auditCommand(), "purge", "--file", logFile, "--access-months", "3")
	if !errors.Is(err, audit.ErrBelowFloor) {
		t.Errorf("purge below the floor: %v\n%s", err, out)
	}
}

func TestAuditCommandsPostgres(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "audit.key")
	if err := audit.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	s, err := audit.OpenPostgres(ctx, audit.PostgresConfig{URL: testenv.PostgresURL(), Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seedAudit(t, s, keyFile)
	target := []string{"--postgres", testenv.PostgresURL(), "--schema", schema, "--key-file", keyFile}
	out, err := execute(t, auditCommand(), append([]string{"verify"}, target...)...)
	if err != nil || !strings.Contains(out, "the audit log verifies") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, err = execute(t, auditCommand(), append([]string{"who-read", "11010519491231002X"}, target...)...)
	if err != nil || !strings.Contains(out, "1101**********002X: 2 entries") || strings.Count(out, "tax-bureau") != 1 {
		t.Fatalf("who-read: %v\n%s", err, out)
	}
	// A superuser bypasses the trigger and deletes an entry.
	if _, err := s.Pool().Exec(ctx, "BEGIN; SET LOCAL session_replication_role = replica; DELETE FROM "+s.Table()+" WHERE seq = 2; COMMIT"); err != nil {
		t.Fatal(err)
	}
	out, err = execute(t, auditCommand(), append([]string{"verify"}, target...)...)
	if !errors.Is(err, exitError(1)) || !strings.Contains(out, "removed   seq 2") {
		t.Errorf("verify after a deletion: %v\n%s", err, out)
	}
}
