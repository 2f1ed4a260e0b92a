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
