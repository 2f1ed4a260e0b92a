package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/notify"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// tracedPipeline is the path of one event — publisher, an in-process
// Kafka-protocol broker, the ingest consumer, the memdb store, the relay,
// an in-process NATS server and an SDK subscriber — wired by hand (Main
// builds its own tracer provider), the hub's parts with hubTP and the
// department's and subscriber's with their own.
type tracedPipeline struct {
	brokers []string
	mu      sync.Mutex
	handled []*sdk.Delivery
	traces  []trace.SpanContext // of the handlers' contexts
}

func (p *tracedPipeline) deliveries() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.handled)
}

func startTracedPipeline(t *testing.T, hubTP, subTP trace.TracerProvider) *tracedPipeline {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k, err := embedded.StartKafka(ctx, embedded.KafkaConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.NATS(t, embedded.NATSConfig{SyncInterval: time.Second})
	store, err := memdb.Open(ctx, memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := notify.EnsureStream(ctx, js, notify.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	tracer := hubTP.Tracer("github.com/pophub/pophub")
	relay := notify.New(notify.Config{Tracer: tracer, PollInterval: 10 * time.Millisecond}, js, store)
	cons, err := ingest.New(ingest.Config{Brokers: []string{k.Addr()}, GroupID: "traced", Tracer: tracer}, wakeAfterApply{store, relay})
	if err != nil {
		t.Fatal(err)
	}
	p := &tracedPipeline{brokers: []string{k.Addr()}}
	sub, err := sdk.New(sdk.Config{Name: "traced", URL: srv.ClientURL(), TracerProvider: subTP,
		Filters: []sdk.Filter{{Kind: sdk.Changes}, {Kind: sdk.Deaths}, {Kind: sdk.MigrationsOut}},
		Start:   sdk.Start{Policy: sdk.StartAll},
		Handler: func(ctx context.Context, d *sdk.Delivery) error {
			p.mu.Lock()
			p.handled = append(p.handled, d)
			p.traces = append(p.traces, trace.SpanContextFromContext(ctx))
			p.mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = cons.Run(ctx) })
	wg.Go(func() { _ = relay.Run(ctx) })
	wg.Go(func() { _ = sub.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		sub.Close()
		cons.Close()
		nc.Close()
		store.Close()
		srv.Close()
		k.Close()
	})
	return p
}

// TestTraceFollowsOneEvent publishes one event under a sampled span and
// follows it: the subscriber's span descends, parent by parent, from the
// relay's publish, the store commit, the hub's ingest span and the
// publisher's span to the department's own, all in one trace, and no span
// names or carries the citizen ID. The event's id embeds the citizen ID,
// as a department's ids may: the spans carry it masked (they once copied
// it as it was into messaging.message.id and cloudevents.event_id).
func TestTraceFollowsOneEvent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p := startTracedPipeline(t, tp, tp)

	pub, err := publisher.New(publisher.Config{Brokers: p.brokers, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	id := personID(t, 7)
	ctx, parent := tp.Tracer("department").Start(context.Background(), "register birth")
	ev := schemas.Event{ID: "ps-" + string(id) + "-1", Source: schemas.PublicSecurity, Type: schemas.HukouRegistered, Subject: id,
		Time: time.Date(2020, 1, 1, 8, 0, 0, 0, time.UTC),
		Payload: &schemas.HukouRegisteredData{Name: "王芳", Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly),
			Ethnicity: "01", AddressCode: "230102001001", HouseholdID: "H-1", Reason: "birth"}}
	res, err := pub.Publish(ctx, ev)
	if err != nil || res[0].Err != nil {
		t.Fatalf("Publish: %v, %v", err, res[0].Err)
	}
	parent.End()

	// The subscriber may handle a notification before the hub's goroutines
	// end the spans above it (the relay's publish span ends when its
	// acknowledgement is read, the ingest spans after the store returned):
	// wait for every chain to reach its root.
	waitFor(t, time.Minute, "the subscriber's spans and every span above them", func() bool {
		ended := rec.Ended()
		return p.deliveries() > 0 && len(named(ended, "process traced")) == p.deliveries() && chainsEnded(ended, "process traced")
	})
	spans := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	for _, s := range spans {
		t.Logf("span %s %q (%s) parent %s trace %s, %d links", s.SpanContext().SpanID(), s.Name(), s.SpanKind(),
			s.Parent().SpanID(), s.SpanContext().TraceID(), len(s.Links()))
	}
	want := []struct {
		name string
		kind trace.SpanKind
	}{
		{"process traced", trace.SpanKindConsumer},
		{"publish pop.changed", trace.SpanKindProducer},
		{"store commit", trace.SpanKindInternal},
		{"ingest pop.events.public_security", trace.SpanKindConsumer},
		{"publish pop.events.public_security", trace.SpanKindProducer},
		{"register birth", trace.SpanKindInternal},
	}
	for _, handler := range named(spans, "process traced") {
		s := handler
		for i, w := range want {
			if s == nil {
				t.Fatalf("chain broken above %q", want[i-1].name)
			}
			if s.Name() != w.name || s.SpanKind() != w.kind {
				t.Fatalf("span %d of the chain is %q (%s), want %q (%s)", i, s.Name(), s.SpanKind(), w.name, w.kind)
			}
			if s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("span %q is in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), parent.SpanContext().TraceID())
			}
			if i == len(want)-1 {
				if s.SpanContext().SpanID() != parent.SpanContext().SpanID() {
					t.Errorf("the chain ends at a span other than the department's")
				}
				break
			}
			s = byID[s.Parent().SpanID()]
		}
	}
	if n := len(named(spans, "store commit")); n != 1 {
		t.Errorf("%d store commit spans for one event, want 1", n)
	}
	ingestSpan := named(spans, "ingest pop.events.public_security")[0]
	for _, kv := range []attribute.KeyValue{
		attribute.String("cloudevents.event_id", citizenid.MaskText(ev.ID)),
		attribute.String("cloudevents.event_type", string(ev.Type)),
		attribute.String("messaging.destination.name", schemas.Topic(ev.Source)),
	} {
		if !hasAttr(ingestSpan, kv) {
			t.Errorf("ingest span lacks %s=%s", kv.Key, kv.Value.Emit())
		}
	}
	assertNoCitizenID(t, spans, id)
}

// TestUnsampledRecordHasNoEventSpans: a record whose trace context is not
// sampled costs no per-event span anywhere on the hub, even under a
// sampler that would record them, and its trace context reaches the
// subscriber unchanged.
func TestUnsampledRecordHasNoEventSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	hubTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = hubTP.Shutdown(context.Background()) })
	subRec := tracetest.NewSpanRecorder()
	subTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(subRec))
	t.Cleanup(func() { _ = subTP.Shutdown(context.Background()) })
	p := startTracedPipeline(t, hubTP, subTP)

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	msg := event(t, schemas.DeathCertified, personID(t, 8), "h-traced-1", "2025-03-01T10:00:00+08:00",
		map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"})
	msg.Headers = []kafka.Header{{Key: "traceparent", Value: []byte(tp)}}
	produceAll(t, p.brokers, []kafka.Message{msg})
	waitFor(t, time.Minute, "the notifications handled", func() bool { return p.deliveries() > 0 })
	time.Sleep(200 * time.Millisecond) // let the relay's round end

	for _, s := range rec.Ended() {
		switch name := s.Name(); {
		case name == "ingest batch", name == "outbox relay":
		default:
			t.Errorf("the hub recorded span %q for an unsampled record", name)
		}
	}
	for _, s := range subRec.Ended() {
		if s.SpanContext().IsSampled() {
			t.Errorf("subscriber span %q sampled under an unsampled record", s.Name())
		}
	}
	if len(subRec.Ended()) != 0 {
		t.Errorf("subscriber recorded %d spans under an unsampled parent", len(subRec.Ended()))
	}
	// The record's context passed through the hub unchanged: the handlers
	// continue its trace, unsampled.
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, sc := range p.traces {
		if got := sc.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.IsSampled() {
			t.Errorf("handler ran in trace %s (sampled %v), want the record's, unsampled", got, sc.IsSampled())
		}
	}
}

// chainsEnded reports whether, for every span called name, each ancestor
// up to a root has ended (is among spans).
func chainsEnded(spans []sdktrace.ReadOnlySpan, name string) bool {
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	for _, s := range named(spans, name) {
		for s.Parent().IsValid() {
			parent, ok := byID[s.Parent().SpanID()]
			if !ok {
				return false
			}
			s = parent
		}
	}
	return true
}

func named(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func hasAttr(s sdktrace.ReadOnlySpan, kv attribute.KeyValue) bool {
	for _, a := range s.Attributes() {
		if a == kv {
			return true
		}
	}
	return false
}

// assertNoCitizenID fails if a span's name, attributes, events or links
// contain the citizen ID.
func assertNoCitizenID(t *testing.T, spans []sdktrace.ReadOnlySpan, id citizenid.ID) {
	t.Helper()
	for _, s := range spans {
		if strings.Contains(s.Name(), string(id)) {
			t.Errorf("span name %q contains the citizen ID", s.Name())
		}
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), string(id)) || a.Key == "messaging.kafka.message.key" || a.Key == "cloudevents.event_subject" {
				t.Errorf("span %q attribute %s carries the citizen ID", s.Name(), a.Key)
			}
		}
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				if strings.Contains(a.Value.Emit(), string(id)) {
					t.Errorf("span %q event %q attribute %s carries the citizen ID", s.Name(), e.Name, a.Key)
				}
			}
		}
	}
}
