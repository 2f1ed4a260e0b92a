package main

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/schemas"
)

// TestStatusCountsRecreatedDLQ: the DLQ topic deleted and created again
// (by an operator, or by the hub's start after it went missing) starts
// its offsets at 0. Once the new DLQ has as many records as the count
// had reached, pophub status must count the new DLQ, not keep the old
// topic's tallies.
func TestStatusCountsRecreatedDLQ(t *testing.T) {
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	brokers := []string{k.Addr()}
	rec := func(reason string, src schemas.Source) kafka.Message {
		return kafka.Message{Topic: schemas.DLQTopic, Value: []byte("v"), Headers: []kafka.Header{
			{Key: "pophub-reason", Value: []byte(reason)}, {Key: "pophub-topic", Value: []byte(schemas.Topic(src))}}}
	}
	produceAll(t, brokers, []kafka.Message{rec("not_json", schemas.Tax), rec("not_json", schemas.Tax), rec("not_json", schemas.Tax)})
	c := &cachedDLQ{brokers: brokers}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d, err := c.get(ctx); err != nil || d.Records != 3 {
		t.Fatalf("first count %+v, %v", d, err)
	}

	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	if _, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{schemas.DLQTopic}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: schemas.DLQTopic, NumPartitions: 1, ReplicationFactor: -1}}})
		if err == nil {
			err = resp.Errors[schemas.DLQTopic]
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	produceAll(t, brokers, []kafka.Message{rec("invalid_data", schemas.Marriage), rec("invalid_data", schemas.Marriage),
		rec("invalid_data", schemas.Marriage), rec("invalid_data", schemas.Marriage)})

	d, err := c.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Records != 4 || d.ByReason["invalid_data"] != 4 || d.ByReason["not_json"] != 0 || d.BySource["tax"] != 0 {
		t.Errorf("after the DLQ was recreated with 4 invalid_data marriage rejects: %+v", d)
	}
}
