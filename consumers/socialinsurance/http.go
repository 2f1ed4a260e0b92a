package socialinsurance

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/pophub/pophub/internal/bearer"
	"github.com/pophub/pophub/schemas/citizenid"
)

// ErrAPITokenRequired is returned by Validate for an HTTPAddr other
// machines can reach while no APIToken is set.
var ErrAPITokenRequired = errors.New("an API token is required to serve the tasks API beyond this machine")

// validateHTTP refuses to serve the tasks API where other machines reach
// it without a token. Only a loopback IP address or "localhost" passes
// without one: a host name may resolve anywhere, and an empty host
// listens on every interface.
func (c *Config) validateHTTP() error {
	if c.HTTPAddr == "" || c.APIToken != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP address %q: %w", c.HTTPAddr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("HTTP address %q is not a loopback address: %w", c.HTTPAddr, ErrAPITokenRequired)
}

// metricsHandler is the service's private Prometheus registry, fed by an
// OpenTelemetry meter provider (the SDK's and the service's counters).
type metricsHandler struct {
	provider *sdkmetric.MeterProvider
	http     http.Handler
}

func newMetrics() (*metricsHandler, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("registering Go runtime metrics: %w", err)
	}
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutTargetInfo(), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("creating Prometheus exporter: %w", err)
	}
	return &metricsHandler{
		provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)),
		http:     promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
	}, nil
}

// Handler serves the service's HTTP API:
//
//	GET  /tasks?status=open|done|cancelled&citizen_id=…&corrected=true&reactivated=true&moved_out=true&after=ID&limit=N
//	                                                              JSON array of tasks, in id order
//	POST /tasks/{id}/complete                                     publish the completion, mark done
//	GET  /healthz                                                 200 when the database answers and the subscriber consumes
//	GET  /metrics                                                 Prometheus
//
// GET /tasks answers a page of at most limit tasks (default
// DefaultTaskLimit, at most MaxTaskLimit) after the task id after; a full
// page carries a Link header with rel="next", the same request continuing
// after the page's last task, so that a client cannot mistake the first
// page for the whole list. The answer stays a bare array, as before paging
// was announced. corrected=true lists only the tasks with a corrected date
// of death, reactivated=true only those whose person became active again
// (the cancelled ones, and the done ones to review), moved_out=true only
// those whose person moved out of the region before the death (likewise).
//
// POST /tasks/{id}/complete answers 409 for a cancelled task, with the
// reason, and publishes nothing.
//
// The tasks routes require Config.APIToken as a bearer token and answer
// 401 (problem+json) to any request without it, to every request when no
// token is configured: tasks carry full citizen IDs, and completing one
// changes golden records at the hub. /healthz and /metrics carry neither
// and stay open to probes and scrapers. Neither tasks route takes a body:
// one longer than maxTaskBody is refused with 413.
//
// /healthz answers 503 with the reason in a text body while the database
// does not answer or the subscriber is not consuming (sdk's
// Subscriber.Health: still setting up, e.g. the hub's stream missing;
// failed for good, e.g. sdk.ErrFilterChanged; NATS unreachable): the
// service then serves the tasks already recorded but takes no new ones.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /tasks", limitBody(maxTaskBody, requireToken(s.cfg.APIToken, http.HandlerFunc(s.listTasks))))
	mux.Handle("POST /tasks/{id}/complete", limitBody(maxTaskBody, requireToken(s.cfg.APIToken, http.HandlerFunc(s.completeTask))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.store.Ping(r.Context()); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		if err := s.sub.Health(); err != nil {
			http.Error(w, "subscriber not consuming: "+citizenid.MaskText(err.Error()), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", s.metrics.http)
	return mux
}

func (s *Service) listTasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := TaskFilter{Status: q.Get("status")}
	if f.Status != "" && f.Status != StatusOpen && f.Status != StatusDone && f.Status != StatusCancelled {
		http.Error(w, "status: want open, done or cancelled", http.StatusBadRequest)
		return
	}
	if v := q.Get("citizen_id"); v != "" {
		id, err := citizenid.Parse(v)
		if err != nil {
			http.Error(w, "citizen_id: not a valid citizen ID", http.StatusBadRequest) // never echo it
			return
		}
		f.CitizenID = id
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			http.Error(w, "after: want a task id", http.StatusBadRequest)
			return
		}
		f.After = n
	}
	switch q.Get("corrected") {
	case "":
	case "true":
		f.Corrected = true
	default:
		http.Error(w, "corrected: want true", http.StatusBadRequest)
		return
	}
	switch q.Get("reactivated") {
	case "":
	case "true":
		f.Reactivated = true
	default:
		http.Error(w, "reactivated: want true", http.StatusBadRequest)
		return
	}
	switch q.Get("moved_out") {
	case "":
	case "true":
		f.MovedOut = true
	default:
		http.Error(w, "moved_out: want true", http.StatusBadRequest)
		return
	}
	f.Limit = DefaultTaskLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxTaskLimit {
			http.Error(w, fmt.Sprintf("limit: want 1 to %d", MaxTaskLimit), http.StatusBadRequest)
			return
		}
		f.Limit = n
	}
	tasks, err := s.store.Tasks(r.Context(), f)
	if err != nil {
		s.cfg.Logger.Error("listing tasks", maskedError(err))
		http.Error(w, "listing tasks failed", http.StatusInternalServerError)
		return
	}
	if len(tasks) == f.Limit {
		// Perhaps more: the same request, after the last task.
		q.Set("after", strconv.FormatInt(tasks[len(tasks)-1].ID, 10))
		next := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		w.Header().Set("Link", "<"+next.String()+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, tasks)
}

func (s *Service) completeTask(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "task id: want a number", http.StatusBadRequest)
		return
	}
	// A cancelled task is refused whether or not it could be published,
	// unless its completion was published already (see Complete).
	if t, err := s.store.Task(r.Context(), id); err == nil && t.Status == StatusCancelled && !t.retryable() {
		http.Error(w, "task cancelled: "+t.CancelReason, http.StatusConflict)
		return
	}
	if s.pub == nil {
		http.Error(w, "no Kafka brokers configured: completions cannot be published", http.StatusServiceUnavailable)
		return
	}
	t, err := Complete(r.Context(), s.store, s.pub, id)
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, "no such task", http.StatusNotFound)
	case errors.Is(err, ErrTaskCancelled): // cancelled since the look-up above
		http.Error(w, "task cancelled", http.StatusConflict)
	case err != nil:
		s.cfg.Logger.Error("completing task", "task", id, maskedError(err))
		http.Error(w, "completing the task failed; try again", http.StatusBadGateway)
	default:
		writeJSON(w, http.StatusOK, t)
	}
}

