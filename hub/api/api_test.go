package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// makeID builds a valid citizen ID from its first 17 digits.
func makeID(tb testing.TB, first17 string) citizenid.ID {
	tb.Helper()
	id, err := citizenid.Parse(first17 + string(citizenid.CheckChar(first17)))
	if err != nil {
		tb.Fatalf("makeID(%s): %v", first17, err)
	}
	return id
}

// wrongCheck replaces the check character of id with a wrong one.
func wrongCheck(id citizenid.ID) string {
	s := string(id)
	if s[17] == '0' {
		return s[:17] + "1"
	}
	return s[:17] + "0"
}

// memReader is a map-backed api.Reader. fail, when set, answers every read.
type memReader struct {
	records map[citizenid.ID]hub.Record
	history map[citizenid.ID][]hub.Change
	fail    func(id citizenid.ID) error
}

func (m *memReader) Person(_ context.Context, id citizenid.ID) (hub.Record, error) {
	if m.fail != nil {
		if err := m.fail(id); err != nil {
			return hub.Record{}, err
		}
	}
	rec, ok := m.records[id]
	if !ok {
		return hub.Record{}, fmt.Errorf("person %v: %w", id, hub.ErrNotFound)
	}
	return rec, nil
}

func (m *memReader) History(_ context.Context, id citizenid.ID) ([]hub.Change, error) {
	if m.fail != nil {
		if err := m.fail(id); err != nil {
			return nil, err
		}
	}
	if _, ok := m.records[id]; !ok {
		return nil, fmt.Errorf("history of %v: %w", id, hub.ErrNotFound)
	}
	return m.history[id], nil
}

var (
	updated = time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC)
	evTime  = time.Date(2026, 3, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
)

type fixture struct {
	known, spouse, bare, unknown citizenid.ID
	reader                       *memReader
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{
		known:   makeID(tb, "23010219900101123"),
		spouse:  makeID(tb, "23010219920202124"),
		bare:    makeID(tb, "11010519491231002"),
		unknown: makeID(tb, "44030519851111567"),
	}
	f.reader = &memReader{
		records: map[citizenid.ID]hub.Record{
			f.known: {
				CitizenID: f.known,
				Version:   2,
				UpdatedAt: updated,
				Status:    hub.StatusActive,
				Identity:  &hub.Identity{Name: "张三", Gender: "1", BirthDate: "1990-01-01", Ethnicity: "01"},
				Hukou:     &hub.Hukou{AddressCode: "230102001001", RegionCode: "230102", Since: "2026-03-01", HouseholdID: "H1"},
				Marital:   &hub.Marital{Status: "20", SpouseID: f.spouse, Since: "2026-03-01"},
				Provenance: map[string]hub.Provenance{
					"identity": {Source: schemas.PublicSecurity, EventID: "ps-1", Time: evTime},
				},
			},
			f.bare: {CitizenID: f.bare, Version: 1, UpdatedAt: updated, Status: hub.StatusActive,
				Anomalies: []hub.Anomaly{{Kind: hub.AnomalyUnregistered, Since: "2026-03-01"}}},
		},
		history: map[citizenid.ID][]hub.Change{
			f.known: {
				{Version: 1, EventID: "ps-1", Source: schemas.PublicSecurity, Type: "hukou.registered",
					Time: evTime, AppliedAt: updated, Sections: []string{"identity", "hukou"}},
				{Version: 2, EventID: "mar-9", Source: schemas.Marriage, Type: "marriage.registered",
					Time: evTime, AppliedAt: updated, Sections: []string{"marital"}},
			},
		},
	}
	return f
}

func (f *fixture) wantRecordJSON() string {
	return `{"citizen_id":"` + string(f.known) + `","version":2,"updated_at":"2026-03-01T08:30:00Z","status":"active",` +
		`"identity":{"name":"张三","gender":"1","birth_date":"1990-01-01","ethnicity":"01"},` +
		`"hukou":{"address_code":"230102001001","region_code":"230102","since":"2026-03-01","household_id":"H1"},` +
		`"marital":{"status":"20","spouse_id":"` + string(f.spouse) + `","since":"2026-03-01"},` +
		`"provenance":{"identity":{"source":"public_security","event_id":"ps-1","time":"2026-03-01T00:00:00+08:00"}}}` + "\n"
}

