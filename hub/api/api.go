// Package api is the hub's HTTP API: golden records and their history under
// /v1/persons, liveness and readiness probes, and the Prometheus metrics
// endpoint.
//
// Routing uses net/http.ServeMux method and path patterns. Every request,
// matched or not, passes one middleware that counts it
// (pophub_http_requests_total{route,method,code}), times it
// (pophub_http_request_duration_seconds{route}), opens a server span named
// after the route pattern, writes a debug access log line, and turns a panic
// into a 500. The route is always the pattern ("/v1/persons/{citizen_id}"),
// never the path: paths carry citizen IDs, which must not reach logs, metric
// labels or spans.
//
// Errors are RFC 9457 problem details (application/problem+json), typed
// "urn:pophub:problem:<slug>". Error kinds map to them in one table:
//
//	hub.ErrInvalid, malformed citizen ID  400  invalid-request
//	ErrUnauthenticated                    401  unauthenticated
//	ErrForbidden                          403  forbidden
//	ErrForbiddenPurpose                   403  forbidden-purpose
//	hub.ErrNotFound, unknown route        404  not-found
//	wrong method                          405  method-not-allowed
//	hub.ErrConflict                       409  conflict
//	ErrRateLimited                        429  rate-limited
//	hub.ErrUnavailable                    503  unavailable
//	anything else                         500  internal
//
// A 500 says nothing of its cause; the cause is logged under the problem's
// instance (the request id, also sent as X-Request-Id), as an error. A 503
// carries Retry-After and its cause is logged as a warning: the store or
// another dependency is down, which /readyz reports too.
//
// Access control is a seam, not a feature, here: Config.Authorizer, when set,
// is consulted on every /v1 request, one that matches no route included
// (as RouteUnmatched), and can refuse it, narrow what it returns and audit
// its outcome. The security issue plugs bearer tokens,
// X-Purpose, section filtering and the audit trail in there.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Reader is what the API needs of a store. hub.Store satisfies it.
// Implementations are safe for concurrent use and return hub.ErrNotFound for
// an unknown person.
type Reader interface {
	// Person returns the golden record, or an error wrapping hub.ErrNotFound.
	Person(ctx context.Context, id citizenid.ID) (hub.Record, error)
	// History returns every applied change in version order, or an error
	// wrapping hub.ErrNotFound.
	History(ctx context.Context, id citizenid.ID) ([]hub.Change, error)
}

// Check is one readiness probe: Probe returns nil when the dependency it
// names (Kafka, the store, NATS) is reachable. It must honour ctx, which
// carries Config.ReadyTimeout.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Route patterns, as registered on the ServeMux. The path part (without the
// method) is the route label in metrics and logs.
const (
	RoutePerson  = "GET /v1/persons/{citizen_id}"
	RouteHistory = "GET /v1/persons/{citizen_id}/history"
	RouteHealthz = "GET /healthz"
	RouteReadyz  = "GET /readyz"
	RouteMetrics = "GET /metrics"

	RoutePersons          = "GET /v1/persons"
	RouteUrbanRural       = "GET /v1/stats/urban-rural"
	RouteResidencePermits = "GET /v1/stats/residence-permits"
)

// RouteUnmatched labels requests no route matched (404, 405, redirects), so
// that arbitrary paths never become label values. It is also the route a
// /v1 request no route matched is authorised for (Authorizer): every /v1
// request is the Authorizer's to refuse and audit, one sent to no route
// included.
const RouteUnmatched = "unmatched"

// Config configures a Server. Only Store is required; the zero value of every
// other field is usable.
type Config struct {
	// Store answers person and history reads. Required.
	Store Reader

	// Lister serves GET /v1/persons (a region's records in pages) when
	// set; hub.Store satisfies it.
	Lister Lister

	// StreamSequence returns the notification stream's last sequence, the
	// stamp of a walk of GET /v1/persons. Nil stamps 0.
	StreamSequence func(ctx context.Context) (uint64, error)

	// Counter serves the statistics routes when set, with Regions
	// (required with it); hub.Store satisfies Counter.
	Counter Counter
	Regions Regions

	// Policies serves GET /v1/policies and GET /v1/eligibility/{citizen_id}
	// when set: settlement and residence-permit decisions from the golden
	// records (Lister, when set, finds household members).
	Policies *eligibility.Catalog

	// Mount adds handlers served under their patterns ("POST /v1/events")
	// through the same middleware (metrics, spans, access log, request
	// id), e.g. the department gateway.
	Mount map[string]http.Handler

	// Guarded adds handlers that the Authorizer guards as it guards the
	// reads: each request is authorised for its pattern before the
	// handler runs (a refusal is answered as a problem and audited by the
	// Authorizer), and the status the handler answered is reported to the
	// Grant (Done) after it. The handler finds the Grant with GrantOf.
	// Without an Authorizer they are served as Mount's are. The department
	// gateway is one under an access policy.
	Guarded map[string]http.Handler

	// Ready lists the readiness checks /readyz runs. None means always ready.
	Ready []Check

	// ReadyTimeout bounds each readiness check. Default
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration

	// Metrics serves GET /metrics (telemetry.MetricsHandler). Nil means the
	// route is not registered.
	Metrics http.Handler

	// Logger receives access logs (debug level), server errors and panics.
	// Nil discards.
	Logger *slog.Logger

	// Meter creates the HTTP metrics. Nil means no metrics.
	Meter metric.Meter

	// Tracer opens a server span per request. Nil means no spans.
	Tracer trace.Tracer

	// Propagator extracts the caller's trace context from request headers
	// (W3C traceparent). Nil means every request starts a new trace.
	Propagator propagation.TextMapPropagator

	// Authorizer, when set, is consulted on every /v1 request. Nil lets every
	// caller read everything (development and the all-in-one demo).
	Authorizer Authorizer

	// ShutdownTimeout bounds the graceful shutdown of Run. Default 10 s.
	ShutdownTimeout time.Duration

	// ReadTimeout bounds the reading of a whole request, body included,
	// in Run, so that a slow client cannot hold a connection with a
	// trickled upload (a gateway batch may be 16 MiB: the default, 1
	// minute, asks for about 280 kB/s at that size). Default
	// DefaultReadTimeout.
	ReadTimeout time.Duration
}

