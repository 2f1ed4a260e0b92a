package notify

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestRelaySpans: an entry with a sampled trace context gets a producer
// span under that context, and its message carries the span's context; an
// entry with an unsampled one gets no span and keeps its context.
func TestRelaySpans(t *testing.T) {
	n := natsServer(t, 0)
	js := connect(t, n.ClientURL())
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	o := newOutbox(2)
	const unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203332-00"
	o.entries[1].Trace = map[string]string{"traceparent": unsampled}
	r := New(Config{Tracer: tp.Tracer("test")}, js, o)
	runRelay(t, r)
	waitDone(t, o, 2)

	var spans []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() != "outbox relay" {
			spans = append(spans, s)
		}
	}
	if len(spans) != 1 {
		t.Fatalf("%d per-entry spans, want 1 (the sampled entry's)", len(spans))
	}
	s := spans[0]
	if s.Name() != "publish pop.changed" || s.SpanKind() != trace.SpanKindProducer {
		t.Errorf("span %q (%s), want %q (producer)", s.Name(), s.SpanKind(), "publish pop.changed")
	}
	if got := s.Parent().TraceID().String() + "-" + s.Parent().SpanID().String(); !strings.Contains(testTraceparent, got) {
		t.Errorf("parent %s, want the entry's context %s", got, testTraceparent)
	}
	if len(s.Links()) != 1 {
		t.Errorf("%d links, want 1 to the round's span", len(s.Links()))
	}

	ctx := context.Background()
	stream, err := js.Stream(ctx, "POP")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01", unsampled}
	for i, w := range want {
		m, err := stream.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get("traceparent"); got != w {
			t.Errorf("message %d: traceparent %q, want %q", i+1, got, w)
		}
	}
}

func TestKindOf(t *testing.T) {
	for subject, want := range map[string]string{
		"pop.changed.23.2301.230102.hukou":            "changed",
		"pop.migration.23.2301.230102.23.2306.230602": "migration",
		"pop.death.23.2301.230102":                    "death",
		"pop.eligibility.settle.23.2306.230602":       "eligibility",
		"pop.weird.x":                                 "other",
		"pop":                                         "other",
	} {
		if got := kinds[kindOf(subject)]; got != want {
			t.Errorf("kindOf(%q) = %s, want %s", subject, got, want)
		}
	}
}

func TestSampled(t *testing.T) {
	for tp, want := range map[string]bool{
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01": true,
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00": false,
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03": true,
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0f": true,
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0e": false,
		"": false,
	} {
		if got := sampled(tp); got != want {
			t.Errorf("sampled(%q) = %v, want %v", tp, got, want)
		}
	}
}