func (f *fixture) wantHistoryJSON() string {
	return `[{"version":1,"event_id":"ps-1","source":"public_security","type":"hukou.registered",` +
		`"time":"2026-03-01T00:00:00+08:00","applied_at":"2026-03-01T08:30:00Z","sections":["identity","hukou"]},` +
		`{"version":2,"event_id":"mar-9","source":"marriage","type":"marriage.registered",` +
		`"time":"2026-03-01T00:00:00+08:00","applied_at":"2026-03-01T08:30:00Z","sections":["marital"]}]` + "\n"
}

func do(tb testing.TB, h http.Handler, method, target string, hdr http.Header) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeProblem(tb testing.TB, rec *httptest.ResponseRecorder) api.Problem {
	tb.Helper()
	if got := rec.Header().Get("Content-Type"); got != api.ProblemContentType {
		tb.Fatalf("Content-Type = %q, want %q; body %s", got, api.ProblemContentType, rec.Body)
	}
	var p api.Problem
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		tb.Fatalf("decoding problem %s: %v", rec.Body, err)
	}
	return p
}

func TestRoutes(t *testing.T) {
	f := newFixture(t)
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	h := api.New(api.Config{Store: f.reader, Metrics: tel.MetricsHandler()}).Handler()

	tests := []struct {
		name        string
		method      string
		path        string
		wantStatus  int
		wantType    string // Content-Type
		wantBody    string // exact body, if set
		wantProblem string // problem type slug, if a problem
		wantDetail  string // exact problem detail, if set
		wantHeader  map[string]string
	}{
		{name: "record", method: "GET", path: "/v1/persons/" + string(f.known),
			wantStatus: 200, wantType: "application/json", wantBody: f.wantRecordJSON(),
			wantHeader: map[string]string{"Cache-Control": "no-store"}},
		{name: "record with absent sections omitted", method: "GET", path: "/v1/persons/" + string(f.bare),
			wantStatus: 200, wantType: "application/json",
			wantBody: `{"citizen_id":"` + string(f.bare) + `","version":1,"updated_at":"2026-03-01T08:30:00Z","status":"active",` +
				`"anomalies":[{"kind":"unregistered","since":"2026-03-01"}]}` + "\n"},
		{name: "record HEAD", method: "HEAD", path: "/v1/persons/" + string(f.known),
			wantStatus: 200, wantType: "application/json"},
		{name: "malformed id: length", method: "GET", path: "/v1/persons/12345",
			wantStatus: 400, wantProblem: "invalid-request", wantDetail: "invalid citizen ID: must be 18 characters"},
		{name: "malformed id: check character", method: "GET", path: "/v1/persons/" + wrongCheck(f.known),
			wantStatus: 400, wantProblem: "invalid-request", wantDetail: "invalid citizen ID: check character does not match (GB 11643 MOD 11-2)"},
		{name: "malformed id: lower-case x", method: "GET", path: "/v1/persons/11010519491231002x",
			wantStatus: 400, wantProblem: "invalid-request", wantDetail: "invalid citizen ID: check character must be upper-case X, not x (GB 11643)"},
		{name: "unknown person", method: "GET", path: "/v1/persons/" + string(f.unknown),
			wantStatus: 404, wantProblem: "not-found", wantDetail: "nothing is known under this identifier"},
		{name: "history in version order", method: "GET", path: "/v1/persons/" + string(f.known) + "/history",
			wantStatus: 200, wantType: "application/json", wantBody: f.wantHistoryJSON()},
		{name: "empty history is an empty array", method: "GET", path: "/v1/persons/" + string(f.bare) + "/history",
			wantStatus: 200, wantType: "application/json", wantBody: "[]\n"},
		{name: "history of unknown person", method: "GET", path: "/v1/persons/" + string(f.unknown) + "/history",
			wantStatus: 404, wantProblem: "not-found"},
		{name: "history with malformed id", method: "GET", path: "/v1/persons/abc/history",
			wantStatus: 400, wantProblem: "invalid-request"},
		{name: "wrong method", method: "POST", path: "/v1/persons/" + string(f.known),
			wantStatus: 405, wantProblem: "method-not-allowed",
			wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "wrong method on healthz", method: "DELETE", path: "/healthz",
			wantStatus: 405, wantProblem: "method-not-allowed"},
		{name: "unknown route", method: "GET", path: "/v2/things",
			wantStatus: 404, wantProblem: "not-found", wantDetail: "no such resource"},
		{name: "persons collection is not a route", method: "GET", path: "/v1/persons/",
			wantStatus: 404, wantProblem: "not-found"},
		{name: "too deep", method: "GET", path: "/v1/persons/" + string(f.known) + "/history/1",
			wantStatus: 404, wantProblem: "not-found"},
		{name: "healthz", method: "GET", path: "/healthz",
			wantStatus: 200, wantType: "application/json", wantBody: `{"status":"ok"}` + "\n"},
		{name: "readyz without checks", method: "GET", path: "/readyz",
			wantStatus: 200, wantType: "application/json", wantBody: `{"status":"ok"}` + "\n"},
		{name: "metrics", method: "GET", path: "/metrics",
			wantStatus: 200, wantType: "text/plain; version=0.0.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, h, tt.method, tt.path, nil)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if rec.Header().Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id header")
			}
			for k, v := range tt.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tt.wantProblem != "" {
				p := decodeProblem(t, rec)
				want := api.Problem{
					Type:     api.ProblemTypePrefix + tt.wantProblem,
					Title:    http.StatusText(tt.wantStatus),
					Status:   tt.wantStatus,
					Detail:   p.Detail,
					Instance: "urn:pophub:request:" + rec.Header().Get("X-Request-Id"),
				}
				if tt.wantDetail != "" {
					want.Detail = tt.wantDetail
				}
				if p != want {
					t.Errorf("problem = %+v, want %+v", p, want)
				}
				if p.Detail == "" {
					t.Error("problem without detail")
				}
				return
			}
			if got := rec.Header().Get("Content-Type"); got != tt.wantType && !(tt.path == "/metrics" && strings.HasPrefix(got, tt.wantType+";")) {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if tt.wantBody != "" {
				if got := rec.Body.String(); got != tt.wantBody {
					t.Errorf("body =\n%s\nwant\n%s", got, tt.wantBody)
				}
			}
		})
	}
}

