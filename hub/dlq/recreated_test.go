package dlq_test

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/schemas"
)

// TestNewRejectAtReusedPosition: a source topic deleted and created
// again (README: "Deleting or recreating a source topic needs every
// instance stopped first") starts its offsets at 0, and so does a DLQ
// topic deleted and created again. A new, different reject that lands on
// an origin (topic, partition, offset) or a DLQ ID that an earlier,
// already replayed reject had is a reject of its own: dlq list must show
// it and dlq replay must send it.
func TestNewRejectAtReusedPosition(t *testing.T) {
	marriage := schemas.Topic(schemas.Marriage)
	// seeded[0]: DLQ 0:0, origin marriage/1/5, key idA, event m-1.
	// The replacement: a new bad event of another person that the
	// recreated marriage topic took at the same partition and offset.
	newer := reject{0, idB, `{"id":"m-77","source":"marriage","subject":"` + idB + `","data":{"spouse_id":"` + idA + `"}}`,
		schemas.ReasonInvalidData, "data.spouse_id", marriage, 1, 5}

	for _, tc := range []struct {
		name     string
		recreate func(t *testing.T, addr string) // between the first replay and the new reject
		newID    dlq.ID
	}{
		{"source topic recreated", func(t *testing.T, addr string) {
			recreateTopic(t, addr, marriage)
		}, dlq.ID{Partition: 0, Offset: 4}},
		{"DLQ topic recreated", func(t *testing.T, addr string) {
			recreateTopic(t, addr, schemas.DLQTopic)
			newer.topic, newer.partition, newer.offset = marriage, 0, 42 // another origin: only the DLQ ID repeats
		}, dlq.ID{Partition: 0, Offset: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, addr := setup(t)
			res, err := c.Replay(ctx(t), dlq.Selection{Reason: schemas.ReasonInvalidData}, false)
			if err != nil {
				t.Fatal(err)
			}
			if ids(res.Sent) != "0:0 0:2" {
				t.Fatalf("first replay sent %q, want 0:0 0:2", ids(res.Sent))
			}
			tc.recreate(t, addr)
			writeReject(t, addr, newer)

			all, err := c.Records(ctx(t), dlq.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			listed := false
			for _, r := range all {
				if r.ID == tc.newID {
					listed = true
				}
			}
			if !listed {
				t.Errorf("dlq list: records %s; the new reject %s is not listed (taken for a copy of an older reject)", ids(all), tc.newID)
			}
			res, err = c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{tc.newID}}, false)
			if err != nil {
				t.Fatal(err)
			}
			if ids(res.Sent) != tc.newID.String() {
				t.Errorf("dlq replay %s: sent %q, skipped %q; want the new reject sent (it was never replayed)",
					tc.newID, ids(res.Sent), ids(res.Skipped))
			}
		})
	}
}

// recreateTopic deletes topic and creates it again with two partitions,
// as an operator does with kafka-topics.sh --delete / --create.
func recreateTopic(t *testing.T, addr, topic string) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second}
	if _, err := cl.DeleteTopics(ctx(t), &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := cl.CreateTopics(ctx(t), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: topic, NumPartitions: 2, ReplicationFactor: -1}}})
		if err == nil {
			err = resp.Errors[topic]
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating %s again: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
