package publisher

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/schemas"
)

// kafkaBroker is an in-process Kafka-protocol broker with the hub's topics;
// departments' code is tested against the protocol, not against the hub.
type kafkaBroker struct{ c *kfake.Cluster }

func (k kafkaBroker) Addr() string { return k.c.ListenAddrs()[0] }

func broker(t testing.TB) kafkaBroker {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, append(schemas.Topics(), schemas.DLQTopic)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return kafkaBroker{c}
}

func population(t testing.TB, persons int) []schemas.Event {
	t.Helper()
	var out []schemas.Event
	if err := synth.Generate(context.Background(), synth.Config{Persons: persons, Seed: 9}, func(ev schemas.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func readAll(t testing.TB, addr, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: "reader-" + topic, Topic: topic, StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %d of %d from %s: %v", len(out), n, topic, err)
		}
		out = append(out, m)
	}
	return out
}

func TestPublish(t *testing.T) {
	k := broker(t)
	p, err := New(Config{Brokers: []string{k.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	events := population(t, 30)
	bad := events[0]
	bad.ID = "bad-1"
	bad.Data = []byte(`{"unexpected":true}`)
	bad.Payload = nil
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	results, err := p.Publish(ctx, append(events, bad)...)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results[:len(events)] {
		if r.Err != nil || r.ID != events[i].ID {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	if last := results[len(events)]; last.Err == nil || schemas.ReasonOf(last.Err) != schemas.ReasonInvalidData {
		t.Fatalf("invalid event result = %+v, want invalid_data", last)
	}
	want := 0
	for _, e := range events {
		if e.Source == schemas.Employment {
			want++
		}
	}
	msgs := readAll(t, k.Addr(), schemas.Topic(schemas.Employment), want)
	for _, m := range msgs {
		ev, err := schemas.Decode(schemas.Input{Topic: m.Topic, Key: m.Key, Value: m.Value})
		if err != nil {
			t.Fatalf("published record does not decode: %v", err)
		}
		if string(m.Key) != string(ev.Subject) {
			t.Error("record key is not the citizen ID")
		}
		tp := ""
		for _, h := range m.Headers {
			if h.Key == "traceparent" {
				tp = string(h.Value)
			}
		}
		if !strings.Contains(tp, sc.TraceID().String()) {
			t.Errorf("traceparent header %q does not carry the caller's trace", tp)
		}
	}
}

func TestSourceRestriction(t *testing.T) {
	k := broker(t)
	p, err := New(Config{Brokers: []string{k.Addr()}, Source: schemas.Housing})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var other schemas.Event
	for _, e := range population(t, 10) {
		if e.Source == schemas.Health || e.Source == schemas.PublicSecurity {
			other = e
			break
		}
	}
	res, err := p.Publish(context.Background(), other)
	if err != nil || res[0].Err == nil {
		t.Fatalf("publishing another source's event: %+v, %v", res, err)
	}
}

func TestEventIDStable(t *testing.T) {
	a := EventID(schemas.Housing, "lease-77", 3)
	if a != EventID(schemas.Housing, "lease-77", 3) {
		t.Error("EventID is not deterministic")
	}
	if a == EventID(schemas.Housing, "lease-77", 4) || a == EventID(schemas.Tax, "lease-77", 3) {
		t.Error("EventID collides across versions or sources")
	}
	if strings.Contains(a, "lease-77") {
		t.Error("EventID exposes the department's record key")
	}
}

func TestPublishFile(t *testing.T) {
	k := broker(t)
	p, err := New(Config{Brokers: []string{k.Addr()}, Source: schemas.Housing, BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var lines []string
	for _, e := range population(t, 40) {
		if e.Source == schemas.Housing {
			b, _ := schemas.Encode(e)
			lines = append(lines, string(b))
		}
	}
	lines = append(lines[:3], append([]string{"not json", `{"specversion":"1.0"}`}, lines[3:]...)...)
	path := filepath.Join(t.TempDir(), "housing.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := p.PublishFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != len(lines) || rep.Published != len(lines)-2 || len(rep.Bad) != 2 || rep.Bad[0].Line != 4 || rep.Bad[1].Line != 5 {
		t.Fatalf("report %+v (bad %+v), want %d read, %d published, bad lines 4 and 5", rep, rep.Bad, len(lines), len(lines)-2)
	}
	readAll(t, k.Addr(), schemas.Topic(schemas.Housing), rep.Published)
}

// BenchmarkPublish reports the publisher's rate next to kafka-go's raw
// WriteMessages of the same encoded records.
func BenchmarkPublish(b *testing.B) {
	k := broker(b)
	events := population(b, 2000)
	var msgs []kafka.Message
	for _, e := range events {
		v, _ := schemas.Encode(e)
		msgs = append(msgs, kafka.Message{Topic: schemas.Topic(e.Source), Key: []byte(e.Subject), Value: v})
	}
	b.Run("raw", func(b *testing.B) {
		w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchBytes: 16 << 20, BatchTimeout: 10 * time.Millisecond}
		defer w.Close()
		n := 0
		for b.Loop() {
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				b.Fatal(err)
			}
			n += len(msgs)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("publisher", func(b *testing.B) {
		p, _ := New(Config{Brokers: []string{k.Addr()}})
		defer p.Close()
		n := 0
		for b.Loop() {
			if _, err := p.Publish(context.Background(), events...); err != nil {
				b.Fatal(err)
			}
			n += len(events)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})
}
