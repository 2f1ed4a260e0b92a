package statsbureau

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// afterFirst is a transport that runs do once, after the first answer
// has come back: the hub ingests while a pull is under way.
type afterFirst struct {
	once sync.Once
	do   func()
}

func (a *afterFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	a.once.Do(a.do)
	return resp, err
}

// registered is a registration at addr on 2020-01-01 of the n-th test
// person.
func registered(t testing.TB, n int, addr string) hub.Input {
	return storetest.Event(t, schemas.HukouRegistered, storetest.ValidID(n), fmt.Sprintf("ps-c%d", n),
		time.Date(2020, 1, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600)),
		schemas.HukouRegisteredData{Name: "王伟", Gender: "1", BirthDate: "1980-05-05", Ethnicity: "01", AddressCode: addr, HouseholdID: "H1", Reason: "birth"})
}

// everyAnswer is a transport that runs do after every answer: a hub that
// ingests all the time.
type everyAnswer struct {
	mu sync.Mutex
	n  int
	do func(n int)
}

func (a *everyAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	a.do(a.n)
	return resp, err
}

// withoutDepth is a hub older than the depth parameter: it refuses it as
// such hubs refuse a parameter they do not know.
func withoutDepth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("depth") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":400,"detail":"unknown query parameter \"depth\": this route takes region, as_of, children: invalid"}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// TestPullConsistentWhileHubIngests: a registration the hub applies while
// a pull is under way (a late event correcting a past date, here) is in
// every row of the report or in none: a region's row is the sum of its
// children's wherever the children cover it, at every depth. A report of
// up to three levels is one answer; a deeper one, or one from a hub
// without depth, is pulled again when its answers disagree, and fails
// saying so when the hub changes under every attempt, rather than
// returning rows that do not add up.
func TestPullConsistentWhileHubIngests(t *testing.T) {
	for _, tc := range []struct {
		name     string
		depth    int
		maxDepth int  // Config.MaxDepth
		oldHub   bool // the hub refuses depth
		always   bool // the hub ingests after every answer, not only the first
		requests int  // the requests the pull makes; 0: not checked
		wantErr  string
	}{
		{name: "province to counties", depth: 6, requests: 1},
		{name: "province to townships", depth: 9, requests: 1},
		{name: "province to townships, ingesting all the time", depth: 9, always: true, requests: 1},
		{name: "province to villages", depth: 12},
		{name: "province to villages, a level per request", depth: 12, maxDepth: 1},
		{name: "province to villages from a hub without depth", depth: 12, oldHub: true},
		{name: "province to villages, ingesting all the time", depth: 12, always: true,
			wantErr: "the hub's counts changed between its answers; pulled 5 times, and the hub changed every time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := memdb.Open(context.Background(), memdb.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			storetest.ApplyAll(t, store, []hub.Input{registered(t, 1, "230102001001"), registered(t, 2, "230602013001")}, 10)
			var h http.Handler = api.New(api.Config{Store: store, Counter: store, Regions: table}).Handler()
			if tc.oldHub {
				h = withoutDepth(h)
			}
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			ingest := func(n int) {
				if _, err := store.Apply(context.Background(), []hub.Input{registered(t, 2+n, "230102019200")}); err != nil {
					t.Error(err)
				}
			}
			var transport http.RoundTripper = &afterFirst{do: func() { ingest(1) }}
			if tc.always {
				transport = &everyAnswer{do: ingest}
			}
			var requests atomic.Int64
			counted := roundTripper(func(r *http.Request) (*http.Response, error) {
				requests.Add(1)
				return transport.RoundTrip(r)
			})
			c, err := New(Config{HubURL: srv.URL, MaxDepth: tc.maxDepth, HTTP: &http.Client{Transport: counted, Timeout: 10 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := c.Pull(context.Background(), "23", "2020-06-30", tc.depth)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Pull: %v, %d rows; want an error saying %q", err, len(rep.Rows), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			assertAddsUp(t, rep)
			if tc.requests != 0 && requests.Load() != int64(tc.requests) {
				t.Errorf("%d requests, want %d", requests.Load(), tc.requests)
			}
			if l := rep.Rows[len(rep.Rows)-1]; len(l.Code) != tc.depth {
				t.Errorf("the last row is %s, want one of %d digits", l.Code, tc.depth)
			}
		})
	}
}

// roundTripper is a function that is an http.RoundTripper.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// assertAddsUp checks that every row of the test table's regions (whose
// children cover them) is the sum of its children's rows.
func assertAddsUp(t *testing.T, rep Report) {
	t.Helper()
	by := map[string]Row{}
	for _, r := range rep.Rows {
		by[r.Code] = r
	}
	for _, r := range rep.Rows {
		kids := table.Children(r.Code)
		var sum [3]int64
		found := 0
		for _, k := range kids {
			if kr, ok := by[k]; ok {
				sum[0], sum[1], sum[2] = sum[0]+kr.Urban.N, sum[1]+kr.Rural.N, sum[2]+kr.Total.N
				found++
			}
		}
		if found == 0 {
			continue
		}
		if got := [3]int64{r.Urban.N, r.Rural.N, r.Total.N}; got != sum {
			t.Errorf("%s: urban, rural, total %v, its children's sum %v", r.Code, got, sum)
		}
	}
}
