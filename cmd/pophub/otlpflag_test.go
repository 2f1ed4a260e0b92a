package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// otlpReceiver is an OTLP/HTTP trace endpoint in the test: it keeps every
// span it is sent, and the raw requests, to look for citizen IDs in them.
type otlpReceiver struct {
	URL    string
	mu     sync.Mutex
	spans  []exportedSpan
	bodies [][]byte
}

// exportedSpan is what the tests read of a span received over OTLP.
type exportedSpan struct {
	service, name         string
	kind                  tracepb.Span_SpanKind
	traceID, id, parentID string // hex, as in a traceparent
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rcv := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if r.URL.Path != "/v1/traces" || err != nil {
			t.Errorf("OTLP receiver: %s %s: %v", r.Method, r.URL.Path, err)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		rcv.bodies = append(rcv.bodies, body)
		for _, rs := range req.GetResourceSpans() {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					rcv.spans = append(rcv.spans, exportedSpan{service: service, name: s.GetName(), kind: s.GetKind(),
						traceID: hex.EncodeToString(s.GetTraceId()), id: hex.EncodeToString(s.GetSpanId()),
						parentID: hex.EncodeToString(s.GetParentSpanId())})
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		resp, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	rcv.URL = srv.URL
	return rcv
}

// named returns the received spans of the given service and name.
func (r *otlpReceiver) named(service, name string) []exportedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exportedSpan
	for _, s := range r.spans {
		if s.service == service && s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// assertNothingNames fails the test if any export request holds text.
func (r *otlpReceiver) assertNothingNames(t *testing.T, text string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bodies {
		if bytes.Contains(b, []byte(text)) {
			t.Errorf("an OTLP export request contains %q", text)
		}
	}
}

// recordTraceparent returns the traceparent every record of topic
// carries; it fails the test if one carries none or they differ.
func recordTraceparent(t *testing.T, addr, topic string) string {
	t.Helper()
	tp := ""
	for i, rec := range testenv.Records(t, addr, topic) {
		got := header(rec, "traceparent")
		if got == "" || (i > 0 && got != tp) {
			t.Fatalf("record %d of %s has traceparent %q, want the one the others carry (%q)", i, topic, got, tp)
		}
		tp = got
	}
	if tp == "" {
		t.Fatalf("no records on %s", topic)
	}
	return tp
}

func header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// producerSpan waits for the one span service exports under name, and
// checks that it is the producer span whose context the records carry:
// "00-<trace id>-<span id>-01".
func producerSpan(t *testing.T, rcv *otlpReceiver, service, name, traceparent string) exportedSpan {
	t.Helper()
	waitFor(t, 30*time.Second, "the "+name+" span of "+service, func() bool { return len(rcv.named(service, name)) > 0 })
	spans := rcv.named(service, name)
	if len(spans) != 1 {
		t.Fatalf("%d %q spans of %s, want 1", len(spans), name, service)
	}
	s := spans[0]
	if s.kind != tracepb.Span_SPAN_KIND_PRODUCER {
		t.Errorf("%q span kind %v, want producer", name, s.kind)
	}
	if want := "00-" + s.traceID + "-" + s.id + "-01"; traceparent != want {
		t.Errorf("records carry traceparent %q, want the exported %q span's %q", traceparent, name, want)
	}
	return s
}

// TestOTLPFollowsOneEventThroughTheCommands follows one event with the
// shipped commands and nothing else: "pophub publish --otlp" exports its
// producer span and puts its context into the records; the hub, exporting
// nothing, passes that context on unchanged; "pophub si-subscriber --otlp"
// exports its handler span as the publish span's child. No export names
// the citizen.
func TestOTLPFollowsOneEventThroughTheCommands(t *testing.T) {
	m := startHub(t, "memdb")
	rcv := startOTLPReceiver(t)
	newLogger := func() *slog.Logger { return testLogger(t) }

	sub := siSubscriberCommand(newLogger)
	sub.SetArgs([]string{"--region", "2301", "--nats", m.NATSURL(), "--postgres", testenv.PostgresURL(), "--schema", testenv.Schema(t),
		"--start", "all", "--http", "127.0.0.1:0", "--otlp", rcv.URL})
	sub.SetOut(io.Discard)
	sub.SilenceUsage, sub.SilenceErrors = true, true
	ctx, stop := context.WithCancel(context.Background())
	subDone := make(chan error, 1)
	go func() { subDone <- sub.ExecuteContext(ctx) }()
	stopSubscriber := func() {
		t.Helper()
		stop()
		if err := <-subDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("si-subscriber: %v", err)
		}
	}
	defer func() {
		if ctx.Err() == nil {
			stopSubscriber()
		}
	}()

	// Registered in Harbin (2301), then moved to Daqing: a migration out
	// of the bureau's region, which makes it a transfer_out task.
	id := personID(t, 41)
	reg := event(t, schemas.HukouRegistered, id, "ps-otlp-1", "2015-01-01T08:00:00+08:00", map[string]any{"name": "王芳",
		"gender": id.Gender(), "birth_date": id.BirthDate().Format(time.DateOnly), "ethnicity": "01",
		"address_code": "230102001001", "household_id": "H-otlp", "reason": "birth"})
	moved := event(t, schemas.HukouMigrated, id, "ps-otlp-2", "2024-05-01T00:00:00+08:00",
		map[string]any{"from_address_code": "230102001001", "to_address_code": "230602013004", "reason": "employment"})
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(string(reg.Value)+"\n"+string(moved.Value)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := execute(t, publishCommand(newLogger), "--source", string(schemas.PublicSecurity), "--file", file,
		"--kafka", strings.Join(m.Brokers(), ","), "--otlp", rcv.URL); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}

	traceparent := recordTraceparent(t, m.Brokers()[0], schemas.Topic(schemas.PublicSecurity))
	pub := producerSpan(t, rcv, "pophub-publish", "publish "+schemas.Topic(schemas.PublicSecurity), traceparent)

	const handler = "process socialinsurance-2301"
	waitFor(t, time.Minute, "the subscriber's handler span", func() bool { return len(rcv.named("pophub-si-subscriber", handler)) > 0 })
	stopSubscriber() // flushes whatever else it has
	spans := rcv.named("pophub-si-subscriber", handler)
	if len(spans) != 1 {
		t.Errorf("%d handler spans, want 1 (the migration's; notifications without sampled trace context start none)", len(spans))
	}
	for _, s := range spans {
		if s.traceID != pub.traceID || s.parentID != pub.id {
			t.Errorf("handler span in trace %s under %s, want the publish span's child (trace %s, span %s): the hub must pass trace context on unchanged when it exports nothing",
				s.traceID, s.parentID, pub.traceID, pub.id)
		}
	}
	rcv.assertNothingNames(t, string(id))
}

// TestOTLPImport checks that "pophub import --otlp" exports a producer
// span whose context every record it sends carries.
func TestOTLPImport(t *testing.T) {
	addr := testenv.Kafka(t, 2)
	rcv := startOTLPReceiver(t)
	var lines []string
	for _, n := range []int{51, 52} {
		id := personID(t, n)
		lines = append(lines, string(event(t, schemas.RentalRegistered, id, fmt.Sprintf("hs-otlp-%d", n), "2023-03-01T00:00:00+08:00",
			map[string]any{"lease_id": "L1", "address_code": "230102001001", "start": "2023-03-01"}).Value))
	}
	file := filepath.Join(t.TempDir(), "housing.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := execute(t, importCommand(func() *slog.Logger { return testLogger(t) }),
		"--source", string(schemas.Housing), "--file", file, "--kafka", addr, "--otlp", rcv.URL); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	topic := schemas.Topic(schemas.Housing)
	producerSpan(t, rcv, "pophub-import", "import "+topic, recordTraceparent(t, addr, topic))
	for _, n := range []int{51, 52} {
		rcv.assertNothingNames(t, string(personID(t, n)))
	}
}
