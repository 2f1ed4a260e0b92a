package main

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFranzGoClientPublishes: the embedded broker speaks the Kafka
// protocol, so a department using another client library (franz-go here;
// the hub itself reads with kafka-go) publishes to the hub unchanged.
func TestFranzGoClientPublishes(t *testing.T) {
	m := startHub(t, "memdb")
	cl, err := kgo.NewClient(kgo.SeedBrokers(m.Brokers()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	msgs := scenario(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, msg := range msgs {
		rec := &kgo.Record{Topic: msg.Topic, Key: msg.Key, Value: msg.Value}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("franz-go produce: %v", err)
		}
	}
	waitCaughtUp(t, m, len(msgs))
	if c := m.Consumer.Counts(); c.Applied != int64(len(msgs)) {
		t.Fatalf("applied %d of %d events sent with franz-go", c.Applied, len(msgs))
	}
	got, code := getRecord(t, m, personID(t, 1))
	if code != 200 || got.Hukou == nil || got.Hukou.AddressCode != "230602013004" {
		t.Errorf("golden record after franz-go publishing: HTTP %d, %+v", code, got.Hukou)
	}
}
