package statsbureau

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

// builtinRegions is the division table the hub runs with by default.
type builtinRegions struct{}

func (builtinRegions) Name(code string) (string, bool) {
	d, ok := region.Lookup(code)
	return d.Name, ok
}

func (builtinRegions) Children(code string) []string {
	var out []string
	for _, d := range region.Children(code) {
		out = append(out, d.Code)
	}
	return out
}

// seededStore is a memdb store holding registrations in villages of
// several cities of Heilongjiang: many in one village, so that some cells
// are above the researcher's minimum cell and some below.
func seededStore(t *testing.T) *memdb.Store {
	t.Helper()
	store, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var villages []string
	for _, city := range region.Children("23")[:4] {
		d := city
		for len(d.Code) < 12 {
			kids := region.Children(d.Code)
			if len(kids) == 0 {
				t.Fatalf("no division below %s in the built-in table", d.Code)
			}
			d = kids[0]
		}
		villages = append(villages, d.Code)
	}
	var in []hub.Input
	at := time.Date(2020, 1, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))
	for i := range 30 {
		v := villages[0]
		if i >= 20 {
			v = villages[1+i%(len(villages)-1)]
		}
		in = append(in, storetest.Event(t, schemas.HukouRegistered, storetest.ValidID(i), fmt.Sprintf("ps-%d", i), at,
			schemas.HukouRegisteredData{Name: "王伟", Gender: "1", BirthDate: "1980-05-05", Ethnicity: "01", AddressCode: v, HouseholdID: "H1", Reason: "birth"}))
	}
	storetest.ApplyAll(t, store, in, 10)
	return store
}

// policyHub serves the hub's real API over store under the example access
// policy; unlimited lifts every identity's rate limit, so that a pull
// through it is the one a limited pull must match.
func policyHub(t *testing.T, store *memdb.Store, unlimited bool) string {
	t.Helper()
	p, err := access.Load("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if unlimited {
		for i := range p.Identities {
			p.Identities[i].RateLimit = &access.RateLimit{RPS: 1e6, Burst: 1e6}
		}
	}
	az, err := access.NewAuthorizer(access.AuthorizerConfig{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: builtinRegions{}, Authorizer: az}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// records keeps the messages of the log lines a client writes.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// TestPullUnderTheExamplePolicy: each identity of the example policy that
// may read statistics pulls Heilongjiang within its rate limit (the
// researcher 2/s with a burst of 5, the bureau 20/s with a burst of 40),
// and gets the rows it would get were it not limited.
func TestPullUnderTheExamplePolicy(t *testing.T) {
	store := seededStore(t)
	limited, unlimited := policyHub(t, store, false), policyHub(t, store, true)
	for _, tc := range []struct {
		name, purpose string
		depth         int
	}{
		{"researcher", "research project 2026-017", 6},
		{"stats-bureau", DefaultPurpose, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var logs records
			pull := func(url string) Report {
				t.Helper()
				// One level per request, as against a hub older than depth:
				// enough requests for the limit to bite.
				c, err := New(Config{HubURL: url, Token: access.DemoSecret("token:" + tc.name), Purpose: tc.purpose, Logger: slog.New(&logs), MaxDepth: 1})
				if err != nil {
					t.Fatal(err)
				}
				rep, err := c.Pull(ctx, "23", "2025-12-31", tc.depth)
				if err != nil {
					t.Fatalf("pull of 23 to depth %d: %v", tc.depth, err)
				}
				return rep
			}
			want := pull(unlimited)
			if n := len(logs.all()); n != 0 {
				t.Fatalf("an unlimited pull logged %d lines, want none", n)
			}
			got := pull(limited)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("limited pull: %d rows, unlimited: %d; they differ", len(got.Rows), len(want.Rows))
			}
			var hidden, shown int
			for _, r := range got.Rows {
				if r.Total.Hidden != "" {
					hidden++
				} else if r.Total.N > 0 {
					shown++
				}
			}
			t.Logf("%d rows, %d with people shown, %d hidden; log: %q", len(got.Rows), shown, hidden, logs.all())
			if shown == 0 {
				t.Error("no row shows anyone: the store's registrations were not counted")
			}
			if lines := logs.all(); len(lines) == 0 || len(lines) > 3 {
				t.Errorf("the limited pull logged %d lines, want one each time it slowed down (1 to 3 from 8 in flight)", len(lines))
			}
		})
	}
}

