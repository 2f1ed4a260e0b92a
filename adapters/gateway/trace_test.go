package gateway

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
)

type ctxSender struct{ sc trace.SpanContext }

func (s *ctxSender) Publish(ctx context.Context, evs ...schemas.Event) ([]publisher.Result, error) {
	s.sc = trace.SpanContextFromContext(ctx)
	return make([]publisher.Result, len(evs)), nil
}

// TestPublishUnderServerSpan: in the hub, POST /v1/events runs inside the
// API middleware's server span "POST /v1/events", a child of the caller's
// traceparent. The events are published (publish span, Kafka headers)
// under that server span, with or without a traceparent, so that a slow
// or failed publish shows under the request that made it; the gateway
// does not extract the caller's context again over it.
func TestPublishUnderServerSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	sender := &ctxSender{}
	gw, err := New(Config{Sender: sender, Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken("housing-secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	var server trace.SpanContext
	// What hub/api's middleware does around every route.
	mw := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tp.Tracer("hub").Start(ctx, "POST /v1/events", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		server = span.SpanContext()
		gw.ServeHTTP(w, r.WithContext(ctx))
	})
	srv := httptest.NewServer(mw)
	defer srv.Close()
	body := encodeAll(t, housingEvents(t, 1))[0]
	for _, traceparent := range []string{"", callerTraceparent} {
		postTraced(t, srv.URL, body, traceparent)
		if sender.sc.SpanID() != server.SpanID() {
			t.Errorf("traceparent %q: the events are published under span %s, not the hub's server span %s",
				traceparent, sender.sc.SpanID(), server.SpanID())
		}
	}
}

// TestStandAloneContinuesCallerTrace: a gateway serving without a tracing
// middleware publishes the events in the caller's trace (traceparent).
func TestStandAloneContinuesCallerTrace(t *testing.T) {
	sender := &ctxSender{}
	gw, err := New(Config{Sender: sender, Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken("housing-secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	postTraced(t, srv.URL, encodeAll(t, housingEvents(t, 1))[0], callerTraceparent)
	if got := "00-" + sender.sc.TraceID().String() + "-" + sender.sc.SpanID().String() + "-01"; got != callerTraceparent {
		t.Errorf("published under %s, want the caller's span %s", got, callerTraceparent)
	}
}

const callerTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// postTraced posts an event as housing, with a traceparent unless it is "",
// and fails unless it is accepted.
func postTraced(t *testing.T, url string, body []byte, traceparent string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ContentTypeEvent)
	req.Header.Set("Authorization", "Bearer housing-secret")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
