package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestDevEnforcesThePolicyInForceOnKafka: `pophub dev --policy` restarted
// on its data directory under a changed policy enforces the new policy's
// Kafka users and ACLs, not the first start's: a department whose publish
// right was removed can no longer write, a rotated password is the only
// one accepted, a newly granted department writes, and the records
// written before the restart are still there.
func TestDevEnforcesThePolicyInForceOnKafka(t *testing.T) {
	example, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	const taxPublish, marriagePublish = `publish: ["tax"]`, `publish: ["marriage"]`
	for _, s := range []string{taxPublish, marriagePublish} {
		if strings.Count(string(example), s) != 1 {
			t.Fatalf("the example policy no longer has %s once", s)
		}
	}
	dir := t.TempDir()
	writePolicy := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// A: marriage may not publish yet. B: tax may no longer, marriage may,
	// and health's password is rotated (its keys those of the new one).
	const healthRef, rotated = "env:POPHUB_KAFKA_PW_HEALTH", "rotated-health-password-2"
	policyA := writePolicy("a.yaml", strings.Replace(string(example), marriagePublish, `publish: []`, 1))
	policyB := writePolicy("b.yaml", withHealthKeys(t, strings.Replace(string(example), taxPublish, `publish: []`, 1), rotated))
	oldHealth := access.DemoSecret(healthRef)
	rotating := func(ref string) (string, error) {
		if ref == healthRef {
			return rotated, nil
		}
		return access.DemoResolver(ref)
	}
	dataDir := filepath.Join(dir, "data")
	start := func(policy string, secrets access.Resolver) *Main {
		t.Helper()
		return startMain(t, Config{Embedded: true, DataDir: dataDir, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0",
			HTTPAddr: "127.0.0.1:0", Partitions: 2, NATSSync: time.Second, PolicyFile: policy,
			NATSPassword: access.DemoSecret("nats:hub"), Secrets: secrets})
	}
	write := func(m *Main, user, password, topic string) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		tr := &kafka.Transport{SASL: access.SCRAMClient{User: user, Password: password}}
		defer tr.CloseIdleConnections()
		w := &kafka.Writer{Addr: kafka.TCP(m.brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
			BatchTimeout: 10 * time.Millisecond, MaxAttempts: 2, Transport: tr}
		defer w.Close()
		return w.WriteMessages(ctx, kafka.Message{Key: []byte(user), Value: []byte(`not an event`)})
	}
	taxTopic, healthTopic, marriageTopic := schemas.Topic(schemas.Tax), schemas.Topic(schemas.Health), schemas.Topic(schemas.Marriage)
	admin := access.SCRAMClient{User: "admin", Password: access.DemoSecret("env:POPHUB_KAFKA_PW_ADMIN")}

	m := start(policyA, access.DemoResolver)
	for range 2 {
		if err := write(m, "tax", access.DemoSecret("env:POPHUB_KAFKA_PW_TAX"), taxTopic); err != nil {
			t.Fatalf("policy A: tax writing its topic: %v", err)
		}
	}
	if err := write(m, "marriage", access.DemoSecret("env:POPHUB_KAFKA_PW_MARRIAGE"), marriageTopic); err == nil {
		t.Fatal("policy A: marriage wrote its topic without a publish right")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = start(policyB, rotating)
	if err := write(m, "tax", access.DemoSecret("env:POPHUB_KAFKA_PW_TAX"), taxTopic); err == nil {
		t.Error("policy B: tax wrote its topic after its publish right was removed")
	}
	if err := write(m, "health", oldHealth, healthTopic); err == nil {
		t.Error("policy B: health wrote with its password from before the rotation")
	}
	if err := write(m, "health", rotated, healthTopic); err != nil {
		t.Errorf("policy B: health writing with its rotated password: %v", err)
	}
	if err := write(m, "marriage", access.DemoSecret("env:POPHUB_KAFKA_PW_MARRIAGE"), marriageTopic); err != nil {
		t.Errorf("policy B: marriage writing its newly granted topic: %v", err)
	}
	if n := testenv.RecordCountAs(t, m.brokers[0], admin, taxTopic); n != 2 {
		t.Errorf("%s holds %d records after the restart, want the 2 written before it", taxTopic, n)
	}
}