// TestStoreErrors checks the error table: hub kinds map to their status, and
// anything else is a 500 that reveals nothing of its cause.
func TestStoreErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantSlug   string
		wantHeader map[string]string
	}{
		{"unavailable", fmt.Errorf("querying: %w", hub.ErrUnavailable), 503, "unavailable", map[string]string{"Retry-After": "1"}},
		{"conflict", fmt.Errorf("loading: %w", hub.ErrConflict), 409, "conflict", nil},
		{"invalid", fmt.Errorf("loading: %w", hub.ErrInvalid), 400, "invalid-request", nil},
		{"not found", hub.ErrNotFound, 404, "not-found", nil},
		{"other", errors.New("pq: connection to 10.0.0.7:5432 refused, table golden_records"), 500, "internal", nil},
		{"deadline", context.DeadlineExceeded, 500, "internal", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reader := &memReader{fail: func(citizenid.ID) error { return tt.err }}
			h := api.New(api.Config{Store: reader}).Handler()
			for _, path := range []string{"/v1/persons/" + string(f.known), "/v1/persons/" + string(f.known) + "/history"} {
				rec := do(t, h, "GET", path, nil)
				if rec.Code != tt.wantStatus {
					t.Fatalf("%s: status = %d, want %d", path, rec.Code, tt.wantStatus)
				}
				p := decodeProblem(t, rec)
				if p.Type != api.ProblemTypePrefix+tt.wantSlug || p.Status != tt.wantStatus {
					t.Errorf("%s: problem = %+v", path, p)
				}
				if strings.Contains(p.Detail, "10.0.0.7") || strings.Contains(p.Detail, "golden_records") {
					t.Errorf("%s: detail leaks internals: %q", path, p.Detail)
				}
				for k, v := range tt.wantHeader {
					if got := rec.Header().Get(k); got != v {
						t.Errorf("header %s = %q, want %q", k, got, v)
					}
				}
			}
		})
	}
}

