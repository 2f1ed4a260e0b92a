// Package telemetry sets up the hub's OpenTelemetry providers: a meter
// provider whose metrics are served in Prometheus text format from a private
// registry, a tracer provider that exports over OTLP/HTTP when an endpoint is
// configured, and the W3C TraceContext propagator that carries trace context
// through HTTP, Kafka record headers and NATS headers.
//
// Setup touches no global state, and cmd/pophub does not install the
// providers as the otel globals: everything of pophub's takes its meter,
// tracer and propagator as explicit dependencies. serve and dev, and the
// client commands given --otlp (publish, import, cdc, si-subscriber), each
// build their own Telemetry. InstallGlobals is there for a program that
// embeds pophub beside libraries which only know the globals.
//
// # Metric naming
//
// Name instruments "pophub.<area>.<what>" with a UCUM base unit: "s" for
// durations, "By" for sizes, and an annotation such as "{event}" or
// "{request}" for counts. The Prometheus exporter replaces dots with
// underscores, appends the unit ("s" becomes "_seconds", "By" "_bytes";
// annotations are dropped) and appends "_total" to counters, so
//
//	counter   "pophub.http.requests"          unit "{request}" → pophub_http_requests_total
//	histogram "pophub.http.request.duration"  unit "s"         → pophub_http_request_duration_seconds
//	gauge     "pophub.outbox.backlog"         unit "{entry}"   → pophub_outbox_backlog
//
// Every histogram in seconds gets the same buckets, DurationBuckets (0.5 ms
// to 30 s), so that dashboards can compare them; a view installs them and
// overrides boundaries passed when the instrument is created. (The SDK's
// default buckets are meant for milliseconds.)
//
// Never use a citizen ID as an attribute value: attributes become metric
// labels and span attributes.
//
// # Trace export
//
// Spans wait for export in a queue of Config.SpanQueueSize spans and go to
// the collector in requests of up to 2048. When the queue is full a span is
// dropped rather than make the code that ended it wait, and a warning is
// logged at most every ten seconds. With an OTLP endpoint, /metrics shows
// what became of the spans, every series from zero:
//
//	pophub_trace_spans_ended_total                    sampled spans ended for export
//	pophub_trace_spans_exported_total                 spans the collector accepted
//	pophub_trace_spans_dropped_total{reason}          queue_full or export_failed
//	pophub_trace_spans_queued                         spans waiting in the queue
//	pophub_trace_spans_queue_capacity                 the queue's size
//
// ended = exported + dropped + queued, bar the spans of an export under
// way.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pophub/pophub/internal/buildinfo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Config configures Setup. The zero value is usable: service name "pophub",
// no trace export, logs discarded.
type Config struct {
	// ServiceName is the service.name resource attribute. Default "pophub".
	ServiceName string

	// OTLPEndpoint is where spans are exported over OTLP/HTTP. Either a URL
	// ("http://collector:4318", "https://otel.example/v1/traces"; a URL
	// without a path gets /v1/traces) or host:port, which means plain HTTP
	// ("localhost:4318"). Empty (and no SpanProcessor) means traces are
	// not exported: the tracer provider is then a no-op whose spans never
	// record and carry their parent's context, so trace context passes
	// through the hub unchanged.
	OTLPEndpoint string

	// Sampler overrides the sampler used when OTLPEndpoint or
	// SpanProcessor is set. Nil means ParentBased(AlwaysSample).
	Sampler sdktrace.Sampler

	// SpanProcessor, when set, receives every sampled span besides the
	// OTLP exporter (tests pass a tracetest.SpanRecorder). Spans are then
	// sampled as with an endpoint, even without one.
	SpanProcessor sdktrace.SpanProcessor

	// SpanQueueSize is how many ended spans may wait for export to
	// OTLPEndpoint (default DefaultSpanQueueSize). When the queue is full
	// a span is dropped rather than wait: it is counted in
	// pophub_trace_spans_dropped_total{reason="queue_full"} and logged at
	// most every ten seconds.
	SpanQueueSize int

	// Logger receives dropped spans (rate-limited), and otel's internal
	// errors once RouteErrors (or InstallGlobals) has routed otel's error
	// handler to it; until then those go to otel's default handler, which
	// writes them to standard error. Nil discards.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ServiceName == "" {
		c.ServiceName = "pophub"
	}
	if c.SpanQueueSize <= 0 {
		c.SpanQueueSize = DefaultSpanQueueSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// buildInfoGauge is pophub_build_info, always 1, whose labels name the
// running build, so that a dashboard shows which instances still run an
// old one during a rolling upgrade.
func buildInfoGauge(b buildinfo.Info) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pophub_build_info",
		Help:        "The running build of pophub: module version, source revision (+changes when the tree had uncommitted changes), and Go version. Always 1.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.ShortRevision(), "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}

