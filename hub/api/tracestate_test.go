package api_test

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pophub/pophub/hub/api"
)

// TestTraceStateCitizenIDNotInSpans: a caller's tracestate member holding
// a citizen ID does not reach the trace state the hub's spans export; the
// caller's other members do.
func TestTraceStateCitizenIDNotInSpans(t *testing.T) {
	f := newFixture(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := api.New(api.Config{Store: f.reader, Tracer: tp.Tracer("test"), Propagator: propagation.TraceContext{}}).Handler()
	do(t, h, "GET", "/v1/persons/"+string(f.known), http.Header{
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Tracestate":  {"cid=" + string(f.known) + ",vendor=abc"}})
	ended := spans.Ended()
	if len(ended) == 0 {
		t.Fatal("no span ended")
	}
	for _, s := range ended {
		if ts := s.SpanContext().TraceState().String(); ts != "vendor=abc" {
			t.Errorf("span %q exports trace state %q, want vendor=abc", s.Name(), ts)
		}
	}
}
