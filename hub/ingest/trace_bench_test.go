package ingest

import (
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// BenchmarkEventSpans measures what a sampled record adds on the hub: its
// "ingest <topic>" and "store commit" spans and the injected trace context
// (an SDK provider without exporter, so export is not counted). Records
// that are unsampled or carry no trace context cost none of this.
func BenchmarkEventSpans(b *testing.B) {
	const n = 2000
	tp := sdktrace.NewTracerProvider()
	c := &Consumer{cfg: Config{Tracer: tp.Tracer("bench"), GroupID: "pophub"}}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2},
		TraceFlags: trace.FlagsSampled, Remote: true})
	d := decoded{inputs: make([]hub.Input, n)}
	for i := range n {
		d.inputs[i].Event = schemas.Event{ID: "ev", Source: schemas.Health, Type: schemas.DeathCertified}
		d.sampled = append(d.sampled, sampledInput{input: i, parent: parent, topic: "pop.events.health", offset: int64(i), decoded: time.Now()})
	}
	for b.Loop() {
		events := c.startEventSpans(trace.SpanContext{}, d)
		commits := c.startCommitSpans(events, d.inputs)
		endCommitSpans(commits, 1, nil)
		endEventSpans(events, hub.ApplyResult{Applied: n}, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
