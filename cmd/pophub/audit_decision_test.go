package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// trailOf writes accesses through the hub's own accessAuditor, as the
// authorizer hands them over, into dir/audit.jsonl, and returns the log
// file and its key file.
func trailOf(t *testing.T, dir string, accs ...access.Access) (logFile, keyFile string) {
	t.Helper()
	keyFile, _ = auditKeygen(t, dir)
	k, err := audit.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	logFile = filepath.Join(dir, "audit.jsonl")
	s, err := audit.OpenFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.NewLog(s, k, audit.LogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a := accessAuditor{log: l, key: k, logger: slog.New(slog.DiscardHandler)}
	for _, x := range accs {
		a.Record(context.Background(), x)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	return logFile, keyFile
}

// TestAuditEligibilityDecisionKeptThreeYears: an eligibility decision is
// recorded as decide_eligibility, a processing record: `audit purge` seven
// months later keeps it, for the person decided and for a relative the
// decision listed, and who-read still finds both.
func TestAuditEligibilityDecisionKeptThreeYears(t *testing.T) {
	if got := auditAction(api.RouteEligibility, 200); got != audit.ActionDecideEligibility || got.Class() != audit.ClassProcessing {
		t.Fatalf("the eligibility route is recorded as %s (class %d), want %s, a processing record",
			got, got.Class(), audit.ActionDecideEligibility)
	}
	dir := t.TempDir()
	id, spouse := citizenid.ID("230102199001011230"), citizenid.ID("230102199001011249")
	at := time.Now().AddDate(0, -7, 0)
	decision := access.Access{Identity: "housing-bureau", Route: api.RouteEligibility, CitizenID: id,
		Sections: []schemas.Section{schemas.SecHukou, schemas.SecHousing}, Purpose: "settlement application", Status: 200, Time: at}
	listed := decision
	listed.CitizenID, listed.Detail = spouse, "eligibility decision: listed as family member"
	logFile, keyFile := trailOf(t, dir, decision, listed)
	if out, err := execute(t, auditCommand(), "purge", "--file", logFile); err != nil {
		t.Fatalf("purge: %v\n%s", err, out)
	}
	for _, who := range []citizenid.ID{id, spouse} {
		out, err := execute(t, auditCommand(), "who-read", string(who), "--file", logFile, "--key-file", keyFile)
		if err != nil {
			t.Fatalf("who-read: %v\n%s", err, out)
		}
		if !strings.Contains(out, "1 entries") || !strings.Contains(out, "housing-bureau") || !strings.Contains(out, "decide_eligibility") {
			t.Errorf("7 months after an eligibility decision, who-read does not find it:\n%s", out)
		}
	}
}

// TestAuditWhoReadSaysWhatWasDone: who-read tells a record read, a
// decision about the citizen and the citizen's listing as family member
// in another person's decision apart, by action and by the entry's
// detail; a citizen ID in a detail is printed masked, as in a purpose.
func TestAuditWhoReadSaysWhatWasDone(t *testing.T) {
	dir := t.TempDir()
	id := citizenid.ID("230102199001011230")
	now := time.Now().Add(-time.Hour)
	read := access.Access{Identity: "housing-bureau", Route: api.RoutePerson, CitizenID: id,
		Sections: []schemas.Section{schemas.SecIdentity}, Purpose: "p-read", Status: 200, Time: now}
	decision := read
	decision.Route, decision.Purpose, decision.Time = api.RouteEligibility, "p-decision", now.Add(time.Second)
	family := decision
	family.Purpose, family.Time, family.Detail = "p-family", now.Add(2*time.Second), "eligibility decision: listed as family member"
	odd := read
	odd.Purpose, odd.Time, odd.Detail = "p-odd", now.Add(3*time.Second), "about "+string(id)
	logFile, keyFile := trailOf(t, dir, read, decision, family, odd)
	out, err := execute(t, auditCommand(), "who-read", string(id), "--file", logFile, "--key-file", keyFile)
	if err != nil {
		t.Fatalf("who-read: %v\n%s", err, out)
	}
	lines := map[string]string{}
	for line := range strings.Lines(out) {
		for _, p := range []string{"p-read", "p-decision", "p-family", "p-odd"} {
			if strings.Contains(line, `"`+p+`"`) {
				lines[p] = line
			}
		}
	}
	for _, tc := range []struct {
		purpose string
		want    []string
		not     []string
	}{
		{"p-read", []string{"read_record"}, []string{"detail", "eligibility"}},
		{"p-decision", []string{"decide_eligibility", `detail "eligibility decision"`}, nil},
		{"p-family", []string{"decide_eligibility", `detail "eligibility decision: listed as family member"`}, nil},
		{"p-odd", []string{`detail "about ` + id.Masked() + `"`}, []string{string(id)}},
	} {
		line, ok := lines[tc.purpose]
		if !ok {
			t.Errorf("%s: no who-read line:\n%s", tc.purpose, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: the line lacks %q: %s", tc.purpose, w, line)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(line, n) {
				t.Errorf("%s: the line holds %q: %s", tc.purpose, n, line)
			}
		}
	}
}

// TestRefusedEligibilityIsNoDecision: a request to the eligibility route
// that was refused (403: a purpose not allowed; 400: no such policy)
// decided nothing and read no record. It is recorded as a refused read, an
// access kept 6 months, and who-read does not tell the citizen that a
// decision was made about them.
func TestRefusedEligibilityIsNoDecision(t *testing.T) {
	dir := t.TempDir()
	id := citizenid.ID("230102199001011230")
	at := time.Now().AddDate(0, -1, 0)
	refused := access.Access{Identity: "housing-bureau", Route: api.RouteEligibility, CitizenID: id,
		Purpose: "curiosity", Status: 403, Time: at}
	invalid := refused
	invalid.Status, invalid.Purpose, invalid.Time = 400, "settlement application", at.Add(time.Minute)
	logFile, keyFile := trailOf(t, dir, refused, invalid)
	out, err := execute(t, auditCommand(), "who-read", string(id), "--file", logFile, "--key-file", keyFile)
	if err != nil {
		t.Fatalf("who-read: %v\n%s", err, out)
	}
	lines := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "housing-bureau") {
			continue
		}
		lines++
		if strings.Contains(line, "decide_eligibility") || strings.Contains(line, `"eligibility decision"`) ||
			!strings.Contains(line, "no decision made") {
			t.Errorf("a refused eligibility request is shown to the citizen as a decision:\n%s", line)
		}
	}
	if lines != 2 {
		t.Errorf("who-read shows %d refused requests, want 2:\n%s", lines, out)
	}
	if got := auditAction(api.RouteEligibility, 403); got.Class() != audit.ClassAccess {
		t.Errorf("a refused eligibility request is %s, of class %d; want an access entry", got, got.Class())
	}
}