// TestErrorsNeverShowACitizenID: an error or a panic that carries a raw
// citizen ID, against the rule that none should, shows it masked in the
// problem detail and in the log.
func TestErrorsNeverShowACitizenID(t *testing.T) {
	f := newFixture(t)
	const raw = "230102199001011234"
	tests := []struct {
		name string
		fail func(citizenid.ID) error
	}{
		{"invalid request", func(citizenid.ID) error { return fmt.Errorf("loading %s: %w", raw, hub.ErrInvalid) }},
		{"internal error", func(citizenid.ID) error { return fmt.Errorf("loading %s: connection reset", raw) }},
		{"panic", func(citizenid.ID) error { panic("no state for " + raw) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			h := api.New(api.Config{Store: &memReader{fail: tt.fail}, Logger: logger}).Handler()
			rec := do(t, h, "GET", "/v1/persons/"+string(f.known), nil)
			if rec.Code != 400 && rec.Code != 500 {
				t.Fatalf("status = %d", rec.Code)
			}
			if body := rec.Body.String(); strings.Contains(body, raw) {
				t.Errorf("the problem shows the ID: %s", body)
			}
			if strings.Contains(logs.String(), raw) {
				t.Errorf("the log shows the ID:\n%s", logs.String())
			}
			if rec.Code == 400 && !strings.Contains(rec.Body.String(), "2301**********1234") {
				t.Errorf("the problem detail lost the masked ID: %s", rec.Body.String())
			}
			if rec.Code == 500 && !strings.Contains(logs.String(), "2301**********1234") {
				t.Errorf("the log lost the masked ID:\n%s", logs.String())
			}
		})
	}
}

func TestPanicRecovery(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reader := &memReader{fail: func(citizenid.ID) error { panic("store exploded") }}
	h := api.New(api.Config{Store: reader, Logger: logger}).Handler()

	rec := do(t, h, "GET", "/v1/persons/"+string(f.known), nil)
	if rec.Code != 500 {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	p := decodeProblem(t, rec)
	if p.Type != api.ProblemTypePrefix+"internal" || strings.Contains(p.Detail, "exploded") {
		t.Errorf("problem = %+v", p)
	}
	if !strings.Contains(logs.String(), "store exploded") || !strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("panic not logged at error level:\n%s", logs.String())
	}
	// The server keeps serving.
	if rec := do(t, h, "GET", "/healthz", nil); rec.Code != 200 {
		t.Errorf("healthz after panic: %d", rec.Code)
	}
}

