package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

const (
	idA = "230102199001011230"
	idB = "11010519491231002X"
	// A W3C trace context as a department's publisher would send it.
	testTraceID     = "0af7651916cd43dd8448eb211c80319c"
	testTraceparent = "00-" + testTraceID + "-b7ad6b7169203331-01"
	testTracestate  = "congo=t61rcWkgMzE"
)

// cloudEvent is a structured-mode CloudEvent as raw JSON.
func cloudEvent(id, source, typ, subject, data string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q,"subject":%q,"time":"2026-03-01T00:00:00+08:00","datacontenttype":"application/json","data":%s}`,
		id, source, typ, subject, data)
}

// toPartition0 puts every record on partition 0, whatever its key.
var toPartition0 = kafka.BalancerFunc(func(_ kafka.Message, partitions ...int) int { return partitions[0] })

// TestRejectsGoToDLQ writes one record per reject reason between good
// records into one partition: each reject lands in the DLQ with its
// original key, value and headers plus headers naming the reason and
// origin; the good records, also those after the bad ones, are applied;
// the counters, metrics and the batch span agree.
func TestRejectsGoToDLQ(t *testing.T) {
	k := broker(t)
	topic := schemas.Topic(schemas.Marriage)
	good := func(id string) string {
		return cloudEvent(id, "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`)
	}
	records := []struct {
		key, value string
		reason     string // "" for a good record
		field      string
	}{
		{idA, good("m-1"), "", ""},
		{"", "\x00\x01 not JSON", schemas.ReasonNotJSON, ""},
		{idA, good("m-2"), "", ""},
		{idA, `{"specversion":"0.3","id":"x"}`, schemas.ReasonNotCloudEvent, "specversion"},
		{idA, cloudEvent("m-u", "marriage", "marriage.annulled", idA, `{}`), schemas.ReasonUnknownType, "type"},
		{idA, cloudEvent("h-1", "health", "death.certified", idA, `{"date_of_death":"2026-01-01","certificate_no":"C1"}`), schemas.ReasonSourceMismatch, "source"},
		{idB, good("m-k"), schemas.ReasonKeyMismatch, "subject"},
		{"11010519491231002x", cloudEvent("m-s", "marriage", "marriage.registered", "11010519491231002x", `{"spouse_id":"`+idA+`"}`), schemas.ReasonInvalidSubject, "subject"},
		{idA, cloudEvent("m-d", "marriage", "marriage.registered", idA, `{"spouse_id":"110105194912310021"}`), schemas.ReasonInvalidData, "data.spouse_id"},
		{idA, good("m-3"), "", ""},
	}
	var msgs []kafka.Message
	for _, r := range records {
		m := kafka.Message{Topic: topic, Value: []byte(r.value),
			Headers: []kafka.Header{{Key: "traceparent", Value: []byte(testTraceparent)}, {Key: "origin", Value: []byte("test")}}}
		if r.key != "" {
			m.Key = []byte(r.key)
		}
		msgs = append(msgs, m)
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Balancer: toPartition0, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	a := &recordingApplier{}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "dlq", Meter: tel.Meter("test"), Tracer: tp.Tracer("test")}, a)
	if err != nil {
		t.Fatal(err)
	}
	rejectedFrom := time.Now().Truncate(time.Millisecond)
	stop := run(t, c)
	waitUntil(t, "the good records applied", func() bool { return a.count() == 3 })
	waitUntil(t, "the batch committed", func() bool { return c.Counts().Consumed == int64(len(records)) })
	stop()
	rejectedBy := time.Now()
	for _, id := range []string{"m-1", "m-2", "m-3"} {
		if a.ids[id] != 1 {
			t.Errorf("event %s applied %d times, want 1", id, a.ids[id])
		}
	}

	// The DLQ holds each reject once, as it was plus the pophub headers.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{k.Addr()}, GroupID: "dlq-check", Topic: schemas.DLQTopic,
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	got := map[string]kafka.Message{}
	for range 7 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			t.Fatalf("reading the DLQ after %d records: %v", len(got), err)
		}
		got[header(m, HeaderReason)] = m
	}
	for offset, rec := range records {
		if rec.reason == "" {
			continue
		}
		t.Run(rec.reason, func(t *testing.T) {
			m, ok := got[rec.reason]
			if !ok {
				t.Fatalf("no DLQ record with reason %s", rec.reason)
			}
			if string(m.Key) != rec.key || string(m.Value) != rec.value {
				t.Errorf("DLQ record key %q value %q, want the original %q %q", m.Key, m.Value, rec.key, rec.value)
			}
			// The DLQ's retention counts from the rejection.
			if m.Time.Before(rejectedFrom) || m.Time.After(rejectedBy) {
				t.Errorf("DLQ record stamped %s, not when it was rejected", m.Time)
			}
			want := map[string]string{
				HeaderReason: rec.reason, HeaderTopic: topic, HeaderPartition: "0", HeaderOffset: strconv.Itoa(offset),
				"traceparent": testTraceparent, "origin": "test",
			}
			if rec.field != "" {
				want[HeaderField] = rec.field
			}
			for key, v := range want {
				if got := header(m, key); got != v {
					t.Errorf("header %s = %q, want %q", key, got, v)
				}
			}
			detail := header(m, HeaderError)
			if !strings.HasPrefix(detail, rec.reason+": ") {
				t.Errorf("header %s = %q, want it to start with the reason", HeaderError, detail)
			}
			for _, id := range []string{idA, idB, strings.ToLower(idB), "110105194912310021"} {
				if strings.Contains(detail, id) {
					t.Errorf("header %s = %q contains a citizen ID", HeaderError, detail)
				}
			}
		})
	}

	counts := c.Counts()
	mc := counts.Sources[schemas.Marriage]
	if counts.Consumed != 10 || counts.Applied != 3 || counts.RejectedTotal() != 7 ||
		mc.Consumed != 10 || mc.Accepted != 3 || mc.Applied != 3 || mc.RejectedTotal() != 7 || counts.BySource[schemas.Marriage] != 10 {
		t.Errorf("counts %+v, marriage %+v", counts, mc)
	}
	for _, reason := range schemas.Reasons {
		if reason == schemas.ReasonUnknownAddressCode || reason == schemas.ReasonTooLarge {
			continue // marriage events carry no address; cmd/pophub's TestBadInput covers it; limits_test.go too_large
		}
		if counts.Rejected[reason] != 1 || mc.Rejected[reason] != 1 {
			t.Errorf("rejected[%s] = %d (marriage %d), want 1", reason, counts.Rejected[reason], mc.Rejected[reason])
		}
	}

	// /metrics in Prometheus text, as the HTTP API serves it.
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	for _, line := range []string{
		`pophub_events_consumed_total{source="marriage"} 10`,
		`pophub_events_applied_total{source="marriage"} 3`,
		`pophub_events_duplicate_total{source="marriage"} 0`,
		`pophub_events_rejected_total{reason="key_mismatch",source="marriage"} 1`,
		`pophub_events_rejected_total{reason="not_json",source="health"} 0`,
		`pophub_ingest_batch_size_count`,
		`pophub_apply_duration_seconds_count`,
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(string(body), "pophub_"))
	}

	// One span per batch, linked to the records' trace, without keys.
	var batches int
	for _, s := range spans.Ended() {
		if s.Name() != "ingest batch" {
			continue
		}
		batches++
		var linked bool
		for _, l := range s.Links() {
			linked = linked || l.SpanContext.TraceID().String() == testTraceID
		}
		if !linked {
			t.Errorf("span %s has no link to the records' trace", s.Name())
		}
		for _, kv := range s.Attributes() {
			if v := kv.Value.Emit(); strings.Contains(v, idA) || strings.Contains(v, idB) {
				t.Errorf("span attribute %s = %q holds a citizen ID", kv.Key, v)
			}
		}
	}
	if batches == 0 {
		t.Error("no ingest batch span")
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDecodeChunkChecksTheKey: a record whose key is not its subject is
// rejected as key_mismatch, also a record without a key, which kafka-go
// gives as a nil key (and which schemas.Decode alone reads as "no key to
// check", for HTTP and file input).
func TestDecodeChunkChecksTheKey(t *testing.T) {
	value := []byte(cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))
	tests := []struct {
		name   string
		key    []byte
		reason string // "" when accepted
	}{
		{"keyed by the subject", []byte(idA), ""},
		{"without a key", nil, schemas.ReasonKeyMismatch},
		{"empty key", []byte{}, schemas.ReasonKeyMismatch},
		{"keyed by another person", []byte(idB), schemas.ReasonKeyMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := decodeChunk([]kafka.Message{{Topic: schemas.Topic(schemas.Marriage), Key: tc.key, Value: value}})
			if tc.reason == "" {
				if len(d.inputs) != 1 || len(d.rejects) != 0 {
					t.Fatalf("%d inputs, %d rejects; want the record applied", len(d.inputs), len(d.rejects))
				}
				return
			}
			if len(d.inputs) != 0 || len(d.rejects) != 1 {
				t.Fatalf("%d inputs, %d rejects; want the record rejected", len(d.inputs), len(d.rejects))
			}
			if got := header(d.rejects[0], HeaderReason); got != tc.reason {
				t.Errorf("reject reason %q, want %q", got, tc.reason)
			}
		})
	}
}

