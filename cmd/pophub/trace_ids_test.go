package main

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
)

// TestEventIDWithCitizenIDStaysOutOfSpans: an event id is the department's
// choice (1 to 200 characters), and one may embed the citizen ID. Neither
// the publisher's span nor the hub's nor the subscriber's may carry it:
// the ingest span once copied the id, unmasked, into messaging.message.id
// and cloudevents.event_id.
func TestEventIDWithCitizenIDStaysOutOfSpans(t *testing.T) {
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
	ev := schemas.Event{ID: "hukou-" + string(id) + "-1", Source: schemas.PublicSecurity, Type: schemas.HukouRegistered, Subject: id,
		Time: time.Date(2020, 1, 1, 8, 0, 0, 0, time.UTC),
		Payload: &schemas.HukouRegisteredData{Name: "王芳", Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly),
			Ethnicity: "01", AddressCode: "230102001001", HouseholdID: "H-1", Reason: "birth"}}
	res, err := pub.Publish(ctx, ev)
	if err != nil || res[0].Err != nil {
		t.Fatalf("Publish: %v, %v", err, res[0].Err)
	}
	parent.End()
	waitFor(t, time.Minute, "the subscriber's spans", func() bool {
		return p.deliveries() > 0 && len(named(rec.Ended(), "process traced")) == p.deliveries()
	})
	if len(named(rec.Ended(), "ingest "+schemas.Topic(schemas.PublicSecurity))) == 0 {
		t.Fatal("no ingest span: the test would prove nothing")
	}
	assertNoCitizenID(t, rec.Ended(), id)
}
