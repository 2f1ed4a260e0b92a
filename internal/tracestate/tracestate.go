// Package tracestate keeps citizen IDs out of the W3C trace state the hub
// receives from departments and passes on.
//
// A department's tracing may put anything in its tracestate members, and
// the trace state a request or record arrives with travels on in the
// hub's spans (exported to a collector) and in every notification's NATS
// headers, which carry no citizen IDs. Members whose key or value holds
// one (citizenid.MaskText would change it) are dropped; the others, a
// tracing vendor's, are passed on.
package tracestate

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/schemas/citizenid"
)

// WithoutCitizenIDs is ts without the members whose key or value holds a
// citizen ID.
func WithoutCitizenIDs(ts trace.TraceState) trace.TraceState {
	var drop []string
	ts.Walk(func(key, value string) bool {
		if citizenid.MaskText(key) != key || citizenid.MaskText(value) != value {
			drop = append(drop, key)
		}
		return true
	})
	for _, k := range drop {
		ts = ts.Delete(k)
	}
	return ts
}

// Clean returns ctx with the trace state of its remote span context (as a
// propagator's Extract leaves it) without members holding a citizen ID.
func Clean(ctx context.Context) context.Context {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsRemote() || sc.TraceState().Len() == 0 {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc.WithTraceState(WithoutCitizenIDs(sc.TraceState())))
}
