package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pophub/pophub/schemas"
)

// rejectedMarriage is a marriage record the hub rejects: its spouse_id is
// no valid citizen ID.
func rejectedMarriage(headers ...kafka.Header) kafka.Message {
	return kafka.Message{Topic: schemas.Topic(schemas.Marriage), Key: []byte(idA), Headers: headers,
		Value: []byte(cloudEvent("m-d", "marriage", "marriage.registered", idA, `{"spouse_id":"110105194912310021"}`))}
}

func spanAttr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestRejectedEventInItsTrace: a department following its sampled event
// by trace id sees that the hub read it and refused it, and why: a span in
// its trace with the reason, the field and an error status, which the
// batch span links to. Without it the trace would end at the department's
// publish, as for an event still waiting in Kafka.
func TestRejectedEventInItsTrace(t *testing.T) {
	k := broker(t)
	writeToPartition0(t, k.Addr(), rejectedMarriage(kafka.Header{Key: "traceparent", Value: []byte(testTraceparent)}))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "rejtrace", Tracer: tp.Tracer("test")}, &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	waitUntil(t, "the reject committed", func() bool { return c.Counts().RejectedTotal() == 1 })
	stop()

	var reject sdktrace.ReadOnlySpan
	linked := false
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID().String() == testTraceID {
			reject = s
		}
		for _, l := range s.Links() {
			linked = linked || (s.Name() == "ingest batch" && l.SpanContext.TraceID().String() == testTraceID)
		}
	}
	if !linked {
		t.Error("the batch span has no link to the rejected record's trace")
	}
	if reject == nil {
		t.Fatalf("no span in the rejected event's sampled trace %s", testTraceID)
	}
	if reject.Name() != "ingest pop.events.marriage" || reject.Status().Code != codes.Error {
		t.Errorf("span %q status %v, want \"ingest pop.events.marriage\" with an error status", reject.Name(), reject.Status().Code)
	}
	want := map[attribute.Key]string{"pophub.outcome": "rejected", "pophub.reject.reason": schemas.ReasonInvalidData,
		"pophub.reject.field": "data.spouse_id", "cloudevents.event_id": "m-d", "messaging.kafka.offset": "0"}
	for key, v := range want {
		if got := spanAttr(reject, key); got != v {
			t.Errorf("attribute %s = %q, want %q", key, got, v)
		}
	}
	for _, kv := range reject.Attributes() {
		if strings.Contains(kv.Value.Emit(), idA) {
			t.Errorf("attribute %s holds the citizen ID", kv.Key)
		}
	}
}

// TestEventSpanSaysDuplicate: a department follows its event, sent twice.
// The second time the hub drops it as a duplicate, and its "ingest" span
// says so (pophub.outcome=duplicate, applied the first time): a dropped
// repeat, which raises no notification, does not look like an applied
// change whose notification is late.
func TestEventSpanSaysDuplicate(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	c, err := New(Config{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", Tracer: tp.Tracer("test")}, &dedupApplier{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	value := []byte(cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))
	sends := []struct{ traceID, want string }{
		{"11111111111111111111111111111111", "applied"},
		{"22222222222222222222222222222222", "duplicate"},
	}
	for _, s := range sends {
		m := kafka.Message{Topic: schemas.Topic(schemas.Marriage), Key: []byte(idA), Value: value,
			Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-" + s.traceID + "-00f067aa0ba902b7-01")}}}
		if _, err := c.apply(context.Background(), decodeChunk([]kafka.Message{m})); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sends {
		var got []string
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID().String() == s.traceID && sp.Name() == "ingest pop.events.marriage" {
				got = append(got, spanAttr(sp, "pophub.outcome"))
			}
		}
		if len(got) != 1 || got[0] != s.want {
			t.Errorf("trace %s: ingest span outcomes %q, want [%s]", s.traceID, got, s.want)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRejectLogNamesTheRecords: the hub's log lets an operator find the
// records it rejected without reading the DLQ: the first maxListedRejects
// of a batch each by topic, partition, offset, reason, field and masked
// event id, and a count of the rest.
func TestRejectLogNamesTheRecords(t *testing.T) {
	k := broker(t)
	bad := make([]kafka.Message, maxListedRejects+2)
	for i := range bad {
		bad[i] = rejectedMarriage()
	}
	writeToPartition0(t, k.Addr(), bad...)
	var logs lockedBuffer
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "rejlog", MaxWait: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	waitUntil(t, "the rejects committed", func() bool { return c.Counts().RejectedTotal() == int64(len(bad)) })
	stop()

	var summaries, records []string
	for _, l := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(l, `msg="rejected records to the DLQ"`):
			summaries = append(summaries, l)
		case strings.Contains(l, `msg="rejected a record to the DLQ"`):
			records = append(records, l)
		}
	}
	if len(summaries) != 1 {
		t.Fatalf("summary lines %q; the case needs the rejects in one batch", summaries)
	}
	if !strings.Contains(summaries[0], "count=7") || !strings.Contains(summaries[0], "listed=5") {
		t.Errorf("summary %q, want count=7 listed=5", summaries[0])
	}
	if len(records) != maxListedRejects {
		t.Fatalf("%d records named, want the first %d: %q", len(records), maxListedRejects, records)
	}
	for _, want := range []string{"topic=pop.events.marriage", "partition=0", "offset=0", "reason=invalid_data", "field=data.spouse_id", "event_id=m-d"} {
		if !strings.Contains(records[0], want) {
			t.Errorf("the reject's log line %q lacks %q", records[0], want)
		}
	}
}
