package dlq_test

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/schemas"
)

// TestDroppedCopyOriginalAtReusedOffset: a copy without its value kept
// the original's key. After the source topic is deleted and created
// again, its offset may hold another record; an operator relies on dlq
// show and dlq replay saying the original is gone then, not sending them
// to another citizen's record, and still saying it is there when the
// record at the offset has the copy's key.
func TestDroppedCopyOriginalAtReusedOffset(t *testing.T) {
	tests := []struct {
		name string
		key  string
		gone bool
	}{
		{"another citizen's record", idB, true},
		{"a record with the copy's key", idA, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, addr := setup(t)
			writeDroppedCopy(t, addr)
			marriage := schemas.Topic(schemas.Marriage)
			recreateTopic(t, addr, marriage)
			conn, err := kafka.DialLeader(context.Background(), "tcp", addr, marriage, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.WriteMessages(kafka.Message{Key: []byte(tt.key), Value: []byte(`{"other":"record"}`)}); err != nil {
				t.Fatal(err)
			}
			r, err := c.Record(ctx(t), dlq.ID{Partition: 1, Offset: 1})
			if err != nil {
				t.Fatal(err)
			}
			if r.OriginalGone != tt.gone || r.OriginalUnknown != "" {
				t.Errorf("%s/0@0 holds %s: OriginalGone %v (want %v), OriginalUnknown %q", marriage, tt.name, r.OriginalGone, tt.gone, r.OriginalUnknown)
			}
		})
	}
}
