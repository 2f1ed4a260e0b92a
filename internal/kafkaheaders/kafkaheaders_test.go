package kafkaheaders

import (
	"context"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceContextRoundTrip: what a propagator injects into a record's
// headers, next to headers of the record's own, it extracts again, and a
// second injection replaces the first instead of adding to it.
func TestTraceContextRoundTrip(t *testing.T) {
	p := propagation.TraceContext{}
	sc := func(b byte) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{b, 1}, SpanID: trace.SpanID{b, 2}, TraceFlags: trace.FlagsSampled})
	}
	headers := []kafka.Header{{Key: "x-department", Value: []byte("housing")}}
	c := Carrier{&headers}

	p.Inject(trace.ContextWithSpanContext(context.Background(), sc(1)), c)
	p.Inject(trace.ContextWithSpanContext(context.Background(), sc(2)), c)

	if got := trace.SpanContextFromContext(p.Extract(context.Background(), c)); !got.Equal(sc(2).WithRemote(true)) {
		t.Errorf("extracted %v, want the second injection's %v", got, sc(2))
	}
	if got, want := c.Keys(), []string{"x-department", "traceparent"}; !slices.Equal(got, want) {
		t.Errorf("headers %v, want %v", got, want)
	}
	if got := c.Get("x-department"); got != "housing" {
		t.Errorf("the record's own header became %q", got)
	}
	if got := c.Get("missing"); got != "" {
		t.Errorf("Get of a missing header = %q", got)
	}
}
