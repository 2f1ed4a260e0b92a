package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestAuditPurgeRedactsBehindProcessingRecord: `pophub audit purge` on a
// hub with the gateway: a gateway request a year old is kept 3 years, and
// the reads after it that are past 6 months lose their content anyway.
// The output says what was deleted and redacted per class, and the log
// still verifies and answers who-read.
func TestAuditPurgeRedactsBehindProcessingRecord(t *testing.T) {
	dir := t.TempDir()
	l, s, k, logFile, keyFile, _ := newAuditFile(t, dir)
	ctx := context.Background()
	now := time.Now()
	id := citizenid.ID("230102199001011230")
	read := func(at time.Time) audit.Entry {
		return audit.Entry{Time: at, Identity: "housing-bureau", Action: audit.ActionReadRecord, Subject: k.Subject(id),
			Purpose: "subsidy check", Status: 200, Result: "ok"}
	}
	for _, e := range []audit.Entry{
		{Time: now.AddDate(-1, 0, 0), Identity: "housing", Action: actionPublishEvents, Status: 202, Result: "ok"},
		read(now.AddDate(0, -9, 0)),
		read(now.AddDate(0, -8, 0)),
		{Time: now.AddDate(0, -7, 0), Identity: "(unidentified)", Action: auditAction(api.RouteUnmatched, 401), Status: 401, Result: "denied"},
		read(now.AddDate(0, 0, -1)),
	} {
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()

	out, err := execute(t, auditCommand(), "purge", "--file", logFile)
	if err != nil || !strings.Contains(out, "access entries past 6 months: 0 deleted, 3 redacted") ||
		!strings.Contains(out, "processing records past 36 months: 0 deleted, 0 redacted") {
		t.Fatalf("purge: %v\n%s", err, out)
	}
	out, err = execute(t, auditCommand(), "verify", "--file", logFile, "--key-file", keyFile)
	if err != nil || !strings.Contains(out, "the audit log verifies") || !strings.Contains(out, "3 of the entries are redacted") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, err = execute(t, auditCommand(), "who-read", string(id), "--file", logFile, "--key-file", keyFile)
	if err != nil || !strings.Contains(out, "1 entries") {
		t.Fatalf("who-read: %v\n%s", err, out)
	}
}

// TestAuditActionClass: a request that matched no route (401, 404, 405)
// touched no personal data and is an access log entry, kept 6 months; a
// gateway request is a processing record, kept 3 years.
func TestAuditActionClass(t *testing.T) {
	for _, tc := range []struct {
		route string
		want  audit.Class
	}{
		{api.RouteUnmatched, audit.ClassAccess},
		{api.RoutePerson, audit.ClassAccess},
		{api.RouteUrbanRural, audit.ClassAccess},
		{access.RouteEvents, audit.ClassProcessing},
	} {
		if got := auditAction(tc.route, 200).Class(); got != tc.want {
			t.Errorf("%s: %s is class %d, want %d", tc.route, auditAction(tc.route, 200), got, tc.want)
		}
	}
}
