package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/access"
)

// writePolicy writes text as a policy file in a temporary directory.
func writePolicy(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// exampleText is the example policy's text.
func exampleText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The health department's SCRAM keys and the hub's NATS password hash in
// the example policy.
const (
	exampleHealthSalt   = "salt: VQmaNfhQpdNGsjiA4MWZJ9GtR4f8iomG"
	exampleHealthStored = "stored_key: r8KEaC5+Nuo9+4aTWyK+ZoLOy5NzQKl7FtaDqUK5PMjL+tjmKTYmXzPa3PR8dJzuXVmXSH9zxnrnQWZ9u4ZzCw=="
	exampleHealthServer = "server_key: ZO0j+MIMuNiZ4As9ocQxc0m1kmExVH+3spZxEADECQvrCHWc1tawPTmgaMqjxdanCoLc83vFOlFBhByCMlJKMw=="
	exampleHubBcrypt    = `password_bcrypt: "$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy"`
)

// withHealthKeys replaces the health department's SCRAM keys in the
// example by keys of password, as `pophub policy hash-password` prints.
func withHealthKeys(t *testing.T, example, password string) string {
	t.Helper()
	k, err := access.NewSCRAMKeys(password, 8192)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{exampleHealthSalt, exampleHealthStored, exampleHealthServer} {
		if strings.Count(example, s) != 1 {
			t.Fatalf("the example policy no longer has %s once", s)
		}
	}
	out := strings.Replace(example, exampleHealthSalt, "salt: "+k.Salt, 1)
	out = strings.Replace(out, exampleHealthStored, "stored_key: "+k.StoredKey, 1)
	return strings.Replace(out, exampleHealthServer, "server_key: "+k.ServerKey, 1)
}

// withHubNATSPassword replaces the hub's NATS password hash in the
// example by one of password.
func withHubNATSPassword(t *testing.T, example, password string) string {
	t.Helper()
	if strings.Count(example, exampleHubBcrypt) != 1 {
		t.Fatalf("the example policy no longer has the hub's %s", exampleHubBcrypt)
	}
	h, err := access.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(example, exampleHubBcrypt, fmt.Sprintf("password_bcrypt: %q", h), 1)
}

// policyConfig is the Config of an embedded hub on dataDir under the
// policy at path, with the example's demo secrets, its NATS server on
// natsAddr (host:port, or port 0 for a free one).
func policyConfig(dataDir, natsAddr, path string) Config {
	return Config{Embedded: true, DataDir: dataDir, KafkaAddr: "127.0.0.1:0", NATSAddr: natsAddr,
		HTTPAddr: "127.0.0.1:0", Partitions: 2, NATSSync: time.Second, PolicyFile: path,
		NATSPassword: access.DemoSecret("nats:hub"), Secrets: access.DemoResolver}
}

// startWithPolicy starts an embedded hub under the policy at path with
// the example's demo secrets, and returns Start's error.
func startWithPolicy(t *testing.T, path string) error {
	t.Helper()
	m := &Main{Logger: testLogger(t), Config: policyConfig(t.TempDir(), "127.0.0.1:0", path)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := m.Start(ctx)
	m.Close()
	return err
}

// TestHalfDoneRotationRefused: a password rotated in the policy but not
// where the hub reads it (or the other way round) stops the start with
// what to do. Started anyway, the embedded broker would go on accepting
// health's old password while the policy, and the audit trail's record
// of the change, say it was replaced; the hub's own NATS login would fail
// with only "Authorization Violation".
func TestHalfDoneRotationRefused(t *testing.T) {
	tests := []struct {
		name   string
		policy func(t *testing.T, example string) string
		want   []string
	}{
		{"health's Kafka keys of a new password the reference does not hold",
			func(t *testing.T, ex string) string { return withHealthKeys(t, ex, "health-rotated-2026-12") },
			[]string{"health: the password env:POPHUB_KAFKA_PW_HEALTH holds is not the one credentials.kafka.scram_sha512 is of"}},
		{"the hub's NATS password hash of a new password --nats-password is not",
			func(t *testing.T, ex string) string { return withHubNATSPassword(t, ex, "the-hub-s-new-nats-password") },
			[]string{"Authorization Violation", "the NATS password given to hub is not the one its credentials.nats.password_bcrypt is of",
				"--nats-password"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := startWithPolicy(t, writePolicy(t, tc.policy(t, exampleText(t))))
			if err == nil {
				t.Fatal("the hub started")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refused with\n%v\nwant %q", err, want)
				}
			}
		})
	}
}

// TestDemoEnvLeavesOutRotatedSecrets: `policy demo-env` prints no demo
// secret for a credential rotated to a real one: eval would overwrite
// the operator's real password with a public one, which the hub then
// fails to log in with (its NATS password) or `pophub dev` installs as a
// department's (a Kafka reference given without keys).
func TestDemoEnvLeavesOutRotatedSecrets(t *testing.T) {
	keys := "        scram_sha512:\n          " + exampleHealthSalt + "\n          iterations: 8192\n          " +
		exampleHealthStored + "\n          " + exampleHealthServer + "\n"
	tests := []struct {
		name, variable, note string
		policy               func(t *testing.T, example string) string
	}{
		{"the hub's NATS password rotated", "POPHUB_NATS_PASSWORD", "# hub's NATS password: not the demo's, not printed",
			func(t *testing.T, ex string) string {
				return withHubNATSPassword(t, ex, "the-hub-s-real-nats-password")
			}},
		{"health's Kafka password rotated, given without keys", "POPHUB_KAFKA_PW_HEALTH_2026",
			"# health's Kafka password (no scram_sha512 keys to tell the demo's): not the demo's, not printed",
			func(t *testing.T, ex string) string {
				if strings.Count(ex, keys) != 1 {
					t.Fatalf("the example policy no longer has health's keys as\n%s", keys)
				}
				ex = strings.Replace(ex, keys, "", 1)
				return strings.Replace(ex, "password: env:POPHUB_KAFKA_PW_HEALTH", "password: env:POPHUB_KAFKA_PW_HEALTH_2026", 1)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writePolicy(t, tc.policy(t, exampleText(t)))
			if v, ok := demoExports(t, path)[tc.variable]; ok {
				t.Errorf("demo-env printed %s=%q, a demo secret for a credential that is not the demo's", tc.variable, v)
			}
			out, err := execute(t, policyCommand(), "demo-env", path)
			if err != nil || !strings.Contains(out, tc.note) {
				t.Errorf("demo-env: %v\n%s\nwant the note %q", err, out, tc.note)
			}
		})
	}
}

// TestKafkaACLsPreviousFromAnOlderRelease: --previous is the policy the
// cluster was last set up from, often written for an earlier release and
// valid then, such as one where two departments shared a Kafka password
// reference, which this release refuses. Fixing that by giving marriage
// up, the operator still gets the script that takes marriage away.
func TestKafkaACLsPreviousFromAnOlderRelease(t *testing.T) {
	example := exampleText(t)
	const marriageRef, taxRef = "password: env:POPHUB_KAFKA_PW_MARRIAGE", "password: env:POPHUB_KAFKA_PW_TAX"
	if strings.Count(example, marriageRef) != 1 || strings.Count(example, taxRef) != 1 {
		t.Fatal("the example policy no longer has marriage's and tax's password references once")
	}
	old := writePolicy(t, strings.Replace(example, marriageRef, taxRef, 1))
	from, to := strings.Index(example, "  - name: marriage\n"), strings.Index(example, "  - name: si-harbin\n")
	if from < 0 || to < from {
		t.Fatal("the example policy no longer has marriage before si-harbin")
	}
	current := writePolicy(t, example[:from]+example[to:])

	out, errOut, err := runPolicy(t, "", "kafka-acls", "--policy", current, "--previous", old)
	if err != nil {
		t.Fatalf("kafka-acls --previous refuses the policy the cluster was set up from: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "--remove --force --allow-principal User:marriage") || !strings.Contains(out, "--entity-name marriage --delete-config") {
		t.Errorf("the script does not take marriage away:\n%s", out)
	}
	// A file that is no policy at all is still refused.
	if _, _, err := runPolicy(t, "", "kafka-acls", "--policy", current, "--previous", writePolicy(t, "identities: {nope")); err == nil {
		t.Error("a --previous that does not decode is taken")
	}
}