// TestOversizedRejectGoesOn: a reject whose DLQ copy Kafka can never take,
// too large for the DLQ writer or for the DLQ topic's max.message.bytes,
// used to fail for ever and stop ingest. Now the copy goes to the DLQ
// without its value, marked with HeaderDropped and counted, other rejects
// of the batch are copied whole, and the event after it is applied.
func TestOversizedRejectGoesOn(t *testing.T) {
	tests := []struct {
		name string
		// dlqMax, when not 0, is set as the DLQ topic's max.message.bytes.
		dlqMax int
		// big is the size of the oversized, not-JSON record's value.
		big int
	}{
		{"over the writer's batch bytes", 0, 1<<20 - 100},
		{"over the DLQ topic's max.message.bytes", 64 << 10, 100 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := broker(t)
			if tc.dlqMax > 0 {
				setTopicConfig(t, k.Addr(), schemas.DLQTopic, "max.message.bytes", strconv.Itoa(tc.dlqMax))
			}
			topic := schemas.Topic(schemas.Marriage)
			records := []kafka.Message{
				{Topic: topic, Key: []byte(idA), Value: []byte("small, not JSON")},
				{Topic: topic, Key: []byte(idA), Value: []byte(strings.Repeat("x", tc.big)), Headers: []kafka.Header{{Key: "origin", Value: []byte("test")}}},
				{Topic: topic, Key: []byte(idA), Value: []byte(cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))},
			}
			w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Balancer: toPartition0, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchBytes: 4 << 20}
			for _, m := range records { // one by one: the broker takes each alone
				if err := w.WriteMessages(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()

			tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tel.Shutdown(context.Background()) })
			a := &recordingApplier{}
			c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "big", Meter: tel.Meter("test")}, a)
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, c)
			waitUntil(t, "the records committed", func() bool { return c.Counts().Consumed == int64(len(records)) })
			stop()
			if a.ids["m-1"] != 1 {
				t.Errorf("the event after the oversized reject was applied %d times, want 1", a.ids["m-1"])
			}
			if got := c.Counts().Rejected[schemas.ReasonNotJSON]; got != 2 {
				t.Errorf("rejected not_json = %d, want 2", got)
			}

			got := map[string]kafka.Message{} // by original offset
			for _, m := range readTopic(t, k.Addr(), schemas.DLQTopic, 2) {
				got[header(m, HeaderOffset)] = m
			}
			small, large := got["0"], got["1"]
			if string(small.Value) != "small, not JSON" || header(small, HeaderDropped) != "" {
				t.Errorf("small reject copied as value %q, %s %q; want it whole", small.Value, HeaderDropped, header(small, HeaderDropped))
			}
			want := map[string]string{HeaderDropped: "value", HeaderReason: schemas.ReasonNotJSON, HeaderTopic: topic, HeaderPartition: "0", HeaderOffset: "1", "origin": "test"}
			for key, v := range want {
				if got := header(large, key); got != v {
					t.Errorf("oversized reject's copy: header %s = %q, want %q", key, got, v)
				}
			}
			if string(large.Key) != idA || len(large.Value) != 0 {
				t.Errorf("oversized reject's copy: key %q, %d bytes of value; want the key and no value", large.Key, len(large.Value))
			}

			rec := httptest.NewRecorder()
			tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			body, _ := io.ReadAll(rec.Result().Body)
			if line := `pophub_dlq_dropped_total{dropped="value",source="marriage"} 1`; !strings.Contains(string(body), line) {
				t.Errorf("/metrics lacks %s:\n%s", line, grepLines(string(body), "pophub_dlq"))
			}
		})
	}
}

