package sdk_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
)

// TestPendingGauges: the backlog gauges report, per subscriber, what the
// durable consumer holds back while the handler is blocked.
func TestPendingGauges(t *testing.T) {
	e := newEnv(t)
	msgs := migrations(20, 1)
	for _, m := range msgs {
		sdktest.Publish(t, e.js, m)
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
