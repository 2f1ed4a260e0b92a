package socialinsurance

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/pophub/pophub/schemas/citizenid"
)

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
//	GET  /tasks?status=open|done&citizen_id=…&after=ID&limit=N   JSON array of tasks, in id order
//	POST /tasks/{id}/complete                                     publish the completion, mark done
//	GET  /healthz                                                 200 when the database answers
//	GET  /metrics                                                 Prometheus
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tasks", s.listTasks)
	mux.HandleFunc("POST /tasks/{id}/complete", s.completeTask)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.store.Ping(r.Context()); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
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
	if f.Status != "" && f.Status != StatusOpen && f.Status != StatusDone {
		http.Error(w, "status: want open or done", http.StatusBadRequest)
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
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			http.Error(w, "limit: want 1 to 10000", http.StatusBadRequest)
			return
		}
		f.Limit = n
	}
	tasks, err := s.store.Tasks(r.Context(), f)
	if err != nil {
		s.cfg.Logger.Error("listing tasks", "error", err)
		http.Error(w, "listing tasks failed", http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, tasks)
}

func (s *Service) completeTask(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "task id: want a number", http.StatusBadRequest)
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
	case err != nil:
		s.cfg.Logger.Error("completing task", "task", id, "error", err)
		http.Error(w, "completing the task failed; try again", http.StatusBadGateway)
	default:
		writeJSON(w, http.StatusOK, t)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