// Telemetry holds the providers Setup built. Its fields are safe for
// concurrent use; call Shutdown once at exit to flush pending spans.
type Telemetry struct {
	// MeterProvider feeds the Prometheus registry served by MetricsHandler.
	MeterProvider *sdkmetric.MeterProvider
	// TracerProvider exports spans over OTLP/HTTP when configured. When
	// nothing exports, it is a no-op provider (see Config.OTLPEndpoint).
	TracerProvider trace.TracerProvider
	// Propagator is the W3C TraceContext propagator.
	Propagator propagation.TextMapPropagator

	registry *prometheus.Registry
	logger   *slog.Logger
	exports  bool
	// spans is TracerProvider when it records; nil when it is the no-op.
	spans *sdktrace.TracerProvider
}

// Setup builds the providers. It does not contact the OTLP endpoint (the
// exporter connects lazily), and changes no global state.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	cfg.setDefaults()
	build := buildinfo.Read()
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", build.Version+"+"+build.ShortRevision()),
	))
	if err != nil {
		return nil, fmt.Errorf("building telemetry resource: %w", err)
	}

	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("registering Go runtime metrics: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("registering process metrics: %w", err)
	}
	if err := reg.Register(buildInfoGauge(build)); err != nil {
		return nil, fmt.Errorf("registering build information: %w", err)
	}
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutTargetInfo(),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("creating Prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(exporter),
		sdkmetric.WithView(secondsBuckets),
	)

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	exports := cfg.OTLPEndpoint != ""
	if exports {
		opts, err := endpointOptions(cfg.OTLPEndpoint)
		if err != nil {
			_ = mp.Shutdown(ctx)
			return nil, err
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			_ = mp.Shutdown(ctx)
			return nil, fmt.Errorf("creating OTLP trace exporter: %w", err)
		}
		// Not sdktrace.WithBatcher(exp): its defaults (a queue of 2048)
		// dropped most spans under load, and without a word.
		sp, err := newSpanPipeline(exp, cfg.SpanQueueSize, mp.Meter("github.com/pophub/pophub/hub/telemetry"), cfg.Logger)
		if err != nil {
			_ = exp.Shutdown(ctx)
			_ = mp.Shutdown(ctx)
			return nil, err
		}
		topts = append(topts, sdktrace.WithSpanProcessor(sp))
	}
	if cfg.SpanProcessor != nil {
		topts = append(topts, sdktrace.WithSpanProcessor(cfg.SpanProcessor))
	}
	tel := &Telemetry{
		MeterProvider: mp,
		Propagator:    propagation.TraceContext{},
		registry:      reg,
		logger:        cfg.Logger,
		exports:       exports,
	}
	if exports || cfg.SpanProcessor != nil {
		sampler := cfg.Sampler
		if sampler == nil {
			sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
		}
		tel.spans = sdktrace.NewTracerProvider(append(topts, sdktrace.WithSampler(sampler))...)
		tel.TracerProvider = tel.spans
	} else {
		// Nothing is ever exported, so no span may record, whatever its
		// parent says: a span sampled under a sampled parent would hand
		// on its own span ID, which no backend receives, and the next
		// system's spans would hang from a missing parent. Nor may a span
		// replace the context it was started in: the SDK's non-recording
		// spans get a new span ID and clear the sampled flag, and the
		// gateway's publisher injects whatever its span carries. The no-op
		// provider's spans are their parent's context.
		tel.TracerProvider = tracenoop.NewTracerProvider()
	}
	return tel, nil
}

