package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestStartPrunesConsumersOfANarrowedPolicy: si-harbin's durable consumer
// on deaths, made under the example policy, kept delivering deaths after
// the policy revoked them, since NATS grants pulling by consumer name.
// The hub, started again under the narrowed policy, deletes it and logs
// why; si-harbin's consumer on what it still subscribes to stays.
func TestStartPrunesConsumersOfANarrowedPolicy(t *testing.T) {
	example, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	const death = "      - pop.death.23.2301.*\n"
	if !strings.Contains(string(example), death) {
		t.Fatalf("the example policy no longer has %q", death)
	}
	dataDir, policy := t.TempDir(), filepath.Join(t.TempDir(), "policy.yaml")
	start := func(t *testing.T, text string, log *slog.Logger) *Main {
		t.Helper()
		if err := os.WriteFile(policy, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		m := &Main{Logger: log, Config: policyConfig(dataDir, "127.0.0.1:0", policy)}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := m.Start(ctx); err != nil {
			t.Fatalf("starting hub: %v", err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	siHarbin := func(t *testing.T, m *Main) jetstream.JetStream {
		t.Helper()
		nc, err := nats.Connect(m.NATSURL(), nats.UserInfo("si-harbin", access.DemoSecret("nats:si-harbin")),
			nats.CustomInboxPrefix("_INBOX_si-harbin"), nats.Timeout(time.Minute))
		if err != nil {
			t.Fatalf("connecting as si-harbin: %v", err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const status = "pop.changed.23.2301.*.status" // si-harbin's in the example

	m := start(t, string(example), testLogger(t))
	js := siHarbin(t, m)
	for name, filter := range map[string]string{"si-harbin": schemas.DeathFilter("2301"), schemas.FilterConsumerName("si-harbin", status): status} {
		if _, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{Durable: name,
			FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatalf("si-harbin creating %s on %s: %v", name, filter, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	logs := &testenv.LogBuffer{}
	m = start(t, strings.Replace(string(example), death, "", 1), slog.New(slog.NewTextHandler(logs, nil)))
	want := `consumer=si-harbin identity=si-harbin reason="filter pop.death.23.2301.* is not within`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("the hub's log lacks %s:\n%s", want, logs)
	}
	js = siHarbin(t, m)
	if _, err := js.Consumer(ctx, schemas.StreamName, "si-harbin"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("binding the consumer on revoked deaths: %v, want %v", err, jetstream.ErrConsumerNotFound)
	}
	if _, err := js.Consumer(ctx, schemas.StreamName, schemas.FilterConsumerName("si-harbin", status)); err != nil {
		t.Errorf("binding the consumer on status changes, still granted: %v", err)
	}
}
