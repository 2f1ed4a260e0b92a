package dlq_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/schemas"
)

// writeDroppedCopies writes n originals to marriage/0 (offsets 0 to n-1)
// and their n copies without the value to DLQ partition 1, then 20 MB of
// other records after the originals (a busy topic).
func writeDroppedCopies(t *testing.T, addr string, n int) {
	t.Helper()
	marriage := schemas.Topic(schemas.Marriage)
	conn, err := kafka.DialLeader(context.Background(), "tcp", addr, marriage, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range n {
		if _, err := conn.WriteMessages(kafka.Message{Key: []byte(idA), Value: []byte(strings.Repeat("x", 1000))}); err != nil {
			t.Fatal(err)
		}
		writeReject(t, addr, reject{1, idA, "", schemas.ReasonNotJSON, "", marriage, 0, int64(i)},
			kafka.Header{Key: ingest.HeaderDropped, Value: []byte("value")})
	}
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: marriage, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		BatchBytes: 1 << 20, BatchSize: 8, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 })}
	defer w.Close()
	big := []byte(strings.Repeat("y", 100<<10))
	msgs := make([]kafka.Message, 200)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(idB), Value: big}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// sourceFetches counts the fetches of the marriage topic, and keeps the
// most bytes one asked for of a partition; each waits delay first.
type sourceFetches struct {
	n, maxBytes atomic.Int32
	delay       atomic.Int64 // nanoseconds
}

func watchMarriageFetches(k *embedded.Kafka) *sourceFetches {
	f := &sourceFetches{}
	cl := k.Cluster()
	cl.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		for _, tp := range kr.(*kmsg.FetchRequest).Topics {
			if tp.Topic == schemas.Topic(schemas.Marriage) {
				f.n.Add(1)
				for _, p := range tp.Partitions {
					if p.PartitionMaxBytes > f.maxBytes.Load() {
						f.maxBytes.Store(p.PartitionMaxBytes)
					}
				}
				if d := time.Duration(f.delay.Load()); d > 0 {
					cl.SleepControl(func() { time.Sleep(d) })
				}
			}
		}
		return nil, nil, false
	})
	return f
}

// TestOriginalsCostListingsNothing: dlq list never says whether an
// original is still there, so it reads none, however many copies without
// their value the DLQ holds and however slow their source broker; dlq
// show asks for the one batch at the original's offset (a broker answers
// the first batch whole however few bytes are asked for, KIP-74), not
// megabytes after it.
func TestOriginalsCostListingsNothing(t *testing.T) {
	const n = 12
	c, k := setupKafka(t)
	writeDroppedCopies(t, k.Addr(), n)
	fetches := watchMarriageFetches(k)
	fetches.delay.Store(int64(1500 * time.Millisecond))
	start := time.Now()
	all, err := c.Records(ctx(t), dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); fetches.n.Load() != 0 || took > 2*time.Second {
		t.Errorf("dlq list of %d records took %v and %d fetches of the source topic", len(all), took, fetches.n.Load())
	}

	fetches.delay.Store(0)
	fetches.n.Store(0)
	r, err := c.Record(ctx(t), dlq.ID{Partition: 1, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.OriginalGone || r.OriginalUnknown != "" {
		t.Errorf("dlq show: OriginalGone %v, OriginalUnknown %q; the original is there", r.OriginalGone, r.OriginalUnknown)
	}
	if n, most := fetches.n.Load(), fetches.maxBytes.Load(); n != 1 || most > 1<<10 {
		t.Errorf("dlq show made %d fetches of the source topic, asking for up to %d bytes of a partition; want one, of the batch at the offset", n, most)
	}
}

// TestOffsetsDecideBeforeAFailedRead: when reading the record at one
// copy's origin fails, a replay by ID still says of another copy whose
// partition no longer holds its offset that its original is lost, and
// says of the first that it could not be checked.
func TestOffsetsDecideBeforeAFailedRead(t *testing.T) {
	c, k := setupKafka(t)
	writeDroppedCopy(t, k.Addr()) // DLQ 1:1, its original at marriage/0@0
	marriage := schemas.Topic(schemas.Marriage)
	writeReject(t, k.Addr(), reject{1, idB, "", schemas.ReasonNotJSON, "", marriage, 1, 50}, // DLQ 1:2; marriage/1 is empty
		kafka.Header{Key: ingest.HeaderDropped, Value: []byte("value")})
	cl := k.Cluster()
	cl.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		for _, tp := range kr.(*kmsg.FetchRequest).Topics {
			if tp.Topic == marriage {
				return nil, context.DeadlineExceeded, true // the connection drops
			}
		}
		return nil, nil, false
	})
	_, err := c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{{Partition: 1, Offset: 1}, {Partition: 1, Offset: 2}}}, true)
	if err == nil {
		t.Fatal("replay of two copies without their value succeeded")
	}
	for _, want := range []string{
		"DLQ record 1:1 is a copy without its value (too large for the DLQ); whether " + marriage + " partition 0 still holds the original at offset 0 is unknown",
		"DLQ record 1:2 is a copy without its value (too large for the DLQ), and " + marriage + " partition 1 no longer holds the original at offset 50",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("replay says %q; want it to say %q", err, want)
		}
	}
}