// TestDLQDroppedStartsAtZero: a fresh consumer's /metrics has
// pophub_dlq_dropped_total at zero for every source and every dropped
// value, so that increase() sees the first drop; a series born at 1 has no
// earlier sample to increase from.
func TestDLQDroppedStartsAtZero(t *testing.T) {
	k := broker(t)
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "fresh", Meter: tel.Meter("test")}, &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, src := range schemas.Sources {
		for _, dropped := range []string{"value", "key,value,headers", "record"} {
			line := fmt.Sprintf("pophub_dlq_dropped_total{dropped=%q,source=%q} 0\n", dropped, src)
			if !strings.Contains(body, line) {
				t.Errorf("/metrics lacks %s", strings.TrimSpace(line))
			}
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(body, "pophub_dlq"))
	}
}

// setTopicConfig sets one configuration entry of topic.
func setTopicConfig(t testing.TB, addr, topic, name, value string) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	resp, err := cl.AlterConfigs(context.Background(), &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.AlterConfigRequestConfig{{Name: name, Value: value}},
	}}})
	if err == nil {
		err = resp.Errors[kafka.AlterConfigsResponseResource{Type: int8(kafka.ResourceTypeTopic), Name: topic}]
	}
	if err != nil {
		t.Fatalf("setting %s of %s: %v", name, topic, err)
	}
}

