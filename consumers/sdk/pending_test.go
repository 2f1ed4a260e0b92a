package sdk_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/faults"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestPendingGauges: the backlog gauges report, per subscriber, what the
// durable consumer holds back while the handler is blocked.
func TestPendingGauges(t *testing.T) {
	e := newEnv(t)
	msgs := migrations(20, 1)
	for _, m := range msgs {
		sdktest.Publish(t, e.js, m)
	}
	// The server holds back what exceeds the consumer's MaxAckPending (the
	// SDK's queues take everything it delivers): a consumer created with a
	// small one keeps it when the SDK binds it.
	if _, err := e.js.CreateConsumer(context.Background(), schemas.StreamName, jetstream.ConsumerConfig{Durable: "lagging", FilterSubject: "pop.>",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 8}); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	release := make(chan struct{})
	run(t, sdk.Config{Name: "lagging", URL: e.srv.URL(), Filters: siFilters, MeterProvider: mp, Concurrency: 1, FetchBatch: 4,
		Start: sdk.Start{Policy: sdk.StartAll},
		Handler: func(ctx context.Context, _ *sdk.Delivery) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}})
	defer close(release)
	gauge := func(name string) (int64, bool) {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == name && len(g.DataPoints) == 1 {
					if v, _ := g.DataPoints[0].Attributes.Value("subscriber"); v.AsString() != "lagging" {
						t.Errorf("%s labelled %v", name, g.DataPoints[0].Attributes)
					}
					return g.DataPoints[0].Value, true
				}
			}
		}
		return 0, false
	}
	waitFor(t, "the pending gauges", 10*time.Second, func() bool {
		p, ok1 := gauge("pophub.sdk.pending")
		a, ok2 := gauge("pophub.sdk.ack_pending")
		return ok1 && ok2 && p > 0 && a > 0 && p+a <= int64(len(msgs))
	})
}

// backlogGauges collects the backlog gauges of subscriber name: pending,
// ack_pending and their timestamp, each with whether it was reported.
type backlogGauges struct {
	pending, ackPending int64
	stamp               float64
	hasPending, hasAck  bool
	hasStamp            bool
}

func readBacklog(t *testing.T, reader *sdkmetric.ManualReader, name string) backlogGauges {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var g backlogGauges
	mine := func(attrs attribute.Set) bool {
		v, _ := attrs.Value("subscriber")
		return v.AsString() == name
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					switch {
					case !mine(dp.Attributes):
					case m.Name == "pophub.sdk.pending":
						g.pending, g.hasPending = dp.Value, true
					case m.Name == "pophub.sdk.ack_pending":
						g.ackPending, g.hasAck = dp.Value, true
					}
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					if mine(dp.Attributes) && m.Name == "pophub.sdk.pending.timestamp" {
						g.stamp, g.hasStamp = dp.Value, true
					}
				}
			}
		}
	}
	return g
}

// TestPendingGaugesUnknownWhileCutOff: a subscriber cut off from NATS
// (through a proxy) while the server's backlog for it grows stops
// reporting the backlog rather than freezing its last value, its
// timestamp stops advancing, and it warns once, not at every refresh;
// reconnected, it reports the server's backlog again, says so at INFO,
// and the timestamp moves on.
func TestPendingGaugesUnknownWhileCutOff(t *testing.T) {
	e := newEnv(t)
	proxy, err := faults.NewProxy(strings.TrimPrefix(e.srv.URL(), "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	before, during := migrations(20, 1), migrationMsgs(1000, 30)
	sdktest.Publish(t, e.js, before...)
	reader := sdkmetric.NewManualReader()
	var logs testenv.LogBuffer
	release := make(chan struct{})
	run(t, sdk.Config{Name: "cutoff", URL: "nats://" + proxy.Addr(), Filters: siFilters, Concurrency: 1, FetchBatch: 4,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Logger: debugLogger(&logs),
		Start: sdk.Start{Policy: sdk.StartAll},
		Handler: func(ctx context.Context, _ *sdk.Delivery) error {
			select { // holds the backlog back
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}})
	defer close(release)
	const warning, recovery = "reading the backlog from the server is failing", "reading the backlog from the server again"

	var g backlogGauges
	waitFor(t, "the backlog reported", 15*time.Second, func() bool {
		g = readBacklog(t, reader, "cutoff")
		return g.hasPending && g.hasAck && g.hasStamp && g.pending+g.ackPending == int64(len(before))
	})
	if age := time.Since(time.UnixMilli(int64(g.stamp * 1000))); age < 0 || age > 10*time.Second {
		t.Errorf("timestamp %v is %v old, want the last refresh's", g.stamp, age)
	}

	proxy.SetDown(true)
	cut := time.Now()
	proxy.Reset()
	sdktest.Publish(t, e.js, during...) // the server's backlog grows unseen
	waitFor(t, "the backlog to be unreported", 30*time.Second, func() bool {
		g = readBacklog(t, reader, "cutoff")
		return !g.hasPending && !g.hasAck
	})
	if !g.hasStamp || g.stamp > float64(cut.UnixMilli())/1000 {
		t.Fatalf("timestamp while cut off: %v (reported %v), want the last refresh before the cut at %v", g.stamp, g.hasStamp, cut)
	}
	stamp := g.stamp
	// A second failed refresh: still unreported, the timestamp still, no
	// second warning.
	waitFor(t, "a second failed refresh", 30*time.Second, func() bool {
		return strings.Count(logs.String(), `msg="subscriber: reading the backlog from the server"`) >= 1
	})
	g = readBacklog(t, reader, "cutoff")
	if g.hasPending || g.hasAck {
		t.Errorf("backlog reported while cut off: pending %d (%v), ack_pending %d (%v)", g.pending, g.hasPending, g.ackPending, g.hasAck)
	}
	if g.stamp != stamp {
		t.Errorf("timestamp moved from %v to %v while cut off", stamp, g.stamp)
	}
	if n := strings.Count(logs.String(), warning); n != 1 || !strings.Contains(logs.String(), "level=WARN msg=\"subscriber: "+warning) {
		t.Errorf("%d warnings %q, want one at WARN; logs:\n%s", n, warning, logs.String())
	}
	if strings.Contains(logs.String(), recovery) {
		t.Errorf("recovery logged while cut off; logs:\n%s", logs.String())
	}

	proxy.SetDown(false)
	waitFor(t, "the backlog reported again", 30*time.Second, func() bool {
		g = readBacklog(t, reader, "cutoff")
		return g.hasPending && g.hasAck && g.pending+g.ackPending == int64(len(before)+len(during))
	})
	if g.stamp <= stamp {
		t.Errorf("timestamp %v after reconnecting, want after %v", g.stamp, stamp)
	}
	if !strings.Contains(logs.String(), "level=INFO msg=\"subscriber: "+recovery) {
		t.Errorf("recovery not logged at INFO; logs:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("%d warnings %q, want one; logs:\n%s", n, warning, logs.String())
	}
}
