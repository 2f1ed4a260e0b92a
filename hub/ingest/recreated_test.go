package ingest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
)

// TestRecreatedTopicStopsIngest: a source topic deleted and created again
// while the hub runs (an operator changing its partitions, say) starts
// its offsets at 0 again, where kafka-go's reader would keep the offset
// it had read to and, once the new log grew that far, read on from there,
// skipping every record before it. Run stops instead, before applying any
// record of the new log, and an instance started again reads the new topic
// from its first record: nothing is skipped.
func TestRecreatedTopicStopsIngest(t *testing.T) {
	k := broker(t)
	topic := schemas.Topic(schemas.Marriage)
	record := func(id string) kafka.Message {
		return kafka.Message{Key: []byte(idA), Value: []byte(cloudEvent(id, "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))}
	}
	write := func(ids ...string) {
		t.Helper()
		conn, err := kafka.DialLeader(context.Background(), "tcp", k.Addr(), topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, id := range ids {
			if _, err := conn.WriteMessages(record(id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids := func(prefix string, from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("%s-%d", prefix, i))
		}
		return out
	}

	first := &recordingApplier{}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "recreated"}, first)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	write(ids("old", 0, 20)...)
	waitUntil(t, "the old topic's records applied", func() bool { return first.count() == 20 })
	cl := &kafka.Client{Addr: kafka.TCP(k.Addr())}
	waitUntil(t, "the old topic's offsets committed", func() bool {
		resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: "recreated", Topics: map[string][]int{topic: {0}}})
		return err == nil && len(resp.Topics[topic]) == 1 && resp.Topics[topic][0].CommittedOffset == 20
	})

	if err := k.Cluster().DeleteTopic(topic); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // kafka-topics.sh --delete, then --create
	if err := k.Cluster().CreateTopic(topic, 2, nil); err != nil {
		t.Fatal(err)
	}
	write(ids("new", 0, 3)...)
	select {
	case err := <-done:
		if !errors.Is(err, ErrPartitionShrank) {
			t.Fatalf("Run: %v, want ErrPartitionShrank", err)
		}
		t.Logf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run went on after the topic was created again")
	}
	c.Close()
	if n := first.count(); n != 20 {
		t.Errorf("the stopped instance applied %d events, want the old topic's 20", n)
	}

	write(ids("new", 3, 25)...) // the new log grows past the old offset
	again := &recordingApplier{}
	c2, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "recreated"}, again)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c2)
	defer stop()
	waitUntil(t, "the new topic's records applied", func() bool { return again.count() == 25 })
	for _, id := range ids("new", 0, 25) {
		if again.ids[id] != 1 {
			t.Errorf("event %s applied %d times, want 1", id, again.ids[id])
		}
	}
}

// TestShrunkPartitionNeedsNoCommittedOffset: kafka-go's reports that a
// partition's reader is past its end, as the consumer reads them. A
// reader that started at an offset (a restart) counts as having read to
// it, so a partition the instance has fetched nothing from since stops
// ingest too. A partition whose group offset is still committed is no
// topic created again (its offsets went with the old one): an offset set
// past the end by hand would stop every start alike, so Run goes on and
// the lag tracker reports it. Seeks that fail for a moment (a leader
// election) stop nothing, also when such moments recur apart.
func TestShrunkPartitionNeedsNoCommittedOffset(t *testing.T) {
	k := broker(t)
	topic := schemas.Topic(schemas.Marriage)
	consumer := func(group string) *Consumer {
		c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: group, Topics: []string{schemas.Topic(schemas.Tax)}}, &recordingApplier{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	stops := func(c *Consumer, within time.Duration) error {
		select {
		case err := <-c.shrunk:
			return err
		case <-time.After(within):
			return nil
		}
	}
	seekFails := func(c *Consumer) { c.readerError(fmtInitError, []any{0, topic, kafka.OffsetOutOfRange}) }

	t.Run("started at an offset, no commit", func(t *testing.T) {
		c := consumer("shrunk-idle")
		c.readerDebug(fmtInitializing, []any{0, topic, int64(20)})
		// kafka-go reports it at each retry, as the check may fail
		// while the group's coordinator is busy with the join.
		var err error
		for range 20 {
			c.readerError(fmtBeyondEnd, []any{0, topic, int64(20)})
			if err = stops(c, 500*time.Millisecond); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrPartitionShrank) {
			t.Fatalf("a reader past the end of a partition without a committed offset: %v, want ErrPartitionShrank", err)
		}
	})
	t.Run("offset committed", func(t *testing.T) {
		// Committed before the consumer joins the group, whose
		// generation would refuse a commit from outside it.
		cl := &kafka.Client{Addr: kafka.TCP(k.Addr())}
		resp, err := cl.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{GroupID: "shrunk-committed", GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: 0, Offset: 20}}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.Topics[topic] {
			if p.Error != nil {
				t.Fatalf("committing offset 20: %v", p.Error)
			}
		}
		c := consumer("shrunk-committed")
		c.readerDebug(fmtInitializing, []any{0, topic, int64(20)})
		c.readerError(fmtBeyondEnd, []any{0, topic, int64(20)})
		if err := stops(c, 2*time.Second); err != nil {
			t.Fatalf("a committed offset past the end stopped ingest: %v", err)
		}
	})
	t.Run("failed seeks", func(t *testing.T) {
		c := consumer("shrunk-blips")
		c.noteFetched([]kafka.Message{{Topic: topic, Partition: 0, Offset: 99}})
		seekFails(c)
		time.Sleep(300 * time.Millisecond)
		seekFails(c)
		time.Sleep(shrinkGap + 200*time.Millisecond) // a later, unrelated moment
		seekFails(c)
		if err := stops(c, time.Second); err != nil {
			t.Fatalf("seeks that failed for moments apart stopped ingest: %v", err)
		}
		for range 6 { // failing on for longer than shrinkConfirm
			time.Sleep(500 * time.Millisecond)
			seekFails(c)
		}
		if err := stops(c, 10*time.Second); !errors.Is(err, ErrPartitionShrank) {
			t.Fatalf("seeks failing for %s: %v, want ErrPartitionShrank", 3*time.Second, err)
		}
	})
}