// readTopic reads the first n records of topic, from all partitions.
func readTopic(t testing.TB, addr, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: "read-" + topic, Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for len(out) < n {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			t.Fatalf("reading %s after %d records: %v", topic, len(out), err)
		}
		out = append(out, m)
	}
	return out
}

// TestDecodeChunkBoundsTraceContext: the trace context an event carries on
// is a valid traceparent and a tracestate of at most maxTraceState bytes,
// without members holding a citizen ID;
// a record with junk or oversized trace headers is applied without them,
// so that its notifications stay publishable.
func TestDecodeChunkBoundsTraceContext(t *testing.T) {
	value := []byte(cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name      string
		headers   []kafka.Header
		wantTrace map[string]string
	}{
		{"none", nil, nil},
		{"valid, with state", []kafka.Header{{Key: "traceparent", Value: []byte(parent)}, {Key: "tracestate", Value: []byte("pophub=t61rcWkgMzE")}},
			map[string]string{"traceparent": parent, "tracestate": "pophub=t61rcWkgMzE"}},
		{"junk traceparent", []kafka.Header{{Key: "traceparent", Value: bytes.Repeat([]byte("x"), 2<<20)}}, nil},
		{"oversized tracestate", []kafka.Header{{Key: "traceparent", Value: []byte(parent)},
			{Key: "tracestate", Value: []byte("a=" + strings.Repeat("b", 2000))}}, map[string]string{"traceparent": parent}},
		// A citizen ID in a tracestate member would travel on in every
		// notification's NATS headers and in the hub's spans.
		{"citizen ID in tracestate", []kafka.Header{{Key: "traceparent", Value: []byte(parent)},
			{Key: "tracestate", Value: []byte("vendor=t61rcWkgMzE,cid=" + idA + ",other=1")}},
			map[string]string{"traceparent": parent, "tracestate": "vendor=t61rcWkgMzE,other=1"}},
		{"only a citizen ID in tracestate", []kafka.Header{{Key: "traceparent", Value: []byte(parent)},
			{Key: "tracestate", Value: []byte("cid=" + idA)}}, map[string]string{"traceparent": parent}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := decodeChunk([]kafka.Message{{Topic: schemas.Topic(schemas.Marriage), Key: []byte(idA), Value: value, Headers: tc.headers}})
			if len(d.inputs) != 1 {
				t.Fatalf("%d inputs, %d rejects; want the record applied", len(d.inputs), len(d.rejects))
			}
			if got := d.inputs[0].Trace; !reflect.DeepEqual(got, tc.wantTrace) && (len(got) != 0 || len(tc.wantTrace) != 0) {
				t.Errorf("trace context %.200v, want %v", got, tc.wantTrace)
			}
			for _, l := range d.links {
				if ts := l.SpanContext.TraceState().String(); strings.Contains(ts, idA) {
					t.Errorf("the span link's trace state %q holds the citizen ID", ts)
				}
			}
			for _, in := range d.sampled {
				if ts := in.parent.TraceState().String(); strings.Contains(ts, idA) {
					t.Errorf("the parent span's trace state %q holds the citizen ID", ts)
				}
			}
		})
	}
}

