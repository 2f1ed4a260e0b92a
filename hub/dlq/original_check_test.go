package dlq_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/schemas"
)

// writeDroppedCopy writes an original to the marriage topic's partition 0
// at offset 0 and, as DLQ record 1:1, its copy without the value.
func writeDroppedCopy(t *testing.T, addr string) {
	t.Helper()
	conn, err := kafka.DialLeader(context.Background(), "tcp", addr, schemas.Topic(schemas.Marriage), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.WriteMessages(kafka.Message{Key: []byte(idA), Value: []byte(strings.Repeat("x", 1000))}); err != nil {
		t.Fatal(err)
	}
	writeReject(t, addr, reject{1, idA, "", schemas.ReasonNotJSON, "", schemas.Topic(schemas.Marriage), 0, 0},
		kafka.Header{Key: ingest.HeaderDropped, Value: []byte("value")})
}

// onMarriageOffsets has answer handle every ListOffsets request of k for
// the marriage topic.
func onMarriageOffsets(k *embedded.Kafka, answer func(*kmsg.ListOffsetsRequest) (kmsg.Response, error, bool)) {
	cl := k.Cluster()
	cl.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		req := kr.(*kmsg.ListOffsetsRequest)
		if len(req.Topics) != 1 || req.Topics[0].Topic != schemas.Topic(schemas.Marriage) {
			return nil, nil, false
		}
		return answer(req)
	})
}

// TestOriginalCheckIsBestEffort: dlq show looks at the source partition
// of a copy too large for the DLQ, to say whether its original is still
// there; dlq list does not look. An operator relies on both answering,
// promptly, while that partition has no leader (a broker restarting) or
// its broker is slow: the copy's original is then unknown, and replay
// refuses the copy saying so.
func TestOriginalCheckIsBestEffort(t *testing.T) {
	marriage := schemas.Topic(schemas.Marriage)
	tests := []struct {
		name string
		// answer handles a ListOffsets request for the marriage topic.
		answer func(cl *embedded.Kafka, req *kmsg.ListOffsetsRequest) (kmsg.Response, error, bool)
	}{
		{"leader not available", func(_ *embedded.Kafka, req *kmsg.ListOffsetsRequest) (kmsg.Response, error, bool) {
			resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = marriage
			for _, p := range req.Topics[0].Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = 5 // LEADER_NOT_AVAILABLE
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
			return resp, nil, true
		}},
		{"broker slower than the client's timeout", func(k *embedded.Kafka, _ *kmsg.ListOffsetsRequest) (kmsg.Response, error, bool) {
			k.Cluster().SleepControl(func() { time.Sleep(7 * time.Second) })
			return nil, nil, false
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, k := setupKafka(t)
			writeDroppedCopy(t, k.Addr())
			onMarriageOffsets(k, func(req *kmsg.ListOffsetsRequest) (kmsg.Response, error, bool) { return tt.answer(k, req) })
			start := time.Now()
			all, err := c.Records(ctx(t), dlq.Filter{})
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("dlq list took %v", took)
			}
			if err != nil {
				t.Fatalf("dlq list: %v", err)
			}
			if got, want := ids(all), "0:0 0:1 0:2 0:3 1:0 1:1"; got != want {
				t.Errorf("dlq list: %s, want %s", got, want)
			}
			for _, r := range all {
				if r.OriginalGone || r.OriginalUnknown != "" {
					t.Errorf("dlq list looked at the original of %s: OriginalGone %v, OriginalUnknown %q", r.ID, r.OriginalGone, r.OriginalUnknown)
				}
			}
			start = time.Now()
			r, err := c.Record(ctx(t), dlq.ID{Partition: 1, Offset: 1})
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("dlq show took %v", took)
			}
			if err != nil {
				t.Fatalf("dlq show: %v", err)
			}
			if r.OriginalGone || !strings.HasPrefix(r.OriginalUnknown, "could not check the source partition: ") {
				t.Errorf("copy without its value: OriginalGone %v, OriginalUnknown %q", r.OriginalGone, r.OriginalUnknown)
			}
		})
	}
}

// TestOriginalUnknownShownAndRefused: dlq show of a copy whose source
// partition could not be looked at shows the record, and dlq replay
// refuses it saying the original could not be checked.
func TestOriginalUnknownShownAndRefused(t *testing.T) {
	c, k := setupKafka(t)
	writeDroppedCopy(t, k.Addr())
	onMarriageOffsets(k, func(*kmsg.ListOffsetsRequest) (kmsg.Response, error, bool) {
		return nil, context.DeadlineExceeded, true // the connection drops
	})
	id := dlq.ID{Partition: 1, Offset: 1}
	r, err := c.Record(ctx(t), id)
	if err != nil {
		t.Fatalf("dlq show: %v", err)
	}
	if r.OriginalGone || r.OriginalUnknown == "" {
		t.Errorf("dlq show: OriginalGone %v, OriginalUnknown %q", r.OriginalGone, r.OriginalUnknown)
	}
	_, err = c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{id}}, true)
	if want := "whether " + schemas.Topic(schemas.Marriage) + " partition 0 still holds the original at offset 0 is unknown (could not check the source partition: "; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("replay: %v, want it to say %q", err, want)
	}
}
