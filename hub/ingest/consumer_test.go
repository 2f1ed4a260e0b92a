package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

func broker(t testing.TB) *embedded.Kafka {
	t.Helper()
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// recordingApplier records applied events and fails its first calls.
type recordingApplier struct {
	mu      sync.Mutex
	failFor int
	calls   int
	ids     map[string]int
	traces  []map[string]string
}

func (a *recordingApplier) Apply(_ context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.calls <= a.failFor {
		return hub.ApplyResult{}, errors.New("store unavailable")
	}
	if a.ids == nil {
		a.ids = map[string]int{}
	}
	for _, in := range batch {
		a.ids[in.Event.ID]++
		if in.Trace != nil {
			a.traces = append(a.traces, in.Trace)
		}
	}
	return hub.ApplyResult{Applied: len(batch)}, nil
}

func (a *recordingApplier) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

func produce(t testing.TB, addr string, in []hub.Input, headers []kafka.Header) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for _, e := range in {
		v, err := schemas.Encode(e.Event)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Topic: schemas.Topic(e.Event.Source), Key: []byte(e.Event.Subject), Value: v, Headers: headers})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, c *Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		c.Close()
	}
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFailingStoreLosesNothing: while the store fails, nothing is committed
// or skipped; once it recovers every event is applied, and a consumer
// restarted on the same group gets nothing again.
func TestFailingStoreLosesNothing(t *testing.T) {
	k := broker(t)
	in := storetest.Population(t, 40, 51)
	trace := []kafka.Header{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}
	produce(t, k.Addr(), in, trace)

	a := &recordingApplier{failFor: 3}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "g1"}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	waitUntil(t, "every event applied", func() bool { return a.count() == len(in) })
	stop()
	if counts := c.Counts(); counts.Consumed != int64(len(in)) || counts.Applied != int64(len(in)) {
		t.Errorf("counts %+v, want %d consumed and applied", counts, len(in))
	}
	for id, n := range a.ids {
		if n != 1 {
			t.Errorf("event %s applied %d times", id, n)
		}
	}
	if len(a.traces) != len(in) || a.traces[0]["traceparent"] == "" {
		t.Errorf("%d inputs carried trace context, want %d", len(a.traces), len(in))
	}

	// Restart on the same group: offsets were committed, nothing comes back.
	b := &recordingApplier{}
	c2, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "g1"}, b)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := run(t, c2)
	extra := storetest.Population(t, 2, 52)
	produce(t, k.Addr(), extra, nil)
	waitUntil(t, "new events applied", func() bool { return b.count() == len(extra) })
	time.Sleep(200 * time.Millisecond)
	stop2()
	if b.count() != len(extra) {
		t.Errorf("restarted consumer applied %d events, want only the %d new ones", b.count(), len(extra))
	}
}

func TestEnsureTopicsIdempotent(t *testing.T) {
	k := broker(t)
	for range 2 {
		if err := EnsureTopics(context.Background(), []string{k.Addr()}, 3); err != nil {
			t.Fatalf("EnsureTopics: %v", err)
		}
	}
	if err := Ping(context.Background(), []string{k.Addr()}); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := Ping(context.Background(), []string{"127.0.0.1:1"}); err == nil {
		t.Error("Ping of a closed port succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}, &recordingApplier{}); err == nil {
		t.Error("New without brokers succeeded")
	}
}
