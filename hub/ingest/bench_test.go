package ingest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/schemas"
)

type countingApplier struct{ n atomic.Int64 }

func (a *countingApplier) Apply(_ context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	a.n.Add(int64(len(batch)))
	return hub.ApplyResult{Applied: len(batch)}, nil
}

// BenchmarkConsume measures the consumer alone (fetch, decode, validate,
// commit) against the in-process broker with an applier that does nothing,
// next to a raw kafka-go group reader that only fetches and commits. Each
// iteration reads the whole population with a new consumer group; the
// clock runs from the first record on, so joining the group is not
// counted. Decoding alone (schemas.Decode, no Kafka) is the third line.
func BenchmarkConsume(b *testing.B) {
	ctx := context.Background()
	k, err := embedded.StartKafka(ctx, embedded.KafkaConfig{Partitions: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	var msgs []kafka.Message
	if err := synth.Generate(ctx, synth.Config{Persons: 10000, Seed: 1}, func(ev schemas.Event) error {
		v, err := schemas.Encode(ev)
		msgs = append(msgs, kafka.Message{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: v})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Balancer: &kafka.Murmur2Balancer{}, BatchSize: 5000, BatchBytes: 16 << 20, BatchTimeout: time.Millisecond}
	for i := 0; i < len(msgs); i += 10000 {
		if err := w.WriteMessages(ctx, msgs[i:min(i+10000, len(msgs))]...); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	b.Logf("%d events in 8 topics × 8 partitions", len(msgs))

	b.Run("raw", func(b *testing.B) {
		n := 0
		b.StopTimer()
		for range b.N {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{k.Addr()}, GroupID: "raw-" + time.Now().String(), GroupTopics: schemas.Topics(),
				StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 2 * time.Second, QueueCapacity: 4000, CommitInterval: 100 * time.Millisecond})
			batch := make([]kafka.Message, 0, 2000)
			for i := 0; i < len(msgs); i++ {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					b.StartTimer()
				}
				batch = append(batch, m)
				if len(batch) == cap(batch) || i == len(msgs)-1 {
					if err := r.CommitMessages(ctx, batch...); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			b.StopTimer()
			r.Close()
			n += len(msgs)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("consumer", func(b *testing.B) {
		n := 0
		b.StopTimer()
		for range b.N {
			a := &countingApplier{}
			c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "bench-" + time.Now().String()}, a)
			if err != nil {
				b.Fatal(err)
			}
			cctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- c.Run(cctx) }()
			for a.n.Load() == 0 {
				time.Sleep(100 * time.Microsecond)
			}
			first := a.n.Load()
			b.StartTimer()
			for a.n.Load() < int64(len(msgs)) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			cancel()
			<-done
			c.Close()
			n += len(msgs) - int(first)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("decode-only", func(b *testing.B) {
		n := 0
		for b.Loop() {
			d := (&Consumer{}).decode(msgs)
			if len(d.rejects) > 0 {
				b.Fatalf("%d rejects", len(d.rejects))
			}
			n += len(msgs)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})
}
