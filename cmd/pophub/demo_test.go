package main

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/consumers/socialinsurance"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestDemo runs the README's first command on a small population: it must
// end without error (its own checks: the counts add up, every malformed
// record is rejected) and print each part of its summary.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	opts := demoOptions{Persons: 400, Months: 24, Seed: 3, SIPostgres: testenv.PostgresURL(), Timeout: 3 * time.Minute}
	if err := runDemo(context.Background(), &out, testLogger(t), opts); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"What the hub did", "unknown_address_code", "golden records", "notifications",
		"Registered population of 哈尔滨市", "tasks created", "completed task",
		"the hub announces on pop.eligibility.heilongjiang_daqing.23.2306.230602", "ELIGIBLE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's summary lacks %q:\n%s", want, out.String())
		}
	}
	// Before the last contribution the clerk sees exactly one shortfall:
	// the month of insurance, not whatever the hub had applied so far.
	var notYet []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "not yet:") {
			notYet = append(notYet, strings.TrimSpace(line))
		}
	}
	if want := "not yet: insurance — missing 1 more month of pension insurance (employee scheme)"; len(notYet) != 1 || notYet[0] != want {
		t.Errorf("before the last contribution the demo shows %q, want only %q", notYet, want)
	}
}

// TestDemoWithPolicy runs the demo with the example access policy: every
// department publishes with its own Kafka credentials, every reader uses
// its own token and purpose, and the audit trail answers who read the
// newcomer. Harbin's social-insurance bureau runs as identity si-harbin
// with a durable consumer per filter, creates tasks, completes a transfer
// through the social_insurance department's Kafka user, and reads the
// person back with its own token, seeing only its sections. si-harbin
// may not list the stream's consumers: the SDK warns once, and neither
// it nor the embedded NATS server logs that expected refusal as an error.
func TestDemoWithPolicy(t *testing.T) {
	var out bytes.Buffer
	var logs testenv.LogBuffer
	log := slog.New(slog.NewMultiHandler(testLogger(t).Handler(), slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	opts := demoOptions{Persons: 300, Months: 24, Seed: 5, SIPostgres: testenv.PostgresURL(), Timeout: 3 * time.Minute, Policy: examplePolicy}
	if err := runDemo(context.Background(), &out, log, opts); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if got := strings.Count(logs.String(), "may not list the stream's consumers"); got != 1 {
		t.Errorf("si-harbin warned %d times that it may not list consumers, want once; logs:\n%s", got, logs.String())
	}
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "level=ERROR") && strings.Contains(line, "CONSUMER.LIST") {
			t.Errorf("the expected refusal to list consumers logged as an error: %s", line)
		}
	}
	for _, want := range []string{"uses its own credentials", "What the hub did", "unknown_address_code",
		"Registered population of 哈尔滨市", "ELIGIBLE", "Who looked at", `public_security  decide_eligibility 200 purpose "settlement application"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's summary lacks %q:\n%s", want, out.String())
		}
	}

	// The social-insurance section, up to the next one.
	text := out.String()
	start := strings.Index(text, "Social-insurance bureau of")
	if start < 0 {
		t.Fatalf("no social-insurance section:\n%s", text)
	}
	si := text[start:]
	if end := strings.Index(si, "\n\n"); end >= 0 {
		si = si[:end]
	}
	for _, f := range socialinsurance.Filters(demoRegion) {
		subj := f.Subject("pop")
		if want := schemas.FilterConsumerName(demoBureau, subj); !strings.Contains(si, want+" ") || !strings.Contains(si, subj) {
			t.Errorf("the social-insurance section does not show consumer %s on %s:\n%s", want, subj, si)
		}
	}
	m := regexp.MustCompile(`tasks created +(\d+) \(transfer_out (\d+),`).FindStringSubmatch(si)
	if m == nil {
		t.Fatalf("the social-insurance section reports no tasks:\n%s", si)
	}
	if tasks, _ := strconv.Atoi(m[1]); tasks == 0 {
		t.Errorf("no task created:\n%s", si)
	}
	if out, _ := strconv.Atoi(m[2]); out == 0 {
		t.Errorf("no transfer_out task to complete:\n%s", si)
	}
	for _, want := range []string{"as identity si-harbin (NATS user si-harbin)", "completed task", "sent back as social_insurance.transferred",
		"as si-harbin reads it", `"social_insurance": {`} {
		if !strings.Contains(si, want) {
			t.Errorf("the social-insurance section lacks %q:\n%s", want, si)
		}
	}
	// si-harbin reads identity, hukou, status and social_insurance only.
	for _, hidden := range []string{`"marital"`, `"employment"`, `"education"`, `"housing"`, `"tax"`, `"residence_permits"`} {
		if strings.Contains(si, hidden) {
			t.Errorf("si-harbin was shown %s, which it may not read:\n%s", hidden, si)
		}
	}
}

// TestDemoSIPostgresReadsItsOwnVariable: the demo's social-insurance
// subscriber takes its database from POPHUB_SI_POSTGRES, as si-subscriber
// does, not from the hub's POPHUB_POSTGRES, so that one shell can point
// the two at different databases.
func TestDemoSIPostgresReadsItsOwnVariable(t *testing.T) {
	const hubPG, siPG = "postgres://hub@127.0.0.1:5432/hub", "postgres://si@127.0.0.1:5432/si"
	t.Setenv("POPHUB_POSTGRES", hubPG)
	t.Setenv("POPHUB_SI_POSTGRES", siPG)
	f := demoCommand(func() *slog.Logger { return slog.New(slog.DiscardHandler) }).Flags().Lookup("si-postgres")
	if f == nil || f.DefValue != siPG {
		t.Fatalf("pophub demo --si-postgres defaults to %v, want POPHUB_SI_POSTGRES's %s", f, siPG)
	}
	if !strings.Contains(f.Usage, "POPHUB_SI_POSTGRES") {
		t.Errorf("--si-postgres help %q does not name POPHUB_SI_POSTGRES", f.Usage)
	}
}
