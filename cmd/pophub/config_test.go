package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/access"
)

// TestServeValidate: `pophub serve` without --postgres or --data kept
// the golden records in memory while committing Kafka offsets, so a
// restart lost them all; Validate now refuses it. `pophub dev` may still
// run in memory: its broker forgets the offsets with the records. The
// notification stream's retention may not be shorter than its duplicate
// window.
func TestServeValidate(t *testing.T) {
	serve := func(c Config) Config {
		c.KafkaBrokers, c.NATSURL = []string{"kafka:9092"}, "nats://nats:4222"
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" for none
	}{
		{"serve without a store", serve(Config{}), "--postgres or --data is required"},
		{"serve --postgres (docker-compose, README)", serve(Config{PostgresURL: "postgres://pophub:pophub@postgres:5432/pophub"}), ""},
		{"serve --data", serve(Config{DataDir: "/var/lib/pophub"}), ""},
		{"dev in memory", Config{Embedded: true}, ""},
		{"dev --data", Config{Embedded: true, DataDir: "/tmp/pophub"}, ""},
		{"dev --postgres", Config{Embedded: true, PostgresURL: "postgres://localhost/pophub"}, ""},
		{"serve --stream-replicas 3 --stream-max-age 720h", serve(Config{DataDir: "/d", StreamReplicas: 3, StreamMaxAge: 720 * time.Hour}), ""},
		{"serve --stream-replicas 7", serve(Config{DataDir: "/d", StreamReplicas: 7}), "--stream-replicas must be from 1 to 5"},
		{"serve --stream-max-age 1m", serve(Config{DataDir: "/d", StreamMaxAge: time.Minute}), "--stream-max-age must be at least 10m0s"},
		// Read only under a policy: without one they would be dropped.
		{"serve --nats-password without --policy", serve(Config{DataDir: "/d", NATSPassword: "secret"}), "give NATS credentials in the --nats URL"},
		{"serve --audit-key-file without --policy", serve(Config{DataDir: "/d", AuditKeyFile: "/etc/pophub/audit.key"}), "only a hub under --policy keeps"},
		{"serve --policy --nats-password --audit-key-file", serve(Config{DataDir: "/d", PolicyFile: "/etc/pophub/policy.yaml", NATSPassword: "secret", AuditKeyFile: "/etc/pophub/audit.key"}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.setDefaults()
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// TestStoreOpenErrorIsReported: a store that cannot be opened (PostgreSQL
// unreachable, a memdb directory another hub holds) gives the operator
// its error from Start, and Close after it does not fail.
func TestStoreOpenErrorIsReported(t *testing.T) {
	held := t.TempDir()
	first := &Main{Logger: testLogger(t), Config: Config{DataDir: held, KeysFile: noKeys}}
	if err := first.openStore(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Store.Close() })
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "PostgreSQL unreachable", want: "opening PostgreSQL store",
			cfg: Config{PostgresURL: "postgres://postgres@127.0.0.1:1/x?connect_timeout=1"}},
		{name: "memdb directory in use", want: "opening memdb store", cfg: Config{DataDir: held}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.KafkaBrokers, tt.cfg.NATSURL, tt.cfg.HTTPAddr, tt.cfg.KeysFile = []string{"127.0.0.1:1"}, "nats://127.0.0.1:1", "127.0.0.1:0", noKeys
			m := &Main{Logger: testLogger(t), Config: tt.cfg}
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Start panicked: %v", r)
					}
				}()
				err = m.Start(context.Background())
				m.Close()
			}()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v; want an error %q", err, tt.want)
			}
		})
	}
}

// bluePolicy writes the example policy with kafka_group pophub-blue and
// returns its path.
func bluePolicy(t *testing.T) string {
	t.Helper()
	example, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	const group = "\nkafka_group: pophub\n"
	if !strings.Contains(string(example), group) {
		t.Fatalf("the example policy no longer sets %q", group)
	}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	blue := strings.Replace(string(example), group, "\nkafka_group: pophub-blue\n", 1)
	if err := os.WriteFile(path, []byte(blue), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPolicyGroup: under a policy whose kafka_group differs from --group
// the hub started healthy while Kafka refused its group, so it never
// applied an event. A --group other than the policy's is now refused,
// naming both; without --group the policy's is used.
func TestPolicyGroup(t *testing.T) {
	blue, err := access.Load(bluePolicy(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		group string
		want  string // the group in force
		err   string // in the error; "" for none
	}{
		{"no --group: the policy's", "", "pophub-blue", ""},
		{"--group the policy's", "pophub-blue", "pophub-blue", ""},
		{"--group another", "pophub", "", `--group (POPHUB_GROUP) "pophub" differs from the access policy's kafka_group "pophub-blue"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Embedded: true, PolicyFile: "policy.yaml", GroupID: tt.group}
			c.setDefaults()
			err := c.policyGroup(blue)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("policyGroup: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("policyGroup: %v, want an error about %q", err, tt.err)
			case tt.err == "" && c.GroupID != tt.want:
				t.Errorf("group %q, want %q", c.GroupID, tt.want)
			}
		})
	}

	t.Run("no policy: pophub", func(t *testing.T) {
		c := Config{Embedded: true}
		c.setDefaults()
		if c.GroupID != "pophub" {
			t.Errorf("group %q, want pophub", c.GroupID)
		}
	})

	// Start refuses before it starts anything.
	t.Run("Start", func(t *testing.T) {
		m := &Main{Logger: testLogger(t), Config: Config{Embedded: true, DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0",
			HTTPAddr: "127.0.0.1:0", PolicyFile: bluePolicy(t), NATSPassword: access.DemoSecret("nats:hub"), Secrets: access.DemoResolver,
			GroupID: "pophub"}}
		err := m.Start(context.Background())
		if err == nil {
			m.Close()
			t.Fatal("the hub started with --group pophub under a policy granting pophub-blue")
		}
		if !strings.Contains(err.Error(), `"pophub"`) || !strings.Contains(err.Error(), `"pophub-blue"`) {
			t.Errorf("Start: %v, want an error naming both groups", err)
		}
	})
}
