package dlq_test

import (
	"context"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/schemas"
)

// TestDroppedCopyOriginalDeleted: a reject too large for the DLQ is copied
// without its value, and its original stays in its source topic only
// until the topic's retention (seven days by default) deletes it. While
// the original is there, dlq replay says where it is and for how long;
// once it is gone, dlq show and dlq replay say the value is lost instead
// of sending the operator to an offset that no longer exists.
func TestDroppedCopyOriginalDeleted(t *testing.T) {
	c, addr := setup(t)
	marriage := schemas.Topic(schemas.Marriage)
	// The original: marriage/0@0, whose copy did not fit in the DLQ.
	conn, err := kafka.DialLeader(context.Background(), "tcp", addr, marriage, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteMessages(kafka.Message{Key: []byte(idA), Value: []byte(strings.Repeat("x", 1000))}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	writeReject(t, addr, reject{1, idA, "", schemas.ReasonNotJSON, "", marriage, 0, 0},
		kafka.Header{Key: ingest.HeaderDropped, Value: []byte("value")})
	id := dlq.ID{Partition: 1, Offset: 1}

	check := func(t *testing.T, gone bool, want string) {
		t.Helper()
		r, err := c.Record(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.OriginalGone != gone {
			t.Errorf("dlq show: OriginalGone %v, want %v", r.OriginalGone, gone)
		}
		_, err = c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{id}}, false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("replay error %v, want it to say %q", err, want)
		}
	}
	check(t, false, "the original is in "+marriage+" partition 0 at offset 0 only until the topic's retention deletes it")

	// The source topic's retention deletes it (kafka-delete-records.sh
	// does the same).
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = marriage
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("delete records: error code %d", code)
	}
	check(t, true, marriage+" partition 0 no longer holds the original at offset 0 (deleted by the topic's retention, or with the topic): the original's value is lost")
}