func TestReadyz(t *testing.T) {
	ok := api.Check{Name: "store", Probe: func(context.Context) error { return nil }}
	down := api.Check{Name: "nats", Probe: func(context.Context) error { return errors.New("dial tcp 127.0.0.1:4222: connection refused") }}
	slow := api.Check{Name: "kafka", Probe: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	tests := []struct {
		name       string
		checks     []api.Check
		wantStatus int
		want       api.Health
	}{
		{"all ok", []api.Check{ok}, 200, api.Health{Status: "ok", Checks: map[string]string{"store": "ok"}}},
		{"one failing", []api.Check{ok, down}, 503, api.Health{Status: "unavailable", Checks: map[string]string{
			"store": "ok", "nats": "dial tcp 127.0.0.1:4222: connection refused"}}},
		{"one timing out", []api.Check{slow, ok}, 503, api.Health{Status: "unavailable", Checks: map[string]string{
			"store": "ok", "kafka": "no answer within 50ms"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := api.New(api.Config{Store: &memReader{}, Ready: tt.checks, ReadyTimeout: 50 * time.Millisecond}).Handler()
			rec := do(t, h, "GET", "/readyz", nil)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			var got api.Health
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("body = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMetricsAfterRequest(t *testing.T) {
	f := newFixture(t)
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	h := api.New(api.Config{Store: f.reader, Metrics: tel.MetricsHandler(), Meter: tel.Meter("pophub/api")}).Handler()

	do(t, h, "GET", "/v1/persons/"+string(f.known), nil)
	do(t, h, "GET", "/v1/persons/"+string(f.known), nil)
	do(t, h, "GET", "/v1/persons/"+string(f.unknown), nil)
	do(t, h, "GET", "/no/such/"+string(f.unknown), nil)
	do(t, h, "BREW", "/healthz", nil)

	body := do(t, h, "GET", "/metrics", nil).Body.String()
	for _, want := range []string{
		`pophub_http_requests_total{code="200",method="GET",route="/v1/persons/{citizen_id}"} 2`,
		`pophub_http_requests_total{code="404",method="GET",route="/v1/persons/{citizen_id}"} 1`,
		`pophub_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`pophub_http_requests_total{code="405",method="_OTHER",route="unmatched"} 1`,
		`pophub_http_request_duration_seconds_count{route="/v1/persons/{citizen_id}"} 3`,
		`# TYPE pophub_http_request_duration_seconds histogram`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	for _, id := range []citizenid.ID{f.known, f.unknown} {
		if strings.Contains(body, string(id)) {
			t.Errorf("/metrics contains a raw citizen ID")
		}
	}
}

// TestPrivacy sends requests about a valid but unknown person, a known one,
// and failing ones whose errors and panics carry the raw ID (as a careless
// store might), and checks that no raw ID reaches logs, spans or metrics.
func TestPrivacy(t *testing.T) {
	f := newFixture(t)
	poison := makeID(t, "51010719770707888")
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })

	f.reader.fail = func(id citizenid.ID) error {
		switch id {
		case poison:
			return fmt.Errorf("query for %s failed", string(id)) // a raw ID, against the rules
		case f.spouse:
			panic("no row for " + string(id))
		}
		return nil
	}
	h := api.New(api.Config{
		Store:   f.reader,
		Logger:  logger,
		Tracer:  tp.Tracer("test"),
		Meter:   tel.Meter("test"),
		Metrics: tel.MetricsHandler(),
	}).Handler()

	ids := []citizenid.ID{f.unknown, f.known, poison, f.spouse}
	var bodies strings.Builder
	for _, id := range ids {
		for _, path := range []string{"/v1/persons/" + string(id), "/v1/persons/" + string(id) + "/history", "/v1/person/" + string(id)} {
			rec := do(t, h, "GET", path, nil)
			if rec.Code >= 500 {
				bodies.WriteString(rec.Body.String())
			}
		}
	}
	if rec := do(t, h, "GET", "/v1/persons/"+string(f.unknown), nil); rec.Code != 404 {
		t.Fatalf("unknown person: status %d, want 404", rec.Code)
	}
	metrics := do(t, h, "GET", "/metrics", nil).Body.String()

	var spanText strings.Builder
	for _, s := range spans.Ended() {
		fmt.Fprintln(&spanText, s.Name())
		for _, a := range s.Attributes() {
			fmt.Fprintln(&spanText, a.Key, a.Value.Emit())
		}
		for _, e := range s.Events() {
			fmt.Fprintln(&spanText, e.Name, e.Attributes)
		}
		fmt.Fprintln(&spanText, s.Status().Description)
	}

	if logs.Len() == 0 || !strings.Contains(logs.String(), `"route":"/v1/persons/{citizen_id}"`) {
		t.Fatalf("access log missing or without route pattern:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), poison.Masked()) {
		t.Errorf("the store error is not logged (masked):\n%s", logs.String())
	}
	if got := spans.Ended(); len(got) == 0 || got[0].Name() != api.RoutePerson {
		t.Errorf("first span name = %v, want %q", got, api.RoutePerson)
	}
	for _, id := range ids {
		for what, text := range map[string]string{
			"logs": logs.String(), "spans": spanText.String(), "metrics": metrics, "5xx bodies": bodies.String(),
		} {
			if strings.Contains(text, string(id)) {
				t.Errorf("%s contain the raw citizen ID %v:\n%s", what, id, text)
			}
		}
	}
}

// TestTraceContext checks that the server span continues the caller's trace
// and is named after the route pattern.
func TestTraceContext(t *testing.T) {
	f := newFixture(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := api.New(api.Config{Store: f.reader, Tracer: tp.Tracer("test"), Propagator: propagation.TraceContext{}}).Handler()

	do(t, h, "GET", "/v1/persons/"+string(f.known)+"/history", http.Header{
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	})
	do(t, h, "PUT", "/v1/persons/"+string(f.known), nil)
	got := spans.Ended()
	if len(got) != 2 {
		t.Fatalf("%d spans, want 2", len(got))
	}
	if got[0].Name() != api.RouteHistory {
		t.Errorf("span name = %q, want %q", got[0].Name(), api.RouteHistory)
	}
	if tid := got[0].SpanContext().TraceID().String(); tid != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace ID = %s, want the caller's", tid)
	}
	if pid := got[0].Parent().SpanID().String(); pid != "00f067aa0ba902b7" {
		t.Errorf("parent span = %s, want the caller's", pid)
	}
	if got[1].Name() != "PUT" {
		t.Errorf("unmatched span name = %q, want the method only", got[1].Name())
	}
}

// fakeAuth refuses requests without "Authorization: Bearer good" and grants
// only the identity section.
type fakeAuth struct {
	mu       sync.Mutex
	outcomes []api.Outcome
}

func (a *fakeAuth) Authorize(r *http.Request, route string) (api.Grant, error) {
	switch r.Header.Get("Authorization") {
	case "":
		return nil, fmt.Errorf("no bearer token: %w", api.ErrUnauthenticated)
	case "Bearer good":
		return identityOnly{a}, nil
	case "Bearer busy":
		return nil, fmt.Errorf("more than 10 requests a second: %w", api.ErrRateLimited)
	default:
		return nil, fmt.Errorf("identity may not read %s: %w", route, api.ErrForbidden)
	}
}

type identityOnly struct{ a *fakeAuth }

func (g identityOnly) Record(_ context.Context, rec hub.Record) hub.Record {
	return hub.Record{CitizenID: rec.CitizenID, Version: rec.Version, UpdatedAt: rec.UpdatedAt, Status: rec.Status, Identity: rec.Identity}
}

func (g identityOnly) History(_ context.Context, ch []hub.Change) []hub.Change { return ch[:1] }

func (g identityOnly) Done(_ context.Context, o api.Outcome) {
	g.a.mu.Lock()
	defer g.a.mu.Unlock()
	g.a.outcomes = append(g.a.outcomes, o)
}

func TestAuthorizer(t *testing.T) {
	f := newFixture(t)
	auth := &fakeAuth{}
	h := api.New(api.Config{Store: f.reader, Authorizer: auth}).Handler()
	person := "/v1/persons/" + string(f.known)

	tests := []struct {
		name       string
		token      string
		path       string
		wantStatus int
		wantSlug   string
		wantDetail string
		wantBody   string
		wantHeader map[string]string // besides Cache-Control: no-store, which every answer carries
	}{
		{name: "no token", path: person, wantStatus: 401, wantSlug: "unauthenticated",
			wantDetail: "authorizing request: no bearer token: unauthenticated", wantHeader: map[string]string{"WWW-Authenticate": "Bearer"}},
		{name: "wrong token", token: "Bearer bad", path: person, wantStatus: 403, wantSlug: "forbidden"},
		{name: "rate limited", token: "Bearer busy", path: person, wantStatus: 429, wantSlug: "rate-limited",
			wantHeader: map[string]string{"Retry-After": "1"}},
		{name: "filtered record", token: "Bearer good", path: person, wantStatus: 200,
			wantBody: `{"citizen_id":"` + string(f.known) + `","version":2,"updated_at":"2026-03-01T08:30:00Z","status":"active",` +
				`"identity":{"name":"张三","gender":"1","birth_date":"1990-01-01","ethnicity":"01"}}` + "\n"},
		// The Grant keeps only the first change: the marriage is not shown.
		{name: "filtered history", token: "Bearer good", path: person + "/history", wantStatus: 200,
			wantBody: `[{"version":1,"event_id":"ps-1","source":"public_security","type":"hukou.registered",` +
				`"time":"2026-03-01T00:00:00+08:00","applied_at":"2026-03-01T08:30:00Z","sections":["identity","hukou"]}]` + "\n"},
		{name: "unknown person", token: "Bearer good", path: "/v1/persons/" + string(f.unknown), wantStatus: 404, wantSlug: "not-found"},
		{name: "malformed", token: "Bearer good", path: "/v1/persons/123", wantStatus: 400, wantSlug: "invalid-request"},
		{name: "probes are not authorised", path: "/healthz", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.token != "" {
				hdr.Set("Authorization", tt.token)
			}
			rec := do(t, h, "GET", tt.path, hdr)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantSlug != "" {
				p := decodeProblem(t, rec)
				if p.Type != api.ProblemTypePrefix+tt.wantSlug {
					t.Errorf("type = %q, want slug %q", p.Type, tt.wantSlug)
				}
				if tt.wantDetail != "" && p.Detail != tt.wantDetail {
					t.Errorf("detail = %q, want %q", p.Detail, tt.wantDetail)
				}
			}
			// Every answer is private, refusals included: none may be
			// kept by a shared cache and shown to another caller.
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			for k, v := range tt.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("body =\n%s\nwant\n%s", rec.Body, tt.wantBody)
			}
		})
	}

	auth.mu.Lock()
	defer auth.mu.Unlock()
	want := []api.Outcome{
		{Route: api.RoutePerson, CitizenID: f.known, Status: 200},
		{Route: api.RouteHistory, CitizenID: f.known, Status: 200},
		{Route: api.RoutePerson, CitizenID: f.unknown, Status: 404},
		{Route: api.RoutePerson, CitizenID: "", Status: 400},
	}
	if len(auth.outcomes) != len(want) {
		t.Fatalf("outcomes = %+v, want %+v", auth.outcomes, want)
	}
	for i, o := range auth.outcomes {
		if (o.Err != nil) != (want[i].Status >= 400) {
			t.Errorf("outcome %d: Err = %v with status %d", i, o.Err, o.Status)
		}
		o.Err = nil
		if !reflect.DeepEqual(o, want[i]) {
			t.Errorf("outcome %d = %+v, want %+v", i, o, want[i])
		}
	}
}

// blockingReader blocks Person until release is closed.
type blockingReader struct {
	memReader
	entered chan struct{}
	release chan struct{}
}

func (b *blockingReader) Person(ctx context.Context, id citizenid.ID) (hub.Record, error) {
	close(b.entered)
	<-b.release
	return b.memReader.Person(ctx, id)
}

// TestRunGracefulShutdown checks that Run serves, and on cancellation lets a
// request in flight finish before returning nil.
func TestRunGracefulShutdown(t *testing.T) {
	f := newFixture(t)
	reader := &blockingReader{memReader: *f.reader, entered: make(chan struct{}), release: make(chan struct{})}
	srv := api.New(api.Config{Store: reader, ShutdownTimeout: 5 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/v1/persons/" + string(f.known))
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- result{resp.StatusCode, string(b), err}
	}()
	<-reader.entered
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(reader.release)
	r := <-inflight
	if r.err != nil || r.status != 200 || r.body != f.wantRecordJSON() {
		t.Errorf("in-flight request: %d %q %v", r.status, r.body, r.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still accepts after shutdown")
	}
}

func TestListenAndServeBadAddr(t *testing.T) {
	srv := api.New(api.Config{Store: &memReader{}})
	if err := srv.ListenAndServe(context.Background(), "256.0.0.1:bad"); err == nil {
		t.Error("ListenAndServe on a bad address succeeded")
	}
}

func TestServerRoutes(t *testing.T) {
	got := api.New(api.Config{Store: &memReader{}, Metrics: http.NotFoundHandler()}).Routes()
	want := []string{
		"GET /healthz", "GET /metrics", "GET /readyz",
		"GET /v1/persons/{citizen_id}", "GET /v1/persons/{citizen_id}/history",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Routes() = %q, want %q", got, want)
	}
}

// TestRunReadTimeout: a client that trickles a request body is cut off
// after Config.ReadTimeout instead of holding its connection.
func TestRunReadTimeout(t *testing.T) {
	f := newFixture(t)
	upload := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusRequestTimeout)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := api.New(api.Config{Store: f.reader, ReadTimeout: 200 * time.Millisecond, Mount: map[string]http.Handler{"POST /upload": upload}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: hub\r\nContent-Length: 1000\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn) // a response, then the close; or the close alone
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still held the connection after %v", time.Since(start))
	}
}
