package reconcile

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
)

// TestRecreatedTopicGapNotMasked: a source topic deleted and
// created again (README: with every instance stopped) starts at offset 0.
// The DLQ still holds the copy of a reject from the old topic naming
// housing/0@0. A record of the new topic at housing/0@0 that the hub
// never applied (lost) must be a gap, not "rejected" on the strength of
// the old topic's reject.
func TestRecreatedTopicGapNotMasked(t *testing.T) {
	brokers := startKafka(t, 1)
	hs := schemas.Topic(schemas.Housing)
	// The old topic: a bad record at offset 0, rejected to the DLQ.
	old := kafka.Message{Topic: hs, Partition: 0, Value: []byte("not json")}
	offs := produce(t, brokers, []kafka.Message{old})
	produce(t, brokers, []kafka.Message{dlqCopy(old, offs[0], schemas.ReasonNotJSON)})

	// The operator deletes and recreates the topic.
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	if _, err := cl.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{hs}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := cl.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: hs, NumPartitions: 1, ReplicationFactor: -1}}})
		if err == nil {
			err = resp.Errors[hs]
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	// The new topic: a valid event at offset 0 the store does not hold.
	newOffs := produce(t, brokers, []kafka.Message{{Topic: hs, Partition: 0, Value: envelope(schemas.Housing, "hs-new-lost")}})
	if newOffs[0] != offs[0] {
		t.Fatalf("new record at offset %d, want %d (the old reject's)", newOffs[0], offs[0])
	}
	commit(t, brokers, "pophub", map[string]map[int]int64{hs: {0: 1}})

	rep, err := Run(context.Background(), Config{Brokers: brokers, Store: &keyStore{keys: map[schemas.EventKey]bool{}}, Sources: []schemas.Source{schemas.Housing}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Gaps() != 1 {
		t.Errorf("gaps %d, want 1: event hs-new-lost was never applied nor rejected, but reconcile counts it as the old topic's reject", rep.Gaps())
	}
}

// TestRejectCopyOf: a DLQ copy accounts for the source record at its
// location only when it holds that record's key and value, or as much of
// them as a copy too large for the DLQ kept.
func TestRejectCopyOf(t *testing.T) {
	key, value := []byte("230102199001011230"), []byte(`{"id":"e-1"}`)
	tests := []struct {
		name       string
		copy       rejectCopy
		key, value []byte
		want       bool
	}{
		{"whole copy, same record", rejectCopy{sum: contentSum(key, value)}, key, value, true},
		{"whole copy, another value", rejectCopy{sum: contentSum(key, value)}, key, []byte(`{"id":"e-2"}`), false},
		{"whole copy, another key", rejectCopy{sum: contentSum(key, value)}, []byte("x"), value, false},
		{"null and empty key alike", rejectCopy{sum: contentSum(nil, value)}, []byte{}, value, true},
		{"copy without its value, same key", rejectCopy{sum: contentSum(key, nil), dropped: "value"}, key, value, true},
		{"copy without its value, another key", rejectCopy{sum: contentSum(key, nil), dropped: "value"}, []byte("x"), value, false},
		{"copy without key and value", rejectCopy{dropped: "key,value,headers"}, []byte("x"), value, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.copy.of(tc.key, tc.value); got != tc.want {
				t.Errorf("of = %v, want %v", got, tc.want)
			}
		})
	}
}