// TestDLQCopyRenamesReservedHeaders: a department's record may carry
// headers named like the hub's. On the DLQ copy they are renamed
// orig-pophub-*, so that each of the hub's headers is there once and is
// the hub's; a well-formed pophub-replay-of, which `dlq replay` wrote,
// moves among the hub's headers instead.
func TestDLQCopyRenamesReservedHeaders(t *testing.T) {
	re := &schemas.RejectError{Reason: schemas.ReasonNotJSON, Detail: "not JSON"}
	h := func(k, v string) kafka.Header { return kafka.Header{Key: k, Value: []byte(v)} }
	hubs := func(extra ...kafka.Header) []kafka.Header {
		return append([]kafka.Header{h(HeaderReason, schemas.ReasonNotJSON), h(HeaderField, ""), h(HeaderError, re.Error()),
			h(HeaderTopic, "pop.events.marriage"), h(HeaderPartition, "1"), h(HeaderOffset, "42")}, extra...)
	}
	for _, tc := range []struct {
		name     string
		original []kafka.Header
		want     []kafka.Header
	}{
		{"none", nil, hubs()},
		{"ordinary", []kafka.Header{h("origin", "x"), h("traceparent", testTraceparent)},
			append([]kafka.Header{h("origin", "x"), h("traceparent", testTraceparent)}, hubs()...)},
		{"spoofed", []kafka.Header{h(HeaderDropped, "value"), h("origin", "x"), h(HeaderReason, "bad_vibes"), h(HeaderOffset, "0")},
			append([]kafka.Header{h("orig-"+HeaderDropped, "value"), h("origin", "x"), h("orig-"+HeaderReason, "bad_vibes"), h("orig-"+HeaderOffset, "0")}, hubs()...)},
		{"replayed", []kafka.Header{h("origin", "x"), h(HeaderReplayOf, "3:17")},
			append([]kafka.Header{h("origin", "x")}, hubs(h(HeaderReplayOf, "3:17"))...)},
		{"replayed twice over", []kafka.Header{h(HeaderReplayOf, "0:1"), h(HeaderReplayOf, "3:17")},
			append([]kafka.Header{h("orig-"+HeaderReplayOf, "0:1")}, hubs(h(HeaderReplayOf, "3:17"))...)},
		{"malformed replay-of", []kafka.Header{h(HeaderReplayOf, "0:0; DROP")},
			append([]kafka.Header{h("orig-"+HeaderReplayOf, "0:0; DROP")}, hubs()...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := kafka.Message{Topic: "pop.events.marriage", Partition: 1, Offset: 42, Key: []byte(idA), Value: []byte("junk"), Headers: tc.original}
			got := dlqRecord(m, re)
			if !reflect.DeepEqual(got.Headers, tc.want) {
				t.Errorf("headers\n%v\nwant\n%v", got.Headers, tc.want)
			}
			if string(got.Key) != idA || string(got.Value) != "junk" {
				t.Errorf("key %q value %q, want the original's", got.Key, got.Value)
			}
		})
	}
}