// TestReplayByReasonSaysWhatItDidNotCheck: a replay by reason does not
// read the originals of the copies it refuses, so after the source topic
// was deleted and created again, with another record at the original's
// offset, it must not say the original is there: it says what it did not
// check and names the command that does.
func TestReplayByReasonSaysWhatItDidNotCheck(t *testing.T) {
	c, addr := setup(t)
	writeDroppedCopy(t, addr) // DLQ 1:1, its original at marriage/0@0
	marriage := schemas.Topic(schemas.Marriage)
	recreateTopic(t, addr, marriage)
	conn, err := kafka.DialLeader(context.Background(), "tcp", addr, marriage, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.WriteMessages(kafka.Message{Key: []byte(idB), Value: []byte(`{"other":"record"}`)}); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []dlq.Selection{{Reason: schemas.ReasonNotJSON}, {All: true}} {
		_, err := c.Replay(ctx(t), sel, true)
		if err == nil {
			t.Fatalf("replay %+v of a copy without its value succeeded", sel)
		}
		if msg := err.Error(); strings.Contains(msg, "the original is in") ||
			!strings.Contains(msg, "unless the topic was deleted and created again (`pophub dlq show 1:1` tells)") {
			t.Errorf("replay %+v says %q", sel, msg)
		}
	}
}

// TestOriginalOfALeaderCatchingUpIsUnknown: a source partition whose
// leader answers a fetch at the original's offset with nothing, its high
// watermark not past the offset (a leader just elected), proves nothing:
// dlq show says the original is unknown, not lost.
func TestOriginalOfALeaderCatchingUpIsUnknown(t *testing.T) {
	c, k := setupKafka(t)
	writeDroppedCopy(t, k.Addr()) // DLQ 1:1, its original at marriage/0@0
	marriage := schemas.Topic(schemas.Marriage)
	cl := k.Cluster()
	cl.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		req := kr.(*kmsg.FetchRequest)
		if len(req.Topics) != 1 || req.Topics[0].Topic != marriage {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = marriage, req.Topics[0].TopicID
		for _, p := range req.Topics[0].Partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition, rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = p.Partition, 0, 0, 0
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
	r, err := c.Record(ctx(t), dlq.ID{Partition: 1, Offset: 1})
	if err != nil {
		t.Fatalf("dlq show: %v", err)
	}
	if r.OriginalGone || !strings.Contains(r.OriginalUnknown, "the partition's leader answers up to offset 0 only") {
		t.Errorf("OriginalGone %v, OriginalUnknown %q; want unknown", r.OriginalGone, r.OriginalUnknown)
	}
}
