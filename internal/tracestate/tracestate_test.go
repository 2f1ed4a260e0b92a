package tracestate

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestClean(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct{ name, in, want string }{
		{"none", "", ""},
		{"vendor only", "vendor=t61rcWkgMzE", "vendor=t61rcWkgMzE"},
		{"an ID among others", "vendor=t61rcWkgMzE,cid=230102199001011230,other=1", "vendor=t61rcWkgMzE,other=1"},
		{"an ID alone", "cid=230102199001011230", ""},
		{"an ID spaced as printed", "cid=230102 19900101 1230", ""},
		{"an ID as a tenant key", "230102199001011230@v=x,a=b", "a=b"},
		{"other numbers", "phone=13800138000,a=20260301", "phone=13800138000,a=20260301"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			carrier := propagation.MapCarrier{"traceparent": parent, "tracestate": tc.in}
			ctx := Clean(propagation.TraceContext{}.Extract(context.Background(), carrier))
			sc := trace.SpanContextFromContext(ctx)
			if !sc.IsValid() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Fatalf("the span context was lost: %v", sc)
			}
			if got := sc.TraceState().String(); got != tc.want {
				t.Errorf("trace state %q, want %q", got, tc.want)
			}
		})
	}
}
