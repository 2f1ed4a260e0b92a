package statsbureau

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
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
	"github.com/pophub/pophub/schemas/region"
)

// builtinTable is the built-in division table, as the hub serves it.
type builtinTable struct{}

func (builtinTable) Name(code string) (string, bool) { d, ok := region.Lookup(code); return d.Name, ok }

func (builtinTable) Children(code string) []string {
	var out []string
	for _, d := range region.Children(code) {
		out = append(out, d.Code)
	}
	return out
}

// startBuiltinHub runs the hub's real API with the built-in division
// table over a memdb store holding registrations at addrs (2020-01-01).
// It counts the requests for each region.
func startBuiltinHub(t *testing.T, addrs ...string) (url string, asked func(region string) int64) {
	t.Helper()
	store, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var in []hub.Input
	for i, a := range addrs {
		in = append(in, storetest.Event(t, schemas.HukouRegistered, storetest.ValidID(i), fmt.Sprintf("ps-%d", i),
			time.Date(2020, 1, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600)),
			schemas.HukouRegisteredData{Name: "王伟", Gender: "1", BirthDate: "1980-05-05", Ethnicity: "01", AddressCode: a, HouseholdID: "H1", Reason: "birth"}))
	}
	storetest.ApplyAll(t, store, in, 10)
	h := api.New(api.Config{Store: store, Counter: store, Regions: builtinTable{}}).Handler()
	var mu sync.Mutex
	counts := map[string]int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		counts[r.URL.Query().Get("region")]++
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func(region string) int64 {
		mu.Lock()
		defer mu.Unlock()
		return counts[region]
	}
}

// TestPullCountyCodedLikeItsCity: Dongguan (4419), Zhongshan (4420) and
// Danzhou (4604) have no districts; each has one county whose code ends
// in 00 (441900), which the hub counts as that county. A pull of their
// province ends, lists that county at the county level (not as the city
// again), and reaches its townships; so does a pull of the county itself.
func TestPullCountyCodedLikeItsCity(t *testing.T) {
	url, asked := startBuiltinHub(t, "441900003001", "441900003002", "441900004003", "440303001001")
	c, err := New(Config{HubURL: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The province at county depth: every city and county of the table.
	rep, err := c.Pull(ctx, "44", "2020-06-30", 6)
	if err != nil {
		t.Fatalf("Pull(44, county): %v (asked for 441900 %d times)", err, asked("441900"))
	}
	want := 1
	for _, city := range region.Children("44") {
		want += 1 + len(region.Children(city.Code))
	}
	if len(rep.Rows) != want {
		t.Errorf("Pull(44, county): %d rows, want %d (the province, its cities and counties)", len(rep.Rows), want)
	}
	texts := rowTexts(rep.Rows)
	for _, w := range []string{
		"4419 东莞市 city 3 0 3 1.0000", "441900 东莞市 county 3 0 3 1.0000",
		"4420 中山市 city 0 0 0 -", "442000 中山市 county 0 0 0 -",
		"460400", // not in Guangdong
	} {
		if has := slices.Contains(texts, w); has == (w == "460400") {
			t.Errorf("Pull(44, county): row %q present %v", w, has)
		}
	}
	if n := asked("441900"); n != 0 {
		t.Errorf("Pull(44, county) asked for 441900 %d times; a county at the depth asked is not expanded", n)
	}

	for _, tc := range []struct {
		region string
		depth  int
		want   []string // the first rows
	}{
		{"4419", 9, []string{
			"4419 东莞市 city 3 0 3 1.0000",
			"441900 东莞市 county 3 0 3 1.0000",
			"441900003 东城街道 township 2 0 2 1.0000",
			"441900004 南城街道 township 1 0 1 1.0000",
			"441900005 万江街道 township 0 0 0 -",
		}},
		{"441900", 9, []string{
			"441900 东莞市 county 3 0 3 1.0000",
			"441900003 东城街道 township 2 0 2 1.0000",
		}},
		{"441900", 6, []string{"441900 东莞市 county 3 0 3 1.0000"}},
		{"460400", 9, []string{"460400 儋州市 county 0 0 0 -", "460400100 那大镇 township 0 0 0 -"}},
	} {
		rep, err := c.Pull(ctx, tc.region, "2020-06-30", tc.depth)
		if err != nil {
			t.Errorf("Pull(%s, depth %d): %v", tc.region, tc.depth, err)
			continue
		}
		got := rowTexts(rep.Rows)
		if len(got) > len(tc.want) {
			got = got[:len(tc.want)]
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Pull(%s, depth %d):\n%s\nwant first\n%s", tc.region, tc.depth, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
		if l := rep.Rows[len(rep.Rows)-1]; len(l.Code) != tc.depth || l.Level != levelNames[tc.depth] {
			t.Errorf("Pull(%s, depth %d): last row %s at level %s", tc.region, tc.depth, l.Code, l.Level)
		}
	}
	// Depth below the county's own level is refused, as for any county.
	if _, err := c.Pull(ctx, "441900", "2020-06-30", 4); err == nil {
		t.Errorf("Pull(441900, depth city): no error")
	}
}

// TestPullRegionItsOwnChild: a hub that answers a region among its own
// children (as hubs did for 441900 before they read it as the county)
// does not make a pull ask for it for ever, nor list it twice.
func TestPullRegionItsOwnChild(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		code := r.URL.Query().Get("region")
		kids := map[string][]string{"44": {"4419"}, "4419": {"441900"}, "441900": {"441900"}}[code]
		children := make([]count, 0, len(kids))
		for _, k := range kids {
			children = append(children, count{Region: k, Name: "东莞市", Urban: Count{N: 1}, Rural: Count{}, Total: Count{N: 1}})
		}
		_ = json.NewEncoder(w).Encode(answer{Region: code, Name: "x", AsOf: "2020-06-30", Urban: Count{N: 1}, Total: Count{N: 1}, Children: children})
	}))
	defer srv.Close()
	c, err := New(Config{HubURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := c.Pull(ctx, "44", "2020-06-30", 12)
	if err != nil {
		t.Fatalf("Pull: %v after %d requests", err, requests.Load())
	}
	var codes []string
	for _, r := range rep.Rows {
		codes = append(codes, r.Code+" "+r.Level)
	}
	if want := []string{"44 province", "4419 city", "441900 county"}; !slices.Equal(codes, want) || requests.Load() != 3 {
		t.Errorf("rows %v after %d requests, want %v after 3", codes, requests.Load(), want)
	}
}
