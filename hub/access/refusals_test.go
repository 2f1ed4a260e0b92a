package access

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pophub/pophub/hub/api"
)

// frozenClock is a clock that moves only when told to, so that no bucket
// refills while a test floods it.
type frozenClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *frozenClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *frozenClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newFrozenClock() *frozenClock {
	return &frozenClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
}

// authorizeFrom authorizes a GET of a person from addr with token, and
// returns the status it would answer.
func authorizeFrom(t *testing.T, az *Authorizer, addr, token string) int {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/v1/persons/"+personID, nil)
	r.RemoteAddr = addr
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set(HeaderPurpose, "tax audit")
	g, err := az.Authorize(r, api.RoutePerson)
	if err == nil {
		g.Done(r.Context(), api.Outcome{Route: api.RoutePerson, CitizenID: personID, Status: http.StatusOK})
	}
	return statusOf(err)
}

// summaries returns the summary entries of suppressed refusals in log,
// and the sum of their counts.
func summaries(t *testing.T, log *auditLog) ([]Access, int) {
	t.Helper()
	log.mu.Lock()
	defer log.mu.Unlock()
	var got []Access
	total := 0
	for _, a := range log.got {
		if !strings.Contains(a.Detail, "suppressed") {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(a.Detail, "%d refused requests", &n); err != nil {
			t.Fatalf("summary detail %q: %v", a.Detail, err)
		}
		got = append(got, a)
		total += n
	}
	return got, total
}

func countStatus(log *auditLog, status int) int {
	log.mu.Lock()
	defer log.mu.Unlock()
	n := 0
	for _, a := range log.got {
		if a.Status == status && a.Detail == "" {
			n++
		}
	}
	return n
}

// TestRefusalsBoundedPerAddress: a flood of bad tokens from one address
// is audited one by one up to the address's burst only; the rest are
// answered 429, counted by pophub.access.refusals.suppressed and written
// as one summary entry naming the address. A valid token from the same
// address is served, and a bad token from another address is refused
// (401) and audited as before.
func TestRefusalsBoundedPerAddress(t *testing.T) {
	const burst, flood = 20, 500
	log := &auditLog{}
	clock := newFrozenClock()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	az, err := NewAuthorizer(AuthorizerConfig{Policy: examplePolicy(t), Auditor: log, Now: clock.now,
		Refusals: RefusalLimit{Burst: burst, RPS: 1, Interval: time.Hour}, Meter: provider.Meter("test")})
	if err != nil {
		t.Fatal(err)
	}

	codes := map[int]int{}
	for range flood {
		codes[authorizeFrom(t, az, "192.0.2.7:40000", "nope")]++
	}
	if codes[401] != burst || codes[429] != flood-burst || len(codes) != 2 {
		t.Errorf("flood answered %v, want %d × 401 and %d × 429", codes, burst, flood-burst)
	}
	if got := countStatus(log, 401); got != burst {
		t.Errorf("%d refusals audited one by one, want %d", got, burst)
	}
	if got := authorizeFrom(t, az, "192.0.2.7:40001", DemoSecret("token:tax")); got != 200 {
		t.Errorf("a valid token from the flooding address answered %d, want 200", got)
	}
	if got := authorizeFrom(t, az, "198.51.100.9:1234", "nope"); got != 401 {
		t.Errorf("a bad token from another address answered %d, want 401", got)
	}
	if got := countStatus(log, 401); got != burst+1 {
		t.Errorf("%d refusals audited one by one, want %d (the other address's too)", got, burst+1)
	}

	az.FlushRefusals()
	got, total := summaries(t, log)
	if len(got) != 1 || total != flood-burst {
		t.Fatalf("summaries %+v (total %d), want one of %d", got, total, flood-burst)
	}
	s := got[0]
	if s.Identity != "" || s.Route != api.RoutePerson || s.Status != 429 || s.CitizenID != "" ||
		!strings.Contains(s.Detail, "from 192.0.2.7 ") || !strings.Contains(s.Detail, "in the last 1h0m0s") {
		t.Errorf("summary %+v", s)
	}
	if n := len(log.got); n != burst+2+1 {
		t.Errorf("%d audit entries, want %d: burst, the valid read, the other address, one summary", n, burst+3)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var counted int64 = -1
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "pophub.access.refusals.suppressed" {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					counted = dp.Value
				}
			}
		}
	}
	if counted != flood-burst {
		t.Errorf("pophub.access.refusals.suppressed = %d, want %d", counted, flood-burst)
	}

	// The bucket refills with time: one refusal a second is audited again.
	clock.advance(time.Second)
	if got := authorizeFrom(t, az, "192.0.2.7:40000", "nope"); got != 401 {
		t.Errorf("a second later a bad token answered %d, want 401", got)
	}
}