// newServer is the HTTP server of Config.HTTPAddr. Its timeouts are the
// hub's API server's (hub/api Run), which consumers may not import: a
// request, body included, must arrive within ReadTimeout, so a client
// that sends headers and then nothing (or trickles a body) loses its
// connection instead of holding it and a descriptor for ever, and an
// idle kept-alive connection goes after IdleTimeout. net/http's own
// messages (which can quote a request line) reach the logger with
// citizen IDs masked.
func (s *Service) newServer() *http.Server {
	return &http.Server{
		Addr:              s.cfg.HTTPAddr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: min(10*time.Second, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(citizenid.MaskingHandler(s.cfg.Logger.Handler()), slog.LevelWarn),
		TLSConfig:         s.cfg.HTTPTLS.Clone(),
	}
}

// shutdownHTTP stops s.srv gracefully for up to Config.ShutdownTimeout,
// then closes the connections still open: a request still running, or a
// client that holds its connection without finishing a request. That is
// how the service stops, not a failure: only another error is returned.
func (s *Service) shutdownHTTP(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err == nil {
		return nil
	}
	_ = s.srv.Close()
	if errors.Is(err, context.DeadlineExceeded) {
		s.cfg.Logger.Warn("HTTP connections still open at the end of the shutdown timeout were closed", "timeout", s.cfg.ShutdownTimeout)
		return nil
	}
	return fmt.Errorf("shutting down HTTP server: %w", err)
}

// listenAndServe serves s.srv on its address, over HTTPS only when it has
// a TLS configuration.
func (s *Service) listenAndServe() error {
	if s.srv.TLSConfig != nil {
		return s.srv.ListenAndServeTLS("", "") // the certificates are in TLSConfig
	}
	return s.srv.ListenAndServe()
}

// maxTaskBody bounds the request body on the tasks routes, which take
// none: whatever a client sends, the service reads no more than this.
const maxTaskBody = 4 << 10

// limitBody reads the request's body before next sees it and refuses one
// longer than n bytes with 413, without reading it when its declared
// length says so, and closes the connection. next thus acts only on a
// request that arrived whole (within Config.ReadTimeout): a completion
// whose body never comes is not carried out.
func limitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			w.Header().Set("Connection", "close")
			writeProblem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body exceeds %d bytes", n))
			return
		}
		_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, n))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeProblem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body exceeds %d bytes", n))
			return
		case err != nil:
			w.Header().Set("Connection", "close")
			writeProblem(w, http.StatusBadRequest, "invalid-request", "reading the body failed")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireToken passes on only the requests bearing token; with token
// empty, none. The digests are compared so that the time taken tells
// neither the token nor its length.
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store") // the answers carry citizen IDs
		got, ok := bearer.Token(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got))
		if token == "" || !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pophub-si-subscriber"`)
			writeProblem(w, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// problem is an RFC 9457 problem details body, shaped as the hub's.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, slug, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "urn:pophub:problem:" + slug, Title: http.StatusText(status), Status: status, Detail: detail})
}

// maskedError is err as a log attribute with anything shaped like a
// citizen ID masked: a database or broker error may quote one.
func maskedError(err error) slog.Attr {
	return slog.String("error", citizenid.MaskText(err.Error()))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
