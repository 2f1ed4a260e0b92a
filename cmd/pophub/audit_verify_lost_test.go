package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditVerifyRefusesAnEmptiedLogBesideItsMark: a file log emptied
// (or restored empty) beside its .last-policy mark is one the hub refuses
// to start on; `audit verify`, which auditors run on the copy they were
// handed, says the same and exits non-zero instead of "the audit log
// verifies".
func TestAuditVerifyRefusesAnEmptiedLogBesideItsMark(t *testing.T) {
	dataDir := t.TempDir()
	cfg := Config{DataDir: dataDir}
	if err := openHubAudit(t, cfg); err != nil {
		t.Fatalf("first start: %v", err)
	}
	logFile := filepath.Join(dataDir, "audit.jsonl")
	keyFile := filepath.Join(dataDir, "audit.key")
	out, err := execute(t, auditCommand(), "verify", "--file", logFile, "--key-file", keyFile)
	if err != nil {
		t.Fatalf("audit verify of the intact log: %v\n%s", err, out)
	}
	if err := os.Truncate(logFile, 0); err != nil {
		t.Fatal(err)
	}
	if err := openHubAudit(t, cfg); err == nil {
		t.Fatal("precondition: the hub should refuse this directory")
	}
	out, err = execute(t, auditCommand(), "verify", "--file", logFile, "--key-file", keyFile)
	if err == nil {
		t.Fatalf("audit verify of a log emptied beside its mark %s succeeded:\n%s", logFile+".last-policy", out)
	}
	if !strings.Contains(out, "emptied or lost") || !strings.Contains(out, ".last-policy") {
		t.Errorf("audit verify's output does not say the log was emptied beside its mark:\n%s", out)
	}
}
