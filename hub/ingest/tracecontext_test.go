package ingest

import (
	"context"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/pophub/pophub/schemas"
)

// TestTraceStateBoundWhenTracing: a record's tracestate over maxTraceState
// (512 bytes, "at most 512 bytes" in the AsyncAPI notification headers)
// is left behind whether or not the hub records spans: a sampled event's
// notifications carry the context of its spans, which must not inherit
// it. Three 250-byte members parse as a valid tracestate of 770 bytes.
func TestTraceStateBoundWhenTracing(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var members []string
	for _, k := range []string{"a", "b", "c"} {
		members = append(members, k+"="+strings.Repeat("v", 250))
	}
	state := strings.Join(members, ",")
	headers := []kafka.Header{{Key: "traceparent", Value: []byte(parent)}, {Key: "tracestate", Value: []byte(state)}}
	value := []byte(cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))
	msg := kafka.Message{Topic: schemas.Topic(schemas.Marriage), Key: []byte(idA), Value: value, Headers: headers}

	tests := []struct {
		name   string
		tracer trace.Tracer
	}{
		{"without --otlp (no spans)", tracenoop.NewTracerProvider().Tracer("")},
		{"with --otlp (spans recorded)", sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder())).Tracer("test")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &recordingApplier{}
			c, err := New(Config{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", Tracer: tc.tracer}, a)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			d := decodeChunk([]kafka.Message{msg})
			if _, err := c.apply(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			var got []map[string]string
			a.mu.Lock()
			got = append(got, a.traces...)
			a.mu.Unlock()
			if len(got) != 1 {
				t.Fatalf("%d trace contexts applied, want 1", len(got))
			}
			if ts := got[0]["tracestate"]; len(ts) > maxTraceState {
				t.Errorf("the event's trace context (copied to its outbox entries and NATS headers) has a tracestate of %d bytes, over %d",
					len(ts), maxTraceState)
			}
		})
	}
}

// TestTracingExtensionNotRead: trace context is read from the record's
// headers only, as README and the AsyncAPI document say. An event carrying
// the CloudEvents distributed-tracing extension (traceparent and
// tracestate as attributes of the event) is accepted, and its extension
// neither continues a trace nor reaches the notifications.
func TestTracingExtensionNotRead(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	value := cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`)
	value = strings.Replace(value, `"specversion":"1.0",`, `"specversion":"1.0","traceparent":"`+parent+`","tracestate":"congo=t61rcWkgMzE",`, 1)
	d := decodeChunk([]kafka.Message{{Topic: schemas.Topic(schemas.Marriage), Key: []byte(idA), Value: []byte(value)}})
	if len(d.inputs) != 1 {
		t.Fatalf("%d inputs, %d rejects; want the event accepted", len(d.inputs), len(d.rejects))
	}
	if tc := d.inputs[0].Trace; tc != nil || len(d.sampled) != 0 || len(d.links) != 0 {
		t.Errorf("trace context %v, %d sampled, %d links; want none from the event's attributes", tc, len(d.sampled), len(d.links))
	}
}
