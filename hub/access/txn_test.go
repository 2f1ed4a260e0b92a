package access

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestDepartmentTransactions: under a policy a department may publish in
// transactions (README: it must only commit them), with a transactional
// id under its own prefix <name>. and nobody else's; the hub reads what
// it committed. The broker is the embedded one with the policy's SCRAM
// users and ACLs, the producer a real franz-go transactional client.
func TestDepartmentTransactions(t *testing.T) {
	p := examplePolicy(t)
	opts, err := p.KfakeOptions(DemoResolver)
	if err != nil {
		t.Fatal(err)
	}
	addr := testenv.Kafka(t, 1, opts...)
	login := func(name string) kgo.Opt {
		pw, err := DemoResolver(mustID(t, p, name).Credentials.Kafka.Password)
		if err != nil {
			t.Fatal(err)
		}
		return kgo.SASL(scram.Auth{User: name, Pass: pw}.AsSha512Mechanism())
	}
	topic := schemas.Topic(schemas.Health)

	tests := []struct {
		name  string
		txnID string
		ok    bool
	}{
		{"its own prefix", TransactionalIDPrefix("health") + "deaths-1", true},
		{"its own prefix again, another producer", TransactionalIDPrefix("health") + "deaths-2", true},
		{"no prefix", "deaths-1", false},
		{"another department's prefix", TransactionalIDPrefix("tax") + "deaths-1", false},
		{"its name without the separator", "health-deaths-1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), login("health"),
				kgo.TransactionalID(tc.txnID), kgo.DefaultProduceTopic(topic), kgo.RecordRetries(2))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			value := []byte(`{"txn":"` + tc.txnID + `"}`)
			err = commitOne(ctx, cl, &kgo.Record{Key: []byte(personID), Value: value})
			if !tc.ok {
				if err == nil {
					t.Fatalf("health committed a transaction with id %q", tc.txnID)
				}
				if !strings.Contains(err.Error(), kerr.TransactionalIDAuthorizationFailed.Message) {
					t.Errorf("refused for another reason: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("publishing in a transaction: %v", err)
			}
			if !hubReads(ctx, t, addr, login("hub"), topic, value) {
				t.Errorf("the hub, reading committed, did not see %s", value)
			}
		})
	}
}

// TestKafkaScriptTransactionalIDs: a real cluster gets the same
// transactional-id grant as the embedded broker, to departments only,
// each on its own prefix.
func TestKafkaScriptTransactionalIDs(t *testing.T) {
	p := examplePolicy(t)
	script := p.KafkaScript(nil)
	want := "$KA --add --allow-principal User:health --operation Write --operation Describe --transactional-id health. --resource-pattern-type prefixed\n"
	if !strings.Contains(script, want) {
		t.Errorf("script lacks %q:\n%s", want, script)
	}
	for _, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		i := slices.Index(f, "--transactional-id")
		if i < 0 {
			continue
		}
		who := strings.TrimPrefix(f[3], "User:")
		if mustID(t, p, who).Kind != KindDepartment || f[i+1] != TransactionalIDPrefix(who) {
			t.Errorf("transactional ids granted beyond a department's own prefix: %s", line)
		}
	}
}

// commitOne produces r in a transaction of its own and commits it.
func commitOne(ctx context.Context, cl *kgo.Client, r *kgo.Record) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		_ = cl.EndTransaction(ctx, kgo.TryAbort)
		return fmt.Errorf("producing: %w", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// hubReads reports whether the hub, reading topic with isolation level
// read_committed as it does, finds a record with value before ctx ends.
func hubReads(ctx context.Context, t *testing.T, addr string, login kgo.Opt, topic string, value []byte) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), login, kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		for _, e := range fs.Errors() {
			if ctx.Err() == nil {
				t.Errorf("hub fetching %s: %v", topic, e.Err)
				return false
			}
		}
		for it := fs.RecordIter(); !it.Done(); {
			if string(it.Next().Value) == string(value) {
				return true
			}
		}
	}
	return false
}
