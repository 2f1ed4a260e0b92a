package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestAuditPurgeRetentionBelowFloor: `audit purge --processing-months 0`,
// meant as "keep the processing records", was read as the legal floor and
// deleted every record older than it, for good; and a very large count,
// another way of asking to keep everything, wrapped the cut-off round to
// a recent time and deleted entries of yesterday. A retention below the
// floor, 0 included, or above a hundred years, is refused naming the
// flag, and the log is left as it was.
func TestAuditPurgeRetentionBelowFloor(t *testing.T) {
	tests := []struct {
		flag, value, want string
		cause             error
	}{
		{"--access-months", "0", `--access-months 0: retention below the legal floor: want at least 6 (Cybersecurity Law art. 21); 0 does not mean "keep for ever"`, audit.ErrBelowFloor},
		{"--access-months", "-1", "--access-months -1: retention below the legal floor: want at least 6", audit.ErrBelowFloor},
		{"--access-months", "5", "--access-months 5: retention below the legal floor: want at least 6", audit.ErrBelowFloor},
		{"--processing-months", "0", `--processing-months 0: retention below the legal floor: want at least 36 (PIPL art. 56); 0 does not mean "keep for ever"`, audit.ErrBelowFloor},
		{"--processing-months", "35", "--processing-months 35: retention below the legal floor: want at least 36 (PIPL art. 56)", audit.ErrBelowFloor},
		{"--processing-months", "999999999999999", "--processing-months 999999999999999: retention above a hundred years: want at most 1200", audit.ErrAboveCeiling},
		{"--access-months", "9223372036854775807", "--access-months 9223372036854775807: retention above a hundred years", audit.ErrAboveCeiling},
	}
	for _, tc := range tests {
		t.Run(tc.flag+" "+tc.value, func(t *testing.T) {
			dir := t.TempDir()
			l, s, k, logFile, _, _ := newAuditFile(t, dir)
			ctx := context.Background()
			now := time.Now()
			for _, e := range []audit.Entry{
				{Time: now.AddDate(-4, 0, 0), Identity: "housing", Action: actionPublishEvents, Status: 202, Result: "ok"},
				{Time: now.AddDate(0, -9, 0), Identity: "housing-bureau", Action: audit.ActionReadRecord,
					Subject: k.Subject(citizenid.ID("230102199001011230")), Purpose: "subsidy check", Status: 200, Result: "ok"},
			} {
				if err := l.Append(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			s.Close()
			before, err := os.ReadFile(logFile)
			if err != nil {
				t.Fatal(err)
			}

			out, err := execute(t, auditCommand(), "purge", "--file", logFile, tc.flag, tc.value)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !errors.Is(err, tc.cause) {
				t.Fatalf("error %v, want one starting %q\n%s", err, tc.want, out)
			}
			if after, _ := os.ReadFile(logFile); string(after) != string(before) {
				t.Errorf("the refused purge changed the log")
			}
		})
	}
}
