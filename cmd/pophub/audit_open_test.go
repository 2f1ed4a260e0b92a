package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
)

// TestAuditExportNeverOverwrites: 'audit export --out' creates a new file
// and removes on failure only what it created. Before, it opened --out
// with os.Create and removed it when the export failed, so an --out
// naming the live log (by its path, a relative path or a symlink)
// truncated the hash-chained trail and then deleted it, and an earlier
// archive at that path was overwritten or deleted.
func TestAuditExportNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	logFile, keyFile, signing := seededAuditFile(t, dir)
	logBefore := readFile(t, logFile)

	earlier := filepath.Join(dir, "2026-02.jsonl")
	if err := os.WriteFile(earlier, []byte("an earlier archive\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(logFile, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)

	tests := []struct {
		name, out, from, to, want string
	}{
		{"the log's own path", logFile, "2026-03-01", "2026-03-31", "is the audit log itself"},
		{"the log by a relative path", "./audit.jsonl", "2026-03-01", "2026-03-31", "is the audit log itself"},
		{"a symlink to the log", link, "2026-03-01", "2026-03-31", "is the audit log itself"},
		// An empty period fails after the archive is opened: before, the
		// earlier archive was truncated and then removed.
		{"the log, for a period with no entries", logFile, "2025-01-01", "2025-01-31", "is the audit log itself"},
		{"an earlier archive", earlier, "2026-03-01", "2026-03-31", "exists"},
		{"an earlier archive, for a period with no entries", earlier, "2025-01-01", "2025-01-31", "exists"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(t, auditCommand(), "export", "--file", logFile, "--key-file", keyFile, "--signing-key", signing,
				"--from", tc.from, "--to", tc.to, "--out", tc.out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("export --out %s: %v, want an error saying %q\n%s", tc.out, err, tc.want, out)
			}
			if got := readFile(t, logFile); !bytes.Equal(got, logBefore) {
				t.Fatalf("the audit log changed: %d bytes, was %d", len(got), len(logBefore))
			}
			if got := readFile(t, earlier); string(got) != "an earlier archive\n" {
				t.Fatalf("the earlier archive changed: %q", got)
			}
		})
	}

	// A manifest left at the new name is not overwritten either, and the
	// archive is not written.
	stale := filepath.Join(dir, "stale.jsonl")
	if err := os.WriteFile(stale+".manifest.json", []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := execute(t, auditCommand(), "export", "--file", logFile, "--signing-key", signing,
		"--from", "2026-03-01", "--to", "2026-03-31", "--out", stale); err == nil {
		t.Errorf("export over an existing manifest succeeded\n%s", out)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the archive was written next to a manifest it could not write")
	}

	// A failing export removes the archive it created, and a good one
	// writes a new file, readable by its owner only.
	fresh := filepath.Join(dir, "2025-01.jsonl")
	if _, err := execute(t, auditCommand(), "export", "--file", logFile, "--signing-key", signing,
		"--from", "2025-01-01", "--to", "2025-01-31", "--out", fresh); err == nil {
		t.Error("export of an empty period succeeded")
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Error("a failed export left its archive")
	}
	archive := filepath.Join(dir, "2026-03.jsonl")
	out, err := execute(t, auditCommand(), "export", "--file", logFile, "--signing-key", signing,
		"--from", "2026-03-01", "--to", "2026-03-31", "--out", archive)
	if err != nil || !strings.Contains(out, "5 entries") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if st, err := os.Stat(archive); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("archive: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	if out, err := execute(t, auditCommand(), "verify-export", archive, "--public-key", signing+".pub"); err != nil {
		t.Errorf("verify-export: %v\n%s", err, out)
	}
}

// TestAuditCommandsNeedAnExistingLog: every audit command that reads a
// log refuses one that is not there, creating nothing. Before, a mistyped
// --file created the file (and its directories) and a mistyped --schema
// the audit tables, and the command reported "the audit log verifies" or
// "0 entries" with exit status 0; who-read even wrote its own entry into
// the new log.
func TestAuditCommandsNeedAnExistingLog(t *testing.T) {
	dir := t.TempDir()
	keyFile, signing := auditKeygen(t, dir)
	missing := filepath.Join(dir, "typo", "audit.jsonl")
	schema := testenv.Schema(t) // named for the test, not created
	url := testenv.PostgresURL()

	commands := []struct {
		name string
		args []string
	}{
		{"verify", []string{"verify", "--key-file", keyFile}},
		{"who-read", []string{"who-read", "230102199001011230", "--key-file", keyFile}},
		{"export", []string{"export", "--from", "2026-03-01", "--to", "2026-03-31", "--out", filepath.Join(dir, "q1.jsonl"), "--signing-key", signing}},
		{"policy-changes", []string{"policy-changes"}},
		{"purge", []string{"purge"}},
	}
	for _, c := range commands {
		t.Run(c.name+" --file", func(t *testing.T) {
			out, err := execute(t, auditCommand(), append(c.args, "--file", missing)...)
			want := "no audit log at " + missing + "; is the path right?"
			if err == nil || err.Error() != want {
				t.Errorf("%v, want %q\n%s", err, want, out)
			}
			if _, err := os.Stat(filepath.Dir(missing)); err == nil {
				t.Fatal("the command created the log's directory")
			}
		})
		t.Run(c.name+" --schema", func(t *testing.T) {
			out, err := execute(t, auditCommand(), append(c.args, "--postgres", url, "--schema", schema)...)
			if err == nil || !strings.Contains(err.Error(), "no audit log in schema") {
				t.Errorf("%v, want no audit log\n%s", err, out)
			}
			if schemaExists(t, url, schema) {
				t.Fatal("the command created the schema")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "q1.jsonl")); err == nil {
		t.Error("export wrote an archive of a log that is not there")
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// schemaExists reports whether the database has schema.
func schemaExists(t *testing.T, url, schema string) bool {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var ok bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}
