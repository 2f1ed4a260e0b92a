package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestAuditReversedRange: `audit who-read ID --from 2026-12-31 --to
// 2026-01-01` (the dates swapped) answered "0 entries" and exited 0
// although the log held a read in the year meant, and `audit export`
// failed with "no audit entries in the range". A range that ends before it
// begins is refused naming --from and --to, before the log is opened or
// the look-up recorded; a single day (--from D --to D) is a range.
func TestAuditReversedRange(t *testing.T) {
	dir := t.TempDir()
	l, s, k, logFile, keyFile, signing := newAuditFile(t, dir)
	ctx := context.Background()
	id := citizenid.ID("230102199001011230")
	if err := l.Append(ctx, audit.Entry{Time: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), Identity: "housing-bureau",
		Action: audit.ActionReadRecord, Subject: k.Subject(id), Purpose: "subsidy check", Status: 200, Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()

	whoRead := []string{"who-read", string(id), "--file", logFile, "--key-file", keyFile}
	export := []string{"export", "--file", logFile, "--signing-key", signing, "--out", filepath.Join(dir, "export.jsonl")}
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
		wantOut string
	}{
		{"who-read reversed", slices.Concat(whoRead, []string{"--from", "2026-12-31", "--to", "2026-01-01"}),
			"--from 2026-12-31 is not before --to 2026-01-01: the range is empty", ""},
		{"who-read same instant", slices.Concat(whoRead, []string{"--from", "2026-06-01T00:00:00Z", "--to", "2026-06-01T00:00:00Z"}),
			"--from 2026-06-01T00:00:00Z is not before --to 2026-06-01T00:00:00Z: the range is empty", ""},
		{"who-read one day", slices.Concat(whoRead, []string{"--from", "2026-06-01", "--to", "2026-06-01"}), "", "1 entries"},
		{"export reversed", slices.Concat(export, []string{"--from", "2026-12-31", "--to", "2026-01-01"}),
			"--from 2026-12-31 is not before --to 2026-01-01: the range is empty", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(t, auditCommand(), tc.args...)
			if tc.wantErr == "" {
				if err != nil || !strings.Contains(out, tc.wantOut) {
					t.Errorf("error %v, want output holding %q\n%s", err, tc.wantOut, out)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("error %v, want %q\n%s", err, tc.wantErr, out)
			}
		})
	}
}