// answerAfter serves a hub that refuses the first refusals requests with
// status and the header Retry-After: retryAfter (none when empty), then
// answers every request with a region without children.
func answerAfter(t *testing.T, refusals int, status int, retryAfter string) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if int(requests.Add(1)) <= refusals {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"status":%d,"detail":"slow down"}`, status)
			return
		}
		fmt.Fprintf(w, `{"region":%q,"name":"x","as_of":"2025-12-31","urban":1,"rural":2,"total":3,"children":[]}`, r.URL.Query().Get("region"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

// TestPullRetries: a pull waits out a 429 (and a 503 that says when to
// come back) and tries again, within bounds, and gives up on anything
// else at once.
func TestPullRetries(t *testing.T) {
	soon := time.Now().Add(300 * time.Millisecond).UTC().Format(http.TimeFormat)
	tests := []struct {
		name         string
		refusals     int
		status       int
		retryAfter   string
		cfg          Config
		wantErr      string // "" for success
		wantRequests int64
	}{
		{"429 in seconds", 2, 429, "0", Config{}, "", 3},
		{"429 as an HTTP date", 1, 429, soon, Config{}, "", 2},
		{"429 without Retry-After", 1, 429, "", Config{}, "", 2},
		{"503 with Retry-After", 1, 503, "0", Config{}, "", 2},
		{"503 without Retry-After", 1, 503, "", Config{}, "503", 1},
		{"500", 1, 500, "0", Config{}, "500", 1},
		{"attempts run out", 100, 429, "0", Config{MaxAttempts: 3}, "429", 3},
		{"Retry-After beyond the wait allowed", 100, 429, "3600", Config{MaxWait: time.Second}, "429", 1},
		{"waits add up beyond the wait allowed", 100, 429, "1", Config{MaxWait: 1500 * time.Millisecond}, "429", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, requests := answerAfter(t, tc.refusals, tc.status, tc.retryAfter)
			cfg := tc.cfg
			cfg.HubURL = url
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rep, err := c.Pull(ctx, "23", "2025-12-31", 2)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("pull: %v", err)
			case tc.wantErr == "" && (len(rep.Rows) != 1 || rep.Rows[0].Total.N != 3):
				t.Errorf("pull: rows %+v, want the one region's counts", rep.Rows)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("pull: %v, want an error mentioning %q", err, tc.wantErr)
			}
			if n := requests.Load(); n != tc.wantRequests {
				t.Errorf("the hub saw %d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

// TestPullCancelledWhileWaiting: a pull told to come back in an hour
// stops waiting when its context ends.
func TestPullCancelledWhileWaiting(t *testing.T) {
	url, _ := answerAfter(t, 100, 429, "3600")
	c, err := New(Config{HubURL: url, MaxWait: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Pull(ctx, "23", "", 2)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("pull: %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("pull returned after %s, long after its context ended", d)
	}
}

// TestRetryAfter reads the header in both of its forms.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name, in string
		want     time.Duration
		ok       bool
	}{
		{"seconds", "3", 3 * time.Second, true},
		{"zero", "0", 0, true},
		{"HTTP date", "Sun, 01 Mar 2026 08:00:05 GMT", 5 * time.Second, true},
		{"date passed", "Sun, 01 Mar 2026 07:59:00 GMT", 0, true},
		{"absent", "", 0, false},
		{"negative", "-2", 0, false},
		{"garbage", "soon", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := retryAfter(tc.in, now)
			if got != tc.want || ok != tc.ok {
				t.Errorf("retryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}