// refuseAll answers every request of key with code for each partition:
// OffsetCommit requests all, Produce requests whose first topic passes
// match.
func refuseAll(k *embedded.Kafka, key kmsg.Key, match func(topic string) bool, code int16) {
	k.Cluster().ControlKey(int16(key), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		switch req := kreq.(type) {
		case *kmsg.OffsetCommitRequest:
			resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
			for _, rt := range req.Topics {
				st := kmsg.OffsetCommitResponseTopic{Topic: rt.Topic}
				for _, rp := range rt.Partitions {
					st.Partitions = append(st.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: rp.Partition, ErrorCode: code})
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		case *kmsg.ProduceRequest:
			if len(req.Topics) == 0 || !match(req.Topics[0].Topic) {
				return nil, nil, false
			}
			resp := req.ResponseKind().(*kmsg.ProduceResponse)
			for _, rt := range req.Topics {
				st := kmsg.NewProduceResponseTopic()
				st.Topic = rt.Topic
				for _, rp := range rt.Partitions {
					sp := kmsg.NewProduceResponseTopicPartition()
					sp.Partition, sp.ErrorCode = rp.Partition, code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		}
		return nil, nil, false
	})
}

// TestDLQRefusingWritesIsNotReady: a DLQ that refuses the hub's writes
// stops ingest behind the reject (by design: nothing is skipped); the log
// says the refusal is permanent, and once it has lasted longer than
// dlqGrace, Ping reports the hub not ready, naming the DLQ.
func TestDLQRefusingWritesIsNotReady(t *testing.T) {
	k := onePartitionBroker(t)
	refuseAll(k, kmsg.Produce, func(topic string) bool { return topic == schemas.DLQTopic }, 29) // TOPIC_AUTHORIZATION_FAILED
	var logs testenv.LogBuffer
	c, err := New(withLog(Config{Brokers: []string{k.Addr()}, GroupID: "dlq-refuses"}, &logs), &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	c.dlqStall.grace = 300 * time.Millisecond
	stop := run(t, c)
	defer stop()
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return c.Ping(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("Ping before any reject: %v", err)
	}
	writeRecords(t, k.Addr(), kafka.Message{Topic: marriageTopic, Key: []byte(idA), Value: []byte("junk")})
	var pingErr error
	waitUntil(t, "Ping fails", func() bool { pingErr = ping(); return pingErr != nil })
	if !strings.Contains(pingErr.Error(), "DLQ topic "+schemas.DLQTopic) || !strings.Contains(pingErr.Error(), "Topic Authorization Failed") {
		t.Errorf("Ping: %v; want the DLQ and the broker's refusal named", pingErr)
	}
	line := grepLines(logs.String(), "the DLQ refuses the hub's writes")
	if strings.Count(line, "level=ERROR") != 1 || !strings.Contains(line, "no record is skipped") {
		t.Errorf("want one error saying the DLQ refuses writes for good and ingest waits:\n%s", logs.String())
	}
}