// TestRefusalsOverHTTP: past the address's burst a bad token is answered
// 429 as problem+json with Retry-After.
func TestRefusalsOverHTTP(t *testing.T) {
	log := &auditLog{}
	az, err := NewAuthorizer(AuthorizerConfig{Policy: examplePolicy(t), Auditor: log, Now: newFrozenClock().now,
		Refusals: RefusalLimit{Burst: 2, Interval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: fakeStore{fullRecord(t)}, Authorizer: az}).Handler())
	t.Cleanup(srv.Close)
	var statuses []int
	var last *http.Response
	var body string
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/persons/"+personID, nil)
		req.Header.Set("Authorization", "Bearer nope")
		req.Header.Set(HeaderPurpose, "x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		statuses, last, body = append(statuses, resp.StatusCode), resp, string(b)
	}
	if fmt.Sprint(statuses) != "[401 401 429]" {
		t.Fatalf("statuses %v, want [401 401 429]", statuses)
	}
	if last.Header.Get("Content-Type") != api.ProblemContentType || last.Header.Get("Retry-After") == "" ||
		!strings.Contains(body, "urn:pophub:problem:rate-limited") || !strings.Contains(body, "from this address") {
		t.Errorf("429 answered with %v: %s", last.Header, body)
	}
	if n := countStatus(log, 401); n != 2 || len(log.got) != 2 {
		t.Errorf("audited %+v, want the two 401s only", log.got)
	}
}

// TestRefusalSummaryOnTimer: without FlushRefusals, the count is written
// when the address's interval ends.
func TestRefusalSummaryOnTimer(t *testing.T) {
	log := &auditLog{}
	az, err := NewAuthorizer(AuthorizerConfig{Policy: examplePolicy(t), Auditor: log, Now: newFrozenClock().now,
		// An interval long enough for the five refusals to fall in one on
		// a busy machine: a real timer ends it, and a stall between two
		// requests would otherwise split the count over two summaries.
		Refusals: RefusalLimit{Burst: 1, Interval: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		authorizeFrom(t, az, "[2001:db8:1:2:3:4:5:6]:443", "nope")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, total := summaries(t, log)
		if total == 4 {
			if len(got) != 1 || !strings.Contains(got[0].Detail, "from 2001:db8:1:2::/64 ") {
				t.Errorf("summaries %+v", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no summary of 4 within 15 s: %+v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRefusalAddressesBounded: the table holds at most Addresses
// addresses; busy ones beyond it share one bucket, idle ones are
// forgotten to make room.
func TestRefusalAddressesBounded(t *testing.T) {
	log := &auditLog{}
	clock := newFrozenClock()
	az, err := NewAuthorizer(AuthorizerConfig{Policy: examplePolicy(t), Auditor: log, Now: clock.now,
		Refusals: RefusalLimit{Burst: 2, RPS: 1, Addresses: 4, Interval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		for range 3 {
			authorizeFrom(t, az, fmt.Sprintf("10.0.%d.%d:1", i/256, i%256), "nope")
		}
	}
	if n := len(az.refusals.buckets); n != 4 {
		t.Errorf("%d addresses tracked, want 4", n)
	}
	// 4 addresses × (2 audited + 1 suppressed); the other 96 share one
	// bucket of 2.
	if n := countStatus(log, 401); n != 4*2+2 {
		t.Errorf("%d refusals audited, want %d", n, 4*2+2)
	}
	az.FlushRefusals()
	got, total := summaries(t, log)
	if len(got) != 5 || total != 100*3-10 || !strings.Contains(got[len(got)-1].Detail, "from other addresses ") {
		t.Errorf("summaries %+v (total %d), want 5 of %d in all", got, total, 100*3-10)
	}

	clock.advance(time.Minute) // every bucket full again, nothing pending
	if got := authorizeFrom(t, az, "10.9.9.9:1", "nope"); got != 401 {
		t.Errorf("a new address after the others went idle answered %d, want 401", got)
	}
	if _, ok := az.refusals.buckets["10.9.9.9"]; !ok || len(az.refusals.buckets) > 4 {
		t.Errorf("idle addresses not forgotten: %d tracked", len(az.refusals.buckets))
	}
}

func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:40000":               "192.0.2.7",
		"[::ffff:192.0.2.7]:1":          "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443":    "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":             "fe80::/64",
		"@":                             "@",
		"not an address":                "not an address",
		"[2001:db8:1:3:3:4:5:6]:443":    "2001:db8:1:3::/64",
		"198.51.100.9":                  "198.51.100.9",
		"[2001:db8::1]":                 "[2001:db8::1]",
		"[2001:db8:aaaa:bbbb::1]:65535": "2001:db8:aaaa:bbbb::/64",
	} {
		if got := clientAddr(in); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
