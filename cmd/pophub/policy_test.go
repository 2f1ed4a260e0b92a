package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/internal/testenv"
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
		{name: "nats-config", args: []string{"nats-config", "--policy", example}, wantOut: []string{"accounts {", `"si-harbin" {`, `user: "si-harbin"`}},
		{name: "kafka-acls", args: []string{"kafka-acls", "--policy", example}, wantOut: []string{"--allow-principal User:health --operation Write --operation Describe --topic pop.events.health", "# It only adds"}},
		{name: "kafka-acls from the previous policy", args: []string{"kafka-acls", "--policy", example, "--previous", example},
			wantOut: []string{"--add --allow-principal User:health --operation Write --operation Describe --topic pop.events.health"}},
		{name: "kafka-acls with a bad previous policy", args: []string{"kafka-acls", "--policy", example, "--previous", bad}, wantExit: true},
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

// demoExports runs `policy demo-env` on policy and returns its exports by
// name, failing on a line that is neither an export nor a comment.
func demoExports(t *testing.T, policy string) map[string]string {
	t.Helper()
	out, err := execute(t, policyCommand(), "demo-env", policy)
	if err != nil {
		t.Fatal(err)
	}
	exports := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok || !strings.HasPrefix(line, "export ") {
			t.Fatalf("line %q is not an export", line)
		}
		exports[name] = strings.Trim(value, "'")
	}
	return exports
}

// TestPolicyDemoEnvTokens: after eval of `policy demo-env`, a newcomer on
// `pophub dev --policy ops/policy.example.yaml` has every example
// identity's bearer token, POPHUB_TOKEN_<IDENTITY>, and it is the one the
// hub takes for that identity: /v1 reads, status, stats and eligibility
// answer 401 to any other.
func TestPolicyDemoEnvTokens(t *testing.T) {
	exports := demoExports(t, example)
	p, err := access.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	a, err := access.NewAuthorizer(access.AuthorizerConfig{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	identify := func(token string) (access.Identity, error) {
		r := httptest.NewRequest("GET", "/v1/status", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return a.Identify(r)
	}
	tests := []struct{ identity, env string }{
		{"public_security", "POPHUB_TOKEN_PUBLIC_SECURITY"},
		{"health", "POPHUB_TOKEN_HEALTH"},
		{"employment", "POPHUB_TOKEN_EMPLOYMENT"},
		{"social_insurance", "POPHUB_TOKEN_SOCIAL_INSURANCE"},
		{"education", "POPHUB_TOKEN_EDUCATION"},
		{"housing", "POPHUB_TOKEN_HOUSING"},
		{"tax", "POPHUB_TOKEN_TAX"},
		{"marriage", "POPHUB_TOKEN_MARRIAGE"},
		{"si-harbin", "POPHUB_TOKEN_SI_HARBIN"},
		{"stats-bureau", "POPHUB_TOKEN_STATS_BUREAU"},
		{"researcher", "POPHUB_TOKEN_RESEARCHER"},
		{"admin", "POPHUB_TOKEN_ADMIN"},
	}
	for _, id := range p.Identities {
		if len(id.Credentials.TokenSHA256) > 0 && !slices.ContainsFunc(tests, func(tc struct{ identity, env string }) bool { return tc.identity == id.Name }) {
			t.Errorf("the example's %s has a token the test does not look for", id.Name)
		}
	}
	for _, tc := range tests {
		t.Run(tc.identity, func(t *testing.T) {
			token, ok := exports[tc.env]
			if !ok {
				t.Fatalf("no export of %s", tc.env)
			}
			got, err := identify(token)
			if err != nil || got.Name != tc.identity {
				t.Fatalf("%s identifies %q, %v; want %s", tc.env, got.Name, err, tc.identity)
			}
			if _, err := identify(token + "x"); !errors.Is(err, api.ErrUnauthenticated) {
				t.Errorf("a wrong token: %v, want unauthenticated", err)
			}
		})
	}
	for name := range exports {
		if strings.HasPrefix(name, "POPHUB_TOKEN_") && !slices.ContainsFunc(tests, func(tc struct{ identity, env string }) bool { return tc.env == name }) {
			t.Errorf("%s is exported, but no identity of the example has that token", name)
		}
	}

	// A policy whose token for one identity is a real one: no guess for
	// it, the demo's for the others.
	other := filepath.Join(t.TempDir(), "policy.yaml")
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := p.Identity("stats-bureau")
	b = bytes.Replace(b, []byte(stats.Credentials.TokenSHA256[0]), []byte(access.HashToken("a real token")), 1)
	if err := os.WriteFile(other, b, 0o600); err != nil {
		t.Fatal(err)
	}
	exports = demoExports(t, other)
	if v, ok := exports["POPHUB_TOKEN_STATS_BUREAU"]; ok {
		t.Errorf("a token not the demo's is exported: %q", v)
	}
	if _, ok := exports["POPHUB_TOKEN_RESEARCHER"]; !ok {
		t.Error("the demo tokens of the other identities are no longer exported")
	}
}

// TestPolicyDemoEnvNATSPasswords: demo-env exports the NATS password of
// every identity other than the hub that connects to NATS
// (POPHUB_NATS_PW_<IDENTITY>, for si-subscriber --nats-password), and a
// NATS server run under the policy lets the identity in with it and with
// no other.
func TestPolicyDemoEnvNATSPasswords(t *testing.T) {
	exports := demoExports(t, example)
	p, err := access.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.NATS(t, embedded.NATSConfig{Authorize: p.NATSAuthorize})
	connect := func(user, password string) error {
		// bcrypt on the server takes a while on a busy machine.
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, password), nats.Timeout(time.Minute), nats.NoReconnect())
		if err == nil {
			nc.Close()
		}
		return err
	}
	tests := []struct{ identity, env string }{
		{"si-harbin", "POPHUB_NATS_PW_SI_HARBIN"},
		{"admin", "POPHUB_NATS_PW_ADMIN"},
		{"hub", "POPHUB_NATS_PASSWORD"},
	}
	for _, id := range p.Identities {
		if id.Credentials.NATS != nil && !slices.ContainsFunc(tests, func(tc struct{ identity, env string }) bool { return tc.identity == id.Name }) {
			t.Errorf("the example's %s connects to NATS, but the test does not look for its password", id.Name)
		}
	}
	for _, tc := range tests {
		t.Run(tc.identity, func(t *testing.T) {
			pw, ok := exports[tc.env]
			if !ok {
				t.Fatalf("no export of %s", tc.env)
			}
			if err := connect(tc.identity, pw); err != nil {
				t.Errorf("%s with %s: %v", tc.identity, tc.env, err)
			}
			if err := connect(tc.identity, pw+"x"); err == nil {
				t.Errorf("%s connects with a wrong password", tc.identity)
			}
		})
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
