package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pophub/pophub/hub/telemetry"
)

// TestSpanProcessor checks that a span processor given in the
// configuration receives the spans, sampled as with an endpoint, while
// nothing is exported.
func TestSpanProcessor(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tel := setup(t, telemetry.Config{SpanProcessor: rec})
	if tel.ExportsTraces() {
		t.Error("ExportsTraces() = true without endpoint")
	}
	_, span := tel.Tracer("test").Start(context.Background(), "root")
	span.End()
	if !span.SpanContext().IsSampled() {
		t.Error("root span not sampled with a span processor")
	}
	if got := rec.Ended(); len(got) != 1 || got[0].Name() != "root" {
		t.Errorf("recorded %d spans, want the one root span", len(got))
	}
}
