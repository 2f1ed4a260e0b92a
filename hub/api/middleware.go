package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/internal/tracestate"
	"github.com/pophub/pophub/schemas/citizenid"
)

func (s *Server) initMetrics() {
	var err error
	s.requests, err = s.cfg.Meter.Int64Counter("pophub.http.requests",
		metric.WithUnit("{request}"),
		metric.WithDescription("HTTP requests served, by route pattern, method and status code."))
	if err != nil {
		s.cfg.Logger.Error("creating HTTP request counter", "err", err)
	}
	s.duration, err = s.cfg.Meter.Float64Histogram("pophub.http.request.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Time to serve an HTTP request, by route pattern."))
	if err != nil {
		s.cfg.Logger.Error("creating HTTP duration histogram", "err", err)
	}
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyRoute
)

// requestID returns the id the middleware gave the request ("" outside it).
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}

// instanceOf is the problem "instance" of the request.
func instanceOf(ctx context.Context) string {
	if id := requestID(ctx); id != "" {
		return "urn:pophub:request:" + id
	}
	return ""
}

// routeOf is the route label of the request.
func routeOf(r *http.Request) string {
	if route, ok := r.Context().Value(keyRoute).(string); ok {
		return route
	}
	return RouteUnmatched
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// serve is the middleware around the mux: request id, span, metrics, access
// log and panic recovery, then the route (or a problem for an unmatched
// request).
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	method := methodLabel(r.Method)
	h, pattern := s.mux.Handler(r)
	route, matched := s.routes[pattern]
	// For a path it would clean (//, /./, /../) the mux returns its
	// redirect together with the pattern of the cleaned path: that
	// request is no route's, and is authorised and audited as unmatched.
	// The mux cleans the path as sent (%2E%2E and %2F are no dots or
	// slashes to it), and never a CONNECT's.
	ep := r.URL.EscapedPath()
	matched = matched && (r.Method == http.MethodConnect || cleanPath(ep) == ep)
	spanName := pattern // "GET /v1/persons/{citizen_id}": method and route, never the path
	if !matched {
		route, spanName = RouteUnmatched, method
	}

	ctx := r.Context()
	if s.cfg.Propagator != nil {
		// The caller's trace state goes on in the hub's spans: without
		// members holding a citizen ID.
		ctx = tracestate.Clean(s.cfg.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header)))
	}
	ctx, span := s.cfg.Tracer.Start(ctx, spanName,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("http.route", route),
		))
	reqID := newRequestID()
	ctx = context.WithValue(ctx, keyRequestID, reqID)
	ctx = context.WithValue(ctx, keyRoute, route)
	r = r.WithContext(ctx)

	sw := &statusWriter{ResponseWriter: w}
	sw.Header().Set("X-Request-Id", reqID)

	defer func() {
		v := recover()
		if v != nil && v != http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
			s.cfg.Logger.LogAttrs(ctx, slog.LevelError, "panic serving request",
				slog.String("route", route),
				slog.String("request_id", reqID),
				slog.String("panic", citizenid.MaskText(fmt.Sprint(v))),
				slog.String("stack", citizenid.MaskText(string(debug.Stack()))))
			span.SetStatus(codes.Error, "panic")
			if !sw.wrote {
				s.writeProblem(sw, r, http.StatusInternalServerError, "internal",
					"internal error; the request was logged under its instance id")
			}
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)

		if s.requests != nil {
			s.requests.Add(ctx, 1, metric.WithAttributes(
				attribute.String("route", route),
				attribute.String("method", method),
				attribute.String("code", strconv.Itoa(status))))
		}
		if s.duration != nil {
			s.duration.Record(ctx, elapsed.Seconds(), metric.WithAttributes(attribute.String("route", route)))
		}

		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		span.End()

		if s.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
			attrs := []slog.Attr{
				slog.String("method", method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Duration("duration", elapsed),
				slog.Int64("bytes", sw.bytes),
				slog.String("request_id", reqID),
			}
			if sc := span.SpanContext(); sc.HasTraceID() {
				attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
			}
			s.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "http request", attrs...)
		}
		if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
			panic(v)
		}
	}()

	if matched {
		s.mux.ServeHTTP(sw, r)
		return
	}
	s.serveUnmatched(sw, r, h)
}

// cleanPath is the path ServeMux serves a request under, which it
// redirects any other path to: path.Clean's, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// serveUnmatched answers a request no route matched. The mux's own answer
// (404, 405 with Allow, or a redirect to a cleaned path) is captured; 404
// and 405 become problems, anything else is replayed as is.
//
// A /v1 request is authorised first, for RouteUnmatched, as every other
// /v1 request is: a refusal (no credentials, a rate limit) is answered and
// audited by the Authorizer, and counts against the limits of refusals as
// a refusal on a route does, and a granted request's answer is reported to
// its Grant. Otherwise DELETE /v1/persons/{citizen_id} or a path with a
// trailing slash would leave no trace in the audit trail, and would escape
// the per-address limit of unauthenticated refusals.
func (s *Server) serveUnmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	cw := &captureWriter{header: http.Header{}}
	h.ServeHTTP(cw, r)
	var g Grant
	if s.cfg.Authorizer != nil && underV1(r.URL.EscapedPath()) {
		var ok bool
		if g, ok = s.authorize(w, r, RouteUnmatched); !ok {
			return
		}
	}
	status := cw.status
	if status == 0 {
		status = http.StatusOK
	}
	var err error
	switch status {
	case http.StatusNotFound:
		err = fmt.Errorf("no route matches the path: %w", hub.ErrNotFound)
		s.writeProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
	case http.StatusMethodNotAllowed:
		err = fmt.Errorf("method %s is not allowed on the path", methodLabel(r.Method))
		if allow := cw.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		s.writeProblem(w, r, http.StatusMethodNotAllowed, "method-not-allowed",
			"method "+methodLabel(r.Method)+" is not allowed here; see the Allow header")
	default:
		if status >= 400 {
			err = fmt.Errorf("the mux answered %d", status)
		}
		for k, v := range cw.header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = w.Write(cw.body.Bytes())
	}
	if g != nil {
		g.Done(r.Context(), Outcome{Route: RouteUnmatched, Status: status, Err: err})
	}
}

// underV1 reports whether a request path, as the mux cleans it, lies
// under /v1, the API's audited routes.
func underV1(p string) bool {
	p = path.Clean(p)
	return p == "/v1" || strings.HasPrefix(p, "/v1/")
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 { // 1xx responses are informational
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter buffers a response of the mux's built-in handlers.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *captureWriter) Header() http.Header { return w.header }

func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
