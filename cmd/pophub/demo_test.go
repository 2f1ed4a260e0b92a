package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the README's first command on a small population: it must
// end without error (its own checks: the counts add up, every malformed
// record is rejected) and print each part of its summary.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	opts := demoOptions{Persons: 400, Months: 24, Seed: 3, SIPostgres: postgresURL(), Timeout: 3 * time.Minute}
	if err := runDemo(context.Background(), &out, testLogger(t), opts); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"What the hub did", "unknown_address_code", "golden records", "notifications",
		"Registered population of 哈尔滨市", "tasks created", "completed task",
		"not yet: insurance", "the hub announces on pop.eligibility.heilongjiang_daqing.23.2306.230602", "ELIGIBLE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's summary lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDemoWithPolicy runs the demo with the example access policy: every
// department publishes with its own Kafka credentials, every reader uses
// its own token and purpose, and the audit trail answers who read the
// newcomer.
func TestDemoWithPolicy(t *testing.T) {
	var out bytes.Buffer
	opts := demoOptions{Persons: 300, Months: 24, Seed: 5, Timeout: 3 * time.Minute, Policy: examplePolicy}
	if err := runDemo(context.Background(), &out, testLogger(t), opts); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"uses its own credentials", "What the hub did", "unknown_address_code",
		"Registered population of 哈尔滨市", "ELIGIBLE", "Who looked at", `public_security  read_record  200 purpose "settlement application"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's summary lacks %q:\n%s", want, out.String())
		}
	}
}
