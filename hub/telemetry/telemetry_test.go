package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/internal/buildinfo"
)

func setup(tb testing.TB, cfg telemetry.Config) *telemetry.Telemetry {
	tb.Helper()
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("Setup: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	})
	return tel
}

func scrape(tb testing.TB, h http.Handler) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET /metrics: status %d", rec.Code)
	}
	return rec.Body.String()
}

// TestMetricNames checks the names /metrics actually prints for the naming
// convention documented in the package comment.
func TestMetricNames(t *testing.T) {
	tel := setup(t, telemetry.Config{ServiceName: "pophub-test"})
	m := tel.Meter("test")
	ctx := context.Background()

	c, err := m.Int64Counter("pophub.http.requests", metric.WithUnit("{request}"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(ctx, 3)
	h, err := m.Float64Histogram("pophub.http.request.duration", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	h.Record(ctx, 0.003)
	g, err := m.Int64Gauge("pophub.outbox.backlog", metric.WithUnit("{entry}"))
	if err != nil {
		t.Fatal(err)
	}
	g.Record(ctx, 7)
	b, err := m.Int64Counter("pophub.ingest.bytes", metric.WithUnit("By"))
	if err != nil {
		t.Fatal(err)
	}
	b.Add(ctx, 100)

	body := scrape(t, tel.MetricsHandler())
	for _, want := range []string{
		"pophub_http_requests_total 3",
		`pophub_http_request_duration_seconds_bucket{le="0.0025"} 0`,
		`pophub_http_request_duration_seconds_bucket{le="0.005"} 1`,
		"pophub_http_request_duration_seconds_count 1",
		"pophub_outbox_backlog 7",
		"pophub_ingest_bytes_total 100",
		"# TYPE go_goroutines gauge",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q; got:\n%s", want, body)
		}
	}
	// Every metric is ours or a standard runtime collector's; no target_info,
	// no otel_scope_* labels.
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "pophub_") && !strings.HasPrefix(line, "go_") && !strings.HasPrefix(line, "process_") {
			t.Errorf("unexpected metric line %q", line)
		}
		if strings.Contains(line, "otel_scope") {
			t.Errorf("scope label in %q", line)
		}
	}
}

// TestSetupsAreIndependent checks that each Setup has its own registry, so
// parallel tests and several hubs in one process do not collide.
func TestSetupsAreIndependent(t *testing.T) {
	a := setup(t, telemetry.Config{})
	b := setup(t, telemetry.Config{})
	c, err := a.Meter("a").Int64Counter("pophub.only.in.a", metric.WithUnit("{x}"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 1)
	if got := scrape(t, b.MetricsHandler()); strings.Contains(got, "pophub_only_in_a") {
		t.Errorf("metric of one Setup appears in another's /metrics")
	}
	if got := scrape(t, a.MetricsHandler()); !strings.Contains(got, "pophub_only_in_a_total 1") {
		t.Errorf("metric missing from its own /metrics:\n%s", got)
	}
}

// TestNoExport checks the provider without an endpoint: no span records,
// and a span under incoming trace context, sampled or not, is that context,
// so what the hub injects downstream is what came in. A recording span
// there would hand on a span ID that no backend ever receives.
func TestNoExport(t *testing.T) {
	tel := setup(t, telemetry.Config{})
	if tel.ExportsTraces() {
		t.Fatal("ExportsTraces() = true without endpoint")
	}
	tr := tel.Tracer("test")

	_, root := tr.Start(context.Background(), "root")
	if root.IsRecording() || root.SpanContext().IsSampled() {
		t.Error("root span records or is sampled without an endpoint")
	}
	root.End()

	for _, tc := range []struct {
		name    string
		carrier propagation.MapCarrier
	}{
		{"sampled", propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "dept=1"}},
		{"unsampled", propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tel.Propagator.Extract(context.Background(), tc.carrier)
			parent := trace.SpanContextFromContext(ctx)
			ctx, child := tr.Start(ctx, "ingest", trace.WithSpanKind(trace.SpanKindConsumer))
			defer child.End()
			if child.IsRecording() {
				t.Error("span under incoming trace context records without an endpoint")
			}
			if got := child.SpanContext(); !got.Equal(parent) {
				t.Errorf("span context = %s/%s flags %s, want the parent's %s/%s flags %s",
					got.TraceID(), got.SpanID(), got.TraceFlags(), parent.TraceID(), parent.SpanID(), parent.TraceFlags())
			}
			out := propagation.MapCarrier{}
			tel.Propagator.Inject(ctx, out)
			for _, k := range []string{"traceparent", "tracestate"} {
				if out[k] != tc.carrier[k] {
					t.Errorf("injected %s = %q, want %q as it came", k, out[k], tc.carrier[k])
				}
			}
		})
	}
}

// TestOTLPExport checks that spans reach an OTLP/HTTP endpoint, given as a
// URL and as host:port.
func TestOTLPExport(t *testing.T) {
	var (
		mu    sync.Mutex
		paths []string
		got   = make(chan struct{}, 10)
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
		got <- struct{}{}
	}))
	t.Cleanup(srv.Close)

	for _, endpoint := range []string{srv.URL, strings.TrimPrefix(srv.URL, "http://")} {
		t.Run(endpoint, func(t *testing.T) {
			tel, err := telemetry.Setup(context.Background(), telemetry.Config{OTLPEndpoint: endpoint})
			if err != nil {
				t.Fatal(err)
			}
			if !tel.ExportsTraces() {
				t.Error("ExportsTraces() = false with endpoint")
			}
			_, span := tel.Tracer("test").Start(context.Background(), "op", trace.WithSpanKind(trace.SpanKindServer))
			if !span.SpanContext().IsSampled() {
				t.Error("root span not sampled with an endpoint")
			}
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tel.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			select {
			case <-got:
			case <-ctx.Done():
				t.Fatal("no export request received")
			}
			mu.Lock()
			defer mu.Unlock()
			if want := "POST /v1/traces application/x-protobuf"; paths[len(paths)-1] != want {
				t.Errorf("export request = %q, want %q", paths[len(paths)-1], want)
			}
		})
	}
}

func TestBadEndpoint(t *testing.T) {
	for _, endpoint := range []string{"ftp://x:1", "http://", "host:1/path"} {
		if _, err := telemetry.Setup(context.Background(), telemetry.Config{OTLPEndpoint: endpoint}); err == nil {
			t.Errorf("Setup(%q) succeeded, want error", endpoint)
		}
	}
}

// TestMetricsNameTheBuild: /metrics says which build runs, so that a
// dashboard shows the instances a rolling upgrade has not reached yet.
func TestMetricsNameTheBuild(t *testing.T) {
	tel := setup(t, telemetry.Config{})
	body := scrape(t, tel.MetricsHandler())
	b := buildinfo.Read()
	want := fmt.Sprintf(`pophub_build_info{goversion=%q,revision=%q,version=%q} 1`, b.GoVersion, b.ShortRevision(), b.Version)
	if !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s; got:\n%s", want, body)
	}
}