// DefaultReadTimeout is Config.ReadTimeout unless set.
const DefaultReadTimeout = time.Minute

// DefaultReadyTimeout bounds each readiness check unless
// Config.ReadyTimeout says otherwise. The checks run at once, so /readyz
// answers within about this long, well inside the 5 s the compose
// healthcheck waits: a dependency that does not answer is named in a 503
// ("no answer within 2s") instead of the probe timing out with no reason.
// A check with a longer bound of its own (Kafka's 5 s in hub/ingest, meant
// for callers without a deadline) is cut to this one.
const DefaultReadyTimeout = 2 * time.Second

func (c *Config) setDefaults() {
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Meter == nil {
		c.Meter = metricnoop.NewMeterProvider().Meter("")
	}
	if c.Tracer == nil {
		c.Tracer = tracenoop.NewTracerProvider().Tracer("")
	}
}

// Server is the HTTP API. It is safe for concurrent use.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	routes   map[string]string // registered pattern → route label
	requests metric.Int64Counter
	duration metric.Float64Histogram
	ready    readyLog
}

// New builds a Server. It panics if cfg.Store is nil or a readiness check has
// no name or probe, as http.Handle panics on a nil handler: both are
// programming errors.
func New(cfg Config) *Server {
	if cfg.Store == nil {
		panic("api: Config.Store is nil")
	}
	for _, c := range cfg.Ready {
		if c.Name == "" || c.Probe == nil {
			panic("api: readiness check without name or probe")
		}
	}
	if cfg.Counter != nil && cfg.Regions == nil {
		panic("api: Config.Counter without Config.Regions")
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, mux: http.NewServeMux(), routes: map[string]string{}}
	s.initMetrics()

	s.handle(RoutePerson, s.personRoute(RoutePerson, s.person))
	s.handle(RouteHistory, s.personRoute(RouteHistory, s.history))
	if cfg.Lister != nil {
		s.handle(RoutePersons, s.queryRoute(RoutePersons, s.listPersons))
	}
	if cfg.Counter != nil {
		s.handle(RouteUrbanRural, s.queryRoute(RouteUrbanRural, s.urbanRural))
		s.handle(RouteResidencePermits, s.queryRoute(RouteResidencePermits, s.residencePermits))
		s.handle(RouteStatsPage, http.HandlerFunc(s.statsPage))
		s.handle(RouteStatsAsset, http.HandlerFunc(s.statsPage))
	}
	if cfg.Policies != nil {
		s.handle(RoutePolicies, s.queryRoute(RoutePolicies, s.policies))
		s.handle(RouteEligibility, s.personRoute(RouteEligibility, s.eligibility))
	}
	for pattern, h := range cfg.Mount {
		s.handle(pattern, h)
	}
	for pattern, h := range cfg.Guarded {
		s.handle(pattern, s.guardedRoute(pattern, h))
	}
	s.handle(RouteHealthz, http.HandlerFunc(s.healthz))
	s.handle(RouteReadyz, http.HandlerFunc(s.readyz))
	if cfg.Metrics != nil {
		s.handle(RouteMetrics, cfg.Metrics)
	}
	return s
}

func (s *Server) handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	_, path, _ := strings.Cut(pattern, " ")
	s.routes[pattern] = path
}

// Handler returns the API with its middleware.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// Routes returns the registered route patterns ("GET /v1/persons/{citizen_id}"),
// sorted.
func (s *Server) Routes() []string {
	out := make([]string, 0, len(s.routes))
	for p := range s.routes {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
