package sdk_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/consumers/socialinsurance"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// BenchmarkSDK measures, on one in-process server and one stream of
// notifications in the hub's format, in the same run:
//
//	raw_msgs/s  JetStream pull (Consumer.Messages) and Ack, no decoding
//	sdk_msgs/s  the SDK with a no-op handler
//	ratio       sdk / raw (target ≥ 0.8)
//	raw_consume_msgs/s, consume_ratio
//	            the same raw loop with Consumer.Consume, the callback API
//	            the SDK itself uses, and sdk / that
//	pg_msgs/s   the SDK with the social-insurance PostgreSQL handler
//
// Both sides read the whole stream through a new durable consumer with
// explicit acks and pulls of 512 messages (raw with the Messages
// iterator, the SDK with Consume), ack every message without waiting for
// the server's confirmation, and are timed from the first message to the
// last. They run in rounds (POPHUB_BENCH_ROUNDS, default 5), raw and SDK
// back to back, the one that goes first alternating; raw_msgs/s and
// sdk_msgs/s are the medians of the rounds and ratio the median of the
// rounds' ratios, so that a burst of load from other processes on a
// shared machine skews one round rather than the result.
//
// Run with -benchtime=1x: each run handles a fixed number of messages
// (POPHUB_BENCH_N, default 100,000, per side and round; a tenth of that
// through PostgreSQL, once).
func BenchmarkSDK(b *testing.B) {
	n, rounds := 100000, 5
	if v := os.Getenv("POPHUB_BENCH_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	if v := os.Getenv("POPHUB_BENCH_ROUNDS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	srv := sdktest.StartServer(b)
	_, js := sdktest.Connect(b, srv.URL())
	sdktest.CreateStream(b, js, schemas.StreamName, "pop")
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		from, to := daoli, beijing
		if i%2 == 1 {
			from, to = beijing, nangang
		}
		m := sdktest.Migration(fmt.Sprintf("b%d", i), sdktest.CitizenID(i%50000), int64(i/50000+1), from, to)
		msgs[i] = sdktest.Msg(sdktest.Subject("pop", m, ""), m, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	}
	sdktest.Publish(b, js, msgs...)
	ctx := context.Background()

	noop := func(context.Context, *sdk.Delivery) error { return nil }
	for b.Loop() {
		var raws, rawConsumes, sdks, ratios, consumeRatios []float64
		for r := range max(rounds, 1) {
			var raw, rawConsume, s float64
			if r%2 == 0 {
				raw = rawRate(b, ctx, js, n)
				rawConsume = rawConsumeRate(b, ctx, js, n)
				s = sdkRate(b, srv.URL(), n, noop)
			} else {
				s = sdkRate(b, srv.URL(), n, noop)
				rawConsume = rawConsumeRate(b, ctx, js, n)
				raw = rawRate(b, ctx, js, n)
			}
			raws, rawConsumes, sdks = append(raws, raw), append(rawConsumes, rawConsume), append(sdks, s)
			ratios, consumeRatios = append(ratios, s/raw), append(consumeRatios, s/rawConsume)
		}
		b.Logf("ratios by round: %.2f; to raw Consume: %.2f", ratios, consumeRatios)
		b.ReportMetric(median(raws), "raw_msgs/s")
		b.ReportMetric(median(rawConsumes), "raw_consume_msgs/s")
		b.ReportMetric(median(sdks), "sdk_msgs/s")
		b.ReportMetric(median(ratios), "ratio")
		b.ReportMetric(median(consumeRatios), "consume_ratio")
		b.ReportMetric(pgRate(b, srv.URL(), n/10), "pg_msgs/s")
	}
}

// median returns the middle value of xs (the upper one of an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func rawRate(b *testing.B, ctx context.Context, js jetstream.JetStream, n int) float64 {
	name := fmt.Sprintf("raw%d", rand.Uint32())
	cons, err := js.CreateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: "pop.>", MaxAckPending: 2048})
	if err != nil {
		b.Fatal(err)
	}
	defer js.DeleteConsumer(ctx, schemas.StreamName, name)
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	var start time.Time
	for i := 0; i < n; i++ {
		m, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		_ = m.Ack()
		if i == 0 {
			start = time.Now()
		}
	}
	return float64(n-1) / time.Since(start).Seconds()
}

// rawConsumeRate is rawRate with Consumer.Consume: the callback acks.
func rawConsumeRate(b *testing.B, ctx context.Context, js jetstream.JetStream, n int) float64 {
	name := fmt.Sprintf("rawc%d", rand.Uint32())
	cons, err := js.CreateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: "pop.>", MaxAckPending: 2048})
	if err != nil {
		b.Fatal(err)
	}
	defer js.DeleteConsumer(ctx, schemas.StreamName, name)
	var seen atomic.Int64
	var start time.Time
	done := make(chan time.Time, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		switch seen.Add(1) {
		case 1:
			start = time.Now()
		case int64(n):
			done <- time.Now()
		}
	}, jetstream.PullMaxMessages(512))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	end := <-done
	return float64(n-1) / end.Sub(start).Seconds()
}

// sdkRate, like rawRate, times from the first message handled to the
// last (n-1 messages): the rate of a running consumer, without the setup
// before the first (the SDK's consumer and dead-letter stream lookups,
// raw's first pull) on either side.
func sdkRate(b *testing.B, url string, n int, h sdk.Handler) float64 {
	var handled, start, end atomic.Int64
	done := make(chan struct{})
	wrapped := func(ctx context.Context, d *sdk.Delivery) error {
		if err := h(ctx, d); err != nil {
			return err
		}
		switch handled.Add(1) {
		case 1:
			start.Store(time.Now().UnixNano())
		case int64(n):
			end.Store(time.Now().UnixNano())
			close(done)
		}
		return nil
	}
	name := fmt.Sprintf("sdk%d", rand.Uint32())
	s, err := sdk.New(sdk.Config{Name: name, URL: url, Filters: siFilters, Handler: wrapped, Start: sdk.Start{Policy: sdk.StartAll}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d handled", handled.Load(), n)
	}
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return float64(n-1) / time.Duration(end.Load()-start.Load()).Seconds()
}

func pgRate(b *testing.B, url string, n int) float64 {
	ctx := context.Background()
	store, err := socialinsurance.OpenStore(ctx, testenv.PostgresURL(), testenv.Schema(b), nil)
	if err != nil {
		b.Fatalf("opening the social-insurance store: %v", err)
	}
	defer store.Close()
	h, err := socialinsurance.NewHandler(store, "2301", metricnoop.NewMeterProvider())
	if err != nil {
		b.Fatal(err)
	}
	return sdkRate(b, url, n, h.Handle)
}
