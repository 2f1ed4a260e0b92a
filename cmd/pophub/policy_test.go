package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/access"
)

func runPolicy(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := policyCommand()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), errb.String(), err
}

const example = "../../ops/policy.example.yaml"

func TestPolicyCommands(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 2\nidentities:\n  - name: tax\n    kind: department\n    read: [salary]\n    credentials: {token: hunter2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantOut  []string
		wantErr  []string
		wantExit bool
	}{
		{name: "check example", args: []string{"check", example}, wantOut: []string{"valid"}},
		{name: "check bad lists every problem", args: []string{"check", bad}, wantExit: true,
			wantErr: []string{"version: want 1", `identities[0] "tax": read[0]: unknown section "salary"`, "field token not found", "exactly one identity of kind hub"}},
		{name: "explain", args: []string{"explain", "--policy", example, "--identity", "si-harbin"},
			wantOut: []string{"si-harbin (subscriber)", "pop.death.23.2301.*", "$JS.API.CONSUMER.CREATE.POP.si-harbin.pop.death.23.2301.*"}},
		{name: "explain unknown", args: []string{"explain", "--policy", example, "--identity", "nobody"}, wantExit: true},
		{name: "hash-token", stdin: "secret\n", args: []string{"hash-token"}, wantOut: []string{access.HashToken("secret")}},
		{name: "new-token", args: []string{"new-token"}, wantOut: []string{"token:        pophub_", "token_sha256: "}},
		{name: "hash-password", stdin: "pw\n", args: []string{"hash-password", "--iterations", "4096"}, wantOut: []string{"$2a$11$", "iterations: 4096"}},
		{name: "nats-config", args: []string{"nats-config", "--policy", example}, wantOut: []string{"authorization {", `user: "si-harbin"`}},
		{name: "kafka-acls", args: []string{"kafka-acls", "--policy", example}, wantOut: []string{"--allow-principal User:health --operation Write --operation Describe --topic pop.events.health"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runPolicy(t, tc.stdin, tc.args...)
			if (err != nil) != tc.wantExit {
				t.Fatalf("err = %v, want exit %v\n%s", err, tc.wantExit, errOut)
			}
			var ex exitError
			if tc.wantExit && len(tc.wantErr) > 0 && !errors.As(err, &ex) {
				t.Errorf("err = %v, want an exit status", err)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestPolicyFileRequired: the commands that render or explain a policy
// name the flag they lack rather than read a file of the working
// directory, so the example's grants never stand in for a real policy.
func TestPolicyFileRequired(t *testing.T) {
	t.Setenv("POPHUB_POLICY", "")
	for _, sub := range []string{"kafka-acls", "nats-config", "explain"} {
		args := []string{sub}
		if sub == "explain" {
			args = append(args, "--identity", "si-harbin")
		}
		out, _, err := runPolicy(t, "", args...)
		if err == nil || !strings.Contains(err.Error(), "give --policy FILE or set POPHUB_POLICY") || out != "" {
			t.Errorf("policy %s without --policy: %v, output %q", sub, err, out)
		}
	}
	t.Setenv("POPHUB_POLICY", example)
	if out, _, err := runPolicy(t, "", "kafka-acls"); err != nil || !strings.Contains(out, "User:health") {
		t.Errorf("policy kafka-acls with POPHUB_POLICY: %v, %q", err, out)
	}
}

// TestPolicyDemoEnv: the exports `policy demo-env` prints for the example
// policy resolve every Kafka password reference to a password its SCRAM
// keys accept, so `pophub dev --policy` starts after eval; a policy whose
// keys are not the demo's is refused rather than given guesses.
func TestPolicyDemoEnv(t *testing.T) {
	out, err := execute(t, policyCommand(), "demo-env", "../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok || !strings.HasPrefix(line, "export ") {
			t.Fatalf("line %q is not an export", line)
		}
		t.Setenv(name, strings.Trim(value, "'"))
		set++
	}
	p, err := access.Load("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.VerifySecrets(access.ResolveSecret); err != nil {
		t.Errorf("after the %d exports: %v", set, err)
	}
	if got, want := os.Getenv("POPHUB_NATS_PASSWORD"), access.DemoSecret("nats:"+p.Hub().Name); got != want {
		t.Errorf("POPHUB_NATS_PASSWORD = %q, want the hub's demo NATS password", got)
	}

	other := filepath.Join(t.TempDir(), "policy.yaml")
	b, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Another password reference for the hub: its keys no longer match.
	b = bytes.Replace(b, []byte("password: env:POPHUB_KAFKA_PW_HUB"), []byte("password: env:POPHUB_KAFKA_PW_REAL_HUB"), 1)
	if err := os.WriteFile(other, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := execute(t, policyCommand(), "demo-env", other); err == nil || !strings.Contains(err.Error(), "does not hold the demo's secrets") {
		t.Errorf("a policy with other keys: %v\n%s", err, out)
	}
}

// TestSISubscriberDefaultPurposeIsAllowed: the subscriber's default
// X-Purpose is one the example policy lets si-harbin act for, so the
// README's run under that policy bootstraps without --purpose.
func TestSISubscriberDefaultPurposeIsAllowed(t *testing.T) {
	t.Setenv("POPHUB_SI_PURPOSE", "")
	p, err := access.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	id, ok := p.Identity("si-harbin")
	if !ok {
		t.Fatal("no si-harbin in the example policy")
	}
	cmd := siSubscriberCommand(func() *slog.Logger { return slog.New(slog.DiscardHandler) })
	f := cmd.Flags().Lookup("purpose")
	if f == nil || !slices.Contains(id.Purposes, f.DefValue) {
		t.Fatalf("si-subscriber --purpose default %v; si-harbin may act for %q", f, id.Purposes)
	}
}