// secondsBuckets gives histograms measured in seconds buckets that suit
// durations from sub-millisecond store calls to multi-second stalls.
func secondsBuckets(inst sdkmetric.Instrument) (sdkmetric.Stream, bool) {
	if inst.Kind != sdkmetric.InstrumentKindHistogram || inst.Unit != "s" {
		return sdkmetric.Stream{}, false
	}
	return sdkmetric.Stream{
		Name:        inst.Name,
		Description: inst.Description,
		Unit:        inst.Unit,
		Aggregation: sdkmetric.AggregationExplicitBucketHistogram{
			Boundaries: DurationBuckets(),
		},
	}, true
}

// DurationBuckets returns the histogram bucket boundaries, in seconds, that
// duration histograms get by default.
func DurationBuckets() []float64 {
	return []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
}

func endpointOptions(endpoint string) ([]otlptracehttp.Option, error) {
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("parsing OTLP endpoint %q: want http(s)://host[:port][/path] or host:port", endpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		return []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.String())}, nil
	}
	if strings.ContainsAny(endpoint, "/?#") {
		return nil, fmt.Errorf("parsing OTLP endpoint %q: want http(s)://host[:port][/path] or host:port", endpoint)
	}
	return []otlptracehttp.Option{otlptracehttp.WithEndpoint(endpoint), otlptracehttp.WithInsecure()}, nil
}

// Meter returns a meter of the hub's meter provider.
func (t *Telemetry) Meter(name string) metric.Meter { return t.MeterProvider.Meter(name) }

// Tracer returns a tracer of the hub's tracer provider.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// ExportsTraces reports whether spans are exported (an OTLP endpoint is set).
func (t *Telemetry) ExportsTraces() bool { return t.exports }

// Registry is the private Prometheus registry MetricsHandler serves. Besides
// the OpenTelemetry metrics it holds the standard go_* and process_*
// collectors. Callers may register further collectors.
func (t *Telemetry) Registry() *prometheus.Registry { return t.registry }

// MetricsHandler serves the registry in the Prometheus text exposition format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
		ErrorLog:      slogPromLogger{t.logger},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// InstallGlobals makes these providers and the propagator the otel globals
// and routes otel's internal errors to the configured logger. pophub's own
// commands do not call it (they pass the providers explicitly); a program
// embedding pophub may, once, at start.
func (t *Telemetry) InstallGlobals() {
	otel.SetMeterProvider(t.MeterProvider)
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetTextMapPropagator(t.Propagator)
	RouteErrors(t.logger)
}

// RouteErrors sends otel's internal errors, which by default go to
// standard error through the log package once each (a line per failed
// export, past the log level and format), to logger: a failed span
// export, which the span pipeline already counts and logs at most every
// ten seconds, at debug; any other at warn, each distinct text at most
// once a minute. It sets otel's global error handler, once per process.
func RouteErrors(logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &errorLog{logger: logger, last: map[string]time.Time{}}
	otel.SetErrorHandler(h)
}

// errorLog is otel's error handler as RouteErrors sets it.
type errorLog struct {
	logger *slog.Logger
	mu     sync.Mutex
	last   map[string]time.Time // error text → when last logged
}

// otelErrorEvery is how often one otel error text may reach the log.
const otelErrorEvery = time.Minute

func (h *errorLog) Handle(err error) {
	if errors.As(err, new(reportedError)) {
		h.logger.Debug("telemetry error", "err", err)
		return
	}
	msg, now := err.Error(), time.Now()
	h.mu.Lock()
	if at, ok := h.last[msg]; ok && now.Sub(at) < otelErrorEvery {
		h.mu.Unlock()
		return
	}
	if len(h.last) > 64 {
		clear(h.last)
	}
	h.last[msg] = now
	h.mu.Unlock()
	h.logger.Warn("telemetry error", "err", err)
}

// Shutdown flushes pending spans and stops both providers. Metrics are no
// longer served afterwards. Calling it twice returns the providers' errors
// for a repeated shutdown, which callers may ignore.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.spans != nil {
		if err := t.spans.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutting down tracer provider: %w", err))
		}
	}
	if err := t.MeterProvider.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutting down meter provider: %w", err))
	}
	return errors.Join(errs...)
}

// slogPromLogger adapts slog to promhttp's Println-style error log.
type slogPromLogger struct{ l *slog.Logger }

func (s slogPromLogger) Println(v ...any) { s.l.Warn("serving metrics", "err", fmt.Sprint(v...)) }
