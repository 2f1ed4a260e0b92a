package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// testRegions is a small division table: Heilongjiang, Harbin and two of
// its districts, each with a residents' and a village committee.
type testRegions struct{}

var testRegionNames = map[string]string{
	"23": "黑龙江省", "2301": "哈尔滨市", "230102": "道里区", "230103": "南岗区",
	"230102001": "兆麟街道", "230102001001": "兆麟社区居委会", "230102019200": "新农村委会",
	"230103001": "花园街道", "230103001001": "花园社区居委会", "230103020200": "红旗村委会",
}

func (testRegions) Name(code string) (string, bool) { n, ok := testRegionNames[code]; return n, ok }

func (testRegions) Children(code string) []string {
	var out []string
	for c := range testRegionNames {
		if strings.HasPrefix(c, code) && c != code && !slices.ContainsFunc(out, func(o string) bool { return strings.HasPrefix(c, o) }) {
			out = append(out, c)
		}
	}
	// Keep only direct children: drop codes under another listed code.
	slices.Sort(out)
	var direct []string
	for _, c := range out {
		if len(direct) == 0 || !strings.HasPrefix(c, direct[len(direct)-1]) {
			direct = append(direct, c)
		}
	}
	return direct
}

func newMemStore(t testing.TB) *memdb.Store {
	t.Helper()
	s, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var cst = time.FixedZone("CST", 8*3600)

func registration(t testing.TB, n int, addr string, at time.Time) hub.Input {
	return storetest.Event(t, schemas.HukouRegistered, storetest.ValidID(n), fmt.Sprintf("ps-r%d", n), at,
		schemas.HukouRegisteredData{Name: "李娜", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: addr, HouseholdID: "H1", Reason: "birth"})
}

func TestUrbanRuralCounts(t *testing.T) {
	store := newMemStore(t)
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 10, 0, 0, 0, cst) }
	in := []hub.Input{
		registration(t, 1, "230102001001", d(2020, 1, 1)), // urban, Daoli
		registration(t, 2, "230102019200", d(2020, 1, 1)), // rural, Daoli
		registration(t, 3, "230103001001", d(2021, 6, 1)), // urban, Nangang
		storetest.Event(t, schemas.HukouMigrated, storetest.ValidID(1), "ps-m1", d(2022, 3, 1),
			schemas.HukouMigratedData{FromAddressCode: "230102001001", ToAddressCode: "230103020200", Reason: "employment"}),
		storetest.Event(t, schemas.DeathCertified, storetest.ValidID(2), "hl-d2", d(2023, 5, 5),
			schemas.DeathCertifiedData{DateOfDeath: "2023-05-05", CertificateNo: "D2"}),
	}
	storetest.ApplyAll(t, store, in, 2)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler())
	defer srv.Close()

	tests := []struct {
		query    string
		want     api.RegionCount
		children map[string][2]int64 // region → urban, rural
	}{
		{"region=2301&as_of=2019-12-31", api.RegionCount{Region: "2301", Name: "哈尔滨市"}, nil},
		{"region=2301&as_of=2020-01-01&children=true", api.RegionCount{Region: "2301", Name: "哈尔滨市", Urban: stats.Shown(1), Rural: stats.Shown(1), Total: stats.Shown(2)},
			map[string][2]int64{"230102": {1, 1}, "230103": {0, 0}}},
		{"region=23&as_of=2021-12-31", api.RegionCount{Region: "23", Name: "黑龙江省", Urban: stats.Shown(2), Rural: stats.Shown(1), Total: stats.Shown(3)}, nil},
		// The migration moves person 1 from an urban address in Daoli to a
		// rural one in Nangang on its effective date.
		{"region=2301&as_of=2022-03-01&children=true", api.RegionCount{Region: "2301", Name: "哈尔滨市", Urban: stats.Shown(1), Rural: stats.Shown(2), Total: stats.Shown(3)},
			map[string][2]int64{"230102": {0, 1}, "230103": {1, 1}}},
		// Death ends the count from its date.
		{"region=230102&as_of=2023-05-05", api.RegionCount{Region: "230102", Name: "道里区"}, nil},
		{"region=230102019200&as_of=2023-05-04", api.RegionCount{Region: "230102019200", Name: "新农村委会", Rural: stats.Shown(1), Total: stats.Shown(1)}, nil},
	}
	for _, tc := range tests {
		var got api.UrbanRural
		if code := getInto(t, srv.URL+"/v1/stats/urban-rural?"+tc.query, &got); code != http.StatusOK {
			t.Fatalf("%s: status %d", tc.query, code)
		}
		if got.RegionCount != tc.want || got.AsOf != tc.query[strings.Index(tc.query, "as_of=")+6:][:10] {
			t.Errorf("%s: %+v, want %+v", tc.query, got, tc.want)
		}
		if len(got.Children) != len(tc.children) {
			t.Errorf("%s: %d children, want %d", tc.query, len(got.Children), len(tc.children))
		}
		for _, c := range got.Children {
			if w := tc.children[c.Region]; c.Urban != stats.Shown(w[0]) || c.Rural != stats.Shown(w[1]) || c.Total != stats.Shown(w[0]+w[1]) || c.Name == "" {
				t.Errorf("%s: child %+v, want urban %d rural %d", tc.query, c, w[0], w[1])
			}
		}
	}
	for _, bad := range []struct {
		query string
		code  int
	}{
		{"region=2301&as_of=2099-01-01", http.StatusBadRequest},
		{"region=2301&as_of=2026-02-30", http.StatusBadRequest},
		{"region=230", http.StatusBadRequest},
		{"", http.StatusBadRequest},
		{"region=2302", http.StatusNotFound},
		{"region=2301&children=maybe", http.StatusBadRequest},
	} {
		var p api.Problem
		if code := getInto(t, srv.URL+"/v1/stats/urban-rural?"+bad.query, &p); code != bad.code || p.Detail == "" {
			t.Errorf("%q: status %d (%+v), want %d with a detail", bad.query, code, p, bad.code)
		}
	}
}

func TestListPersonsPages(t *testing.T) {
	store := newMemStore(t)
	var in []hub.Input
	for n := range 25 {
		addr := "230102001001"
		if n%5 == 0 {
			addr = "230103001001"
		}
		in = append(in, registration(t, 100+n, addr, time.Date(2020, 1, 1, 10, 0, 0, 0, cst)))
	}
	storetest.ApplyAll(t, store, in, 10)
	seq := uint64(41)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store,
		StreamSequence: func(context.Context) (uint64, error) { return seq, nil }}).Handler())
	defer srv.Close()

	seen := map[citizenid.ID]bool{}
	url := srv.URL + "/v1/persons?region=230102&limit=7"
	for pages := 0; ; pages++ {
		var page api.PersonsPage
		if code := getInto(t, url, &page); code != http.StatusOK {
			t.Fatalf("page %d: status %d", pages, code)
		}
		if page.StreamSequence != 41 {
			t.Fatalf("page %d stamped %d, want the sequence when the walk began (41)", pages, page.StreamSequence)
		}
		seq++ // the stream moves on during the walk
		for _, r := range page.Persons {
			if seen[r.CitizenID] || !strings.HasPrefix(r.Hukou.AddressCode, "230102") {
				t.Fatalf("person returned twice or outside the region")
			}
			seen[r.CitizenID] = true
		}
		if page.Next == "" {
			break
		}
		url = srv.URL + "/v1/persons?region=230102&limit=7&after=" + page.Next
	}
	if len(seen) != 20 {
		t.Fatalf("walk returned %d persons, want 20", len(seen))
	}
	for _, bad := range []string{"limit=0", "limit=1001", "limit=x", "region=2", "after=!!", "after=MTI"} {
		var p api.Problem
		if code := getInto(t, srv.URL+"/v1/persons?"+bad, &p); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, code)
		}
	}
}

// getInto GETs url and decodes the JSON body into v, returning the status.
func getInto(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", url, err)
	}
	return resp.StatusCode
}

// cellGrant is a caller who sees statistics with small cells suppressed.
type cellGrant struct{ min int }

func (g cellGrant) Authorize(*http.Request, string) (api.Grant, error)   { return g, nil }
func (cellGrant) Record(_ context.Context, r hub.Record) hub.Record      { return r }
func (cellGrant) History(_ context.Context, c []hub.Change) []hub.Change { return c }
func (cellGrant) Done(context.Context, api.Outcome)                      {}
func (g cellGrant) MinCell() int                                         { return g.min }

// TestStatisticsSmallCells: a caller with a minimum cell sees counts below
// it as "<k", and "suppressed" where a cell is hidden so that no hidden one
// can be worked out; the statistics bureau (no minimum) sees every count.
func TestStatisticsSmallCells(t *testing.T) {
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	var in []hub.Input
	for i := range 12 {
		in = append(in, registration(t, 10+i, "230102001001", at)) // 12 urban in Daoli
	}
	in = append(in, registration(t, 30, "230102019200", at)) // 1 rural in Daoli
	in = append(in, registration(t, 31, "230103001001", at)) // 1 urban in Nangang
	storetest.ApplyAll(t, store, in, 3)
	tests := []struct {
		min  int
		want string
	}{
		{0, `{"region":"2301","name":"哈尔滨市","urban":13,"rural":1,"total":14,"as_of":"2020-01-01","children":[` +
			`{"region":"230102","name":"道里区","urban":12,"rural":1,"total":13},{"region":"230103","name":"南岗区","urban":1,"rural":0,"total":1}]}`},
		// Harbin is Heilongjiang's only city, so its row is decided in the
		// province's table: rural 1 is small, urban 13 goes with it. In
		// Harbin's table, Nangang's total 1 leaves a single hidden total
		// in the column, so Daoli's goes too; Nangang's rural 0 is shown.
		{5, `{"region":"2301","name":"哈尔滨市","urban":"suppressed","rural":"\u003c5","total":14,"as_of":"2020-01-01","children":[` +
			`{"region":"230102","name":"道里区","urban":"suppressed","rural":"\u003c5","total":"suppressed"},{"region":"230103","name":"南岗区","urban":"\u003c5","rural":0,"total":"\u003c5"}]}`},
	}
	for _, tc := range tests {
		srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}, Authorizer: cellGrant{tc.min}}).Handler())
		resp, err := http.Get(srv.URL + "/v1/stats/urban-rural?region=2301&as_of=2020-01-01&children=true")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if got := strings.TrimSpace(string(b)); got != tc.want {
			t.Errorf("min cell %d:\n got %s\nwant %s", tc.min, got, tc.want)
		}
	}
}

// outcomeLog is an Authorizer that lets everyone read everything and keeps
// the outcomes reported to it, for the audit's view of a request.
type outcomeLog struct {
	mu  sync.Mutex
	got []api.Outcome
	// seen is how many outcomes last has returned or passed.
	seen int
}

func (l *outcomeLog) Authorize(*http.Request, string) (api.Grant, error) { return outcomeGrant{l}, nil }

// last is the outcome of the latest request, reported since last was
// last called. A handler reports it once the response is written, which
// the client may have read by then: it waits a moment for it.
func (l *outcomeLog) last(t testing.TB) api.Outcome {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		l.mu.Lock()
		if n := len(l.got); n > l.seen {
			o := l.got[n-1]
			l.seen = n
			l.mu.Unlock()
			return o
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("no outcome was reported")
		}
	}
}

type outcomeGrant struct{ l *outcomeLog }

func (outcomeGrant) Record(_ context.Context, r hub.Record) hub.Record      { return r }
func (outcomeGrant) History(_ context.Context, c []hub.Change) []hub.Change { return c }
func (g outcomeGrant) Done(_ context.Context, o api.Outcome) {
	g.l.mu.Lock()
	defer g.l.mu.Unlock()
	g.l.got = append(g.l.got, o)
}

// TestListPersonsDisclosesEachPerson: every person on a page of GET
// /v1/persons is reported as a disclosure of its own, so that the audit
// trail finds reads through the list by the citizen.
func TestListPersonsDisclosesEachPerson(t *testing.T) {
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	in := []hub.Input{registration(t, 1, "230102001001", at), registration(t, 2, "230102001001", at), registration(t, 3, "230103001001", at)}
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	log := &outcomeLog{}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Authorizer: log}).Handler())
	defer srv.Close()
	tests := []struct {
		name   string
		query  string
		status int
	}{
		{"a region", "region=230102", http.StatusOK},
		{"a page", "limit=2", http.StatusOK},
		{"nobody there", "region=230104", http.StatusOK},
		{"refused query", "region=2301x", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var page api.PersonsPage
			if code := getInto(t, srv.URL+"/v1/persons?"+tc.query, &page); code != tc.status {
				t.Fatalf("status %d, want %d", code, tc.status)
			}
			o := log.last(t)
			var got, want []citizenid.ID
			for _, d := range o.Others {
				got = append(got, d.CitizenID)
			}
			for _, p := range page.Persons {
				want = append(want, p.CitizenID)
			}
			if o.Route != api.RoutePersons || o.Status != tc.status || !slices.Equal(got, want) {
				t.Errorf("outcome %+v: disclosed %v, want %v", o, got, want)
			}
		})
	}
}

// TestSuppressionAcrossAnswers: a hidden cell cannot be worked out by
// subtraction from the shown cells of a region and its children, whether
// they come in one answer or in several (the region alone, then each
// child alone), and a region's row reads the same in every answer.
func TestSuppressionAcrossAnswers(t *testing.T) {
	tests := []struct {
		name string
		// urban and rural residents of Daoli and Nangang
		daoli, nangang [2]int
	}{
		// Harbin urban 14 shown, Daoli 12 shown gave Nangang's 2 away.
		{"small urban", [2]int{12, 20}, [2]int{2, 30}},
		// Harbin rural 12 shown, Nangang 10 shown gave Daoli's 2 away.
		{"small rural", [2]int{20, 2}, [2]int{10, 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemStore(t)
			at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
			var in []hub.Input
			n := 100
			add := func(k int, addr string) {
				for range k {
					in = append(in, registration(t, n, addr, at))
					n++
				}
			}
			add(tc.daoli[0], "230102001001")
			add(tc.daoli[1], "230102019200")
			add(tc.nangang[0], "230103001001")
			add(tc.nangang[1], "230103020200")
			storetest.ApplyAll(t, store, in, 3)
			srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}, Authorizer: cellGrant{5}}).Handler())
			defer srv.Close()
			ask := func(query string) api.UrbanRural {
				t.Helper()
				var got api.UrbanRural
				if code := getInto(t, srv.URL+"/v1/stats/urban-rural?as_of=2020-01-01&"+query, &got); code != http.StatusOK {
					t.Fatalf("%s: status %d", query, code)
				}
				return got
			}
			family := ask("region=2301&children=true")
			harbin := ask("region=2301").RegionCount
			alone := []api.RegionCount{ask("region=230102").RegionCount, ask("region=230102&children=true").RegionCount, ask("region=230103").RegionCount}
			if family.RegionCount != harbin {
				t.Errorf("Harbin reads %+v with its children, %+v alone", family.RegionCount, harbin)
			}
			if family.Children[0] != alone[0] || alone[0] != alone[1] || family.Children[1] != alone[2] {
				t.Errorf("a district reads differently alone and as Harbin's child:\n as children %+v\n alone %+v", family.Children, alone)
			}
			// Every line of the table of Harbin and its districts, as
			// the answers show it, has zero or at least two hidden cells.
			cells := func(c api.RegionCount) [3]stats.Cell { return [3]stats.Cell{c.Urban, c.Rural, c.Total} }
			rows := [][3]stats.Cell{cells(harbin), cells(alone[0]), cells(alone[2])}
			hiddenIn := func(cs ...stats.Cell) int {
				h := 0
				for _, c := range cs {
					if c.Suppressed {
						h++
					}
				}
				return h
			}
			for i, r := range rows {
				if hiddenIn(r[:]...) == 1 {
					t.Errorf("row %d %v has one hidden cell", i, r)
				}
			}
			for j, col := range []string{"urban", "rural", "total"} {
				if hiddenIn(rows[0][j], rows[1][j], rows[2][j]) == 1 {
					t.Errorf("the %s column (Harbin %v, Daoli %v, Nangang %v) has one hidden cell", col, rows[0][j], rows[1][j], rows[2][j])
				}
			}
			// A cell hidden only to protect another is not called small.
			for _, r := range rows {
				for j, c := range r {
					if c.Suppressed && !c.Complementary && j < 2 && c.Min != 5 {
						t.Errorf("cell %v: a small cell's marker names k=%d", c, c.Min)
					}
				}
			}
		})
	}
}

// permitCounter answers fixed residence-permit counts.
type permitCounter map[string]int64

func (c permitCounter) Counts(_ context.Context, q hub.CountQuery) (map[string]hub.Tally, error) {
	out := make(map[string]hub.Tally, len(q.Regions))
	for _, r := range q.Regions {
		out[r] = hub.Tally{Permits: c[r]}
	}
	return out, nil
}

// TestPermitsSuppressedAcrossAnswers: Harbin's 12 holders read the same
// alone and among the province's cities. Its counties cannot be asked for
// at all (permits are counted per city), so Daoli's 10 holders cannot give
// Nangang's 2 away.
func TestPermitsSuppressedAcrossAnswers(t *testing.T) {
	counts := permitCounter{"23": 12, "2301": 12, "230102": 10, "230103": 2}
	srv := httptest.NewServer(api.New(api.Config{Store: newMemStore(t), Counter: counts, Regions: testRegions{}, Authorizer: cellGrant{5}}).Handler())
	defer srv.Close()
	ask := func(code string) stats.Cell {
		var got api.ResidencePermits
		if status := getInto(t, srv.URL+"/v1/stats/residence-permits?as_of=2020-01-01&region="+code, &got); status != http.StatusOK {
			t.Fatalf("%s: status %d", code, status)
		}
		return got.Holders
	}
	harbin := ask("2301")
	for _, county := range []string{"230102", "230103"} {
		var p api.Problem
		if status := getInto(t, srv.URL+"/v1/stats/residence-permits?as_of=2020-01-01&region="+county, &p); status != http.StatusBadRequest {
			t.Errorf("%s: status %d (%+v), want 400: permits are counted per city", county, status, p)
		}
	}
	var province api.ResidencePermits
	getInto(t, srv.URL+"/v1/stats/residence-permits?region=23&children=true&as_of=2020-01-01", &province)
	if len(province.Children) != 1 || province.Children[0].Holders != harbin {
		t.Errorf("Harbin reads %+v among the province's cities, %+v alone", province.Children, harbin)
	}
}

// hubeiRegions has Wuhan with one of its districts, and the province's
// directly administered county-level cities (仙桃 429004, 潜江 429005)
// under their placeholder city 4290, as the NBS table has them.
type hubeiRegions struct{}

var hubeiRegionNames = map[string]string{
	"42": "湖北省", "4201": "武汉市", "420102": "江岸区",
	"4290": "省直辖县级行政区划", "429004": "仙桃市", "429005": "潜江市",
}

func (hubeiRegions) Name(code string) (string, bool) { n, ok := hubeiRegionNames[code]; return n, ok }

func (hubeiRegions) Children(code string) []string {
	var out []string
	for c := range hubeiRegionNames {
		if len(c) == len(code)+2 && strings.HasPrefix(c, code) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// TestPermitsOfDirectlyAdministeredCity: a county-level city directly
// under its province (仙桃市 429004, whose "city" is the placeholder 4290)
// issues residence permits under its own 6-digit code, which the hub
// counts at 42, 4290 and 429004: its count is answered, read the same
// under a minimum cell as in its placeholder's family, while an ordinary
// county (江岸区 420102) is still refused and 4290 still sums the cities;
// asked with its children, 4290 lists those cities, while a city's
// children are not counted (permits are counted per city).
func TestPermitsOfDirectlyAdministeredCity(t *testing.T) {
	counts := permitCounter{"42": 17, "4201": 10, "420100": 10, "4290": 7, "429004": 3, "429005": 4}
	tests := []struct {
		region   string
		children bool
		minCell  int
		status   int
		name     string
		holders  stats.Cell
		kids     []api.PermitCount
	}{
		{"429004", false, 0, http.StatusOK, "仙桃市", stats.Shown(3), nil},
		{"429005", false, 0, http.StatusOK, "潜江市", stats.Shown(4), nil},
		{"4290", false, 0, http.StatusOK, "省直辖县级行政区划", stats.Shown(7), nil},
		{"4290", true, 0, http.StatusOK, "省直辖县级行政区划", stats.Shown(7), []api.PermitCount{
			{Region: "429004", Name: "仙桃市", Holders: stats.Shown(3)}, {Region: "429005", Name: "潜江市", Holders: stats.Shown(4)}}},
		{"4201", true, 0, http.StatusOK, "武汉市", stats.Shown(10), nil},
		{"429004", false, 5, http.StatusOK, "仙桃市", stats.Cell{Suppressed: true, Min: 5}, nil},
		{"420102", false, 0, http.StatusBadRequest, "", stats.Cell{}, nil},
		{"429099", false, 0, http.StatusNotFound, "", stats.Cell{}, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s, children %v, min cell %d", tc.region, tc.children, tc.minCell), func(t *testing.T) {
			srv := httptest.NewServer(api.New(api.Config{Store: newMemStore(t), Counter: counts, Regions: hubeiRegions{}, Authorizer: cellGrant{tc.minCell}}).Handler())
			defer srv.Close()
			url := srv.URL + "/v1/stats/residence-permits?as_of=2020-01-01&region=" + tc.region
			if tc.children {
				url += "&children=true"
			}
			if tc.status != http.StatusOK {
				var p api.Problem
				if status := getInto(t, url, &p); status != tc.status {
					t.Errorf("status %d (%s), want %d", status, p.Detail, tc.status)
				}
				return
			}
			var got api.ResidencePermits
			if status := getInto(t, url, &got); status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if got.Region != tc.region || got.Name != tc.name || got.Holders != tc.holders || !slices.Equal(got.Children, tc.kids) {
				t.Errorf("got %+v, want %s %s holding %v, children %+v", got, tc.region, tc.name, tc.holders, tc.kids)
			}
		})
	}
}

// TestStatisticsCityInSixDigits: a city written in six digits (230100), as
// residence permits carry it in city_code, is asked for as the 4-digit
// city it is and answered under the code as asked, with the city's counts;
// a province in six digits, or a city the table lacks, is still not found,
// and a county is no city at all for permits.
func TestStatisticsCityInSixDigits(t *testing.T) {
	store := newMemStore(t)
	d := func(m time.Month, day int) time.Time { return time.Date(2020, m, day, 10, 0, 0, 0, cst) }
	permit := func(n int) hub.Input {
		return storetest.Event(t, schemas.ResidencePermitIssued, storetest.ValidID(n), fmt.Sprintf("ps-p%d", n), d(2, 1),
			schemas.ResidencePermitIssuedData{CityCode: "230100", AddressCode: "230102001001", Basis: "employment"})
	}
	in := []hub.Input{
		registration(t, 1, "230102001001", d(1, 1)), // urban, Daoli
		registration(t, 2, "230103020200", d(1, 1)), // rural, Nangang
		permit(3), permit(4),
	}
	storetest.ApplyAll(t, store, in, 2)
	tests := []struct {
		name   string
		query  string
		status int
		want   string
	}{
		{"permits, city in six digits", "residence-permits?region=230100&as_of=2020-06-01", http.StatusOK,
			`{"region":"230100","name":"哈尔滨市","holders":2,"as_of":"2020-06-01"}`},
		{"permits, city in four digits", "residence-permits?region=2301&as_of=2020-06-01", http.StatusOK,
			`{"region":"2301","name":"哈尔滨市","holders":2,"as_of":"2020-06-01"}`},
		{"permits, before they were issued", "residence-permits?region=230100&as_of=2020-01-31", http.StatusOK,
			`{"region":"230100","name":"哈尔滨市","holders":0,"as_of":"2020-01-31"}`},
		{"permits, the province's cities", "residence-permits?region=23&children=true&as_of=2020-06-01", http.StatusOK,
			`{"region":"23","name":"黑龙江省","holders":2,"as_of":"2020-06-01","children":[{"region":"2301","name":"哈尔滨市","holders":2}]}`},
		// Permits carry a city, never a county: a county would count
		// only the permits whose city_code was written as that county.
		{"permits, a county", "residence-permits?region=230102&as_of=2020-06-01", http.StatusBadRequest, ""},
		{"permits, province in six digits", "residence-permits?region=230000", http.StatusNotFound, ""},
		{"permits, no such city", "residence-permits?region=239900", http.StatusNotFound, ""},
		{"urban-rural, city in six digits", "urban-rural?region=230100&as_of=2020-06-01&children=true", http.StatusOK,
			`{"region":"230100","name":"哈尔滨市","urban":1,"rural":1,"total":2,"as_of":"2020-06-01","children":[` +
				`{"region":"230102","name":"道里区","urban":1,"rural":0,"total":1},{"region":"230103","name":"南岗区","urban":0,"rural":1,"total":1}]}`},
		{"urban-rural, province in six digits", "urban-rural?region=230000", http.StatusNotFound, ""},
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler())
	defer srv.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/v1/stats/" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if got := strings.TrimSpace(string(b)); tc.want != "" && got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestStatisticsRegionRefusals: a region of the wrong length or with a
// character other than a digit is a bad request, and so is a county asked
// for residence permits, which are counted per city (the detail says to
// ask for the city); a well-formed code that names no region, in a
// province that does not exist or not, is not found, and the 404 says why:
// a code padded with zeros (230000, as NBS tables write a province) is
// told how its region is written.
func TestStatisticsRegionRefusals(t *testing.T) {
	store := newMemStore(t)
	log := &outcomeLog{}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}, Authorizer: log}).Handler())
	defer srv.Close()
	tests := []struct {
		query  string
		status int
		why    string // in the error reported to the Grant, and in the problem's detail
	}{
		{"urban-rural?region=99", http.StatusNotFound, "99 is not a province code"},
		{"urban-rural?region=9901", http.StatusNotFound, "99 is not a province code"},
		{"urban-rural?region=990102001001", http.StatusNotFound, "99 is not a province code"},
		{"urban-rural?region=2399", http.StatusNotFound, "region 2399 is not in the region table: no division has this code"},
		{"urban-rural?region=230000", http.StatusNotFound, "region 230000 is not in the region table: no division has this code; " +
			"a province is written 23, a city 2301 (codes are cut at their level, not padded with zeros)"},
		{"urban-rural?region=2300", http.StatusNotFound, "region 2300 is not in the region table: no division has this code; a province is written 23, a city 2301 ("},
		{"urban-rural?region=230100000000", http.StatusNotFound, "; a city is written 2301, a county 230102 ("},
		{"urban-rural?region=230102000", http.StatusNotFound, "; a county is written 230102, a township 230102001 ("},
		{"urban-rural?region=230102001000", http.StatusNotFound, "; a township is written 230102001, a village 230102001001 ("},
		{"urban-rural?region=239900000000", http.StatusNotFound, "region 239900000000 is not in the region table: no division has this code"},
		{"urban-rural?region=999", http.StatusBadRequest, "not a division code of [2 4 6 9 12] digits"},
		{"urban-rural?region=2x", http.StatusBadRequest, "not a division code"},
		{"urban-rural?region=%EF%BC%92%EF%BC%93", http.StatusBadRequest, "not a division code"}, // full-width ２３
		{"residence-permits?region=99", http.StatusNotFound, "99 is not a province code"},
		{"residence-permits?region=990100", http.StatusNotFound, "99 is not a province code"},
		{"residence-permits?region=239900", http.StatusNotFound, "239900 is not in the region table"},
		{"residence-permits?region=230000", http.StatusNotFound, "region 230000 is not in the region table: no division has this code; a province is written 23, a city 2301 ("},
		{"residence-permits?region=230102", http.StatusBadRequest, "ask for its city, 2301 (or 230100)"},
		{"residence-permits?region=230102&children=true", http.StatusBadRequest, "residence permits are counted per city"},
		{"residence-permits?region=990102", http.StatusBadRequest, "is a county"},
		{"residence-permits?region=230102001", http.StatusBadRequest, "not a division code of [2 4 6] digits"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			var p api.Problem
			if code := getInto(t, srv.URL+"/v1/stats/"+tc.query, &p); code != tc.status {
				t.Fatalf("status %d (%+v), want %d", code, p, tc.status)
			}
			if o := log.last(t); o.Err == nil || !strings.Contains(o.Err.Error(), tc.why) {
				t.Errorf("error %v, want one saying %q", o.Err, tc.why)
			}
			if !strings.Contains(p.Detail, tc.why) {
				t.Errorf("detail %q, want one saying %q", p.Detail, tc.why)
			}
			if want := api.ProblemTypePrefix + map[int]string{400: "invalid-request", 404: "not-found"}[tc.status]; p.Type != want {
				t.Errorf("type %q, want %q", p.Type, want)
			}
		})
	}
}

// TestCityInSixDigitsSuppressedAsTheCity: under a minimum cell, a city
// asked for in six digits shows the very cells it shows in four digits, so
// that asking both ways gives nothing away.
func TestCityInSixDigitsSuppressedAsTheCity(t *testing.T) {
	counts := tallyCounter{
		"23":     {Urban: 13, Rural: 1, Permits: 12},
		"2301":   {Urban: 13, Rural: 1, Permits: 12},
		"230102": {Urban: 12, Rural: 1, Permits: 10},
		"230103": {Urban: 1, Permits: 2},
	}
	srv := httptest.NewServer(api.New(api.Config{Store: newMemStore(t), Counter: counts, Regions: testRegions{}, Authorizer: cellGrant{5}}).Handler())
	defer srv.Close()
	get := func(t *testing.T, url string) string {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", url, resp.StatusCode, b)
		}
		return string(b)
	}
	// Harbin's rural 1 is small in Heilongjiang's table, which hides its
	// urban 13 too; its 12 holders are shown.
	for _, route := range []string{"residence-permits", "urban-rural"} {
		t.Run(route, func(t *testing.T) {
			base := srv.URL + "/v1/stats/" + route + "?as_of=2020-01-01&children=true&region="
			four, six := get(t, base+"2301"), get(t, base+"230100")
			if want := strings.Replace(four, `"region":"2301"`, `"region":"230100"`, 1); six != want {
				t.Errorf("230100 reads\n%s\nwant, as 2301 reads,\n%s", six, want)
			}
		})
	}
}

// tallyCounter answers fixed counts.
type tallyCounter map[string]hub.Tally

func (c tallyCounter) Counts(_ context.Context, q hub.CountQuery) (map[string]hub.Tally, error) {
	out := make(map[string]hub.Tally, len(q.Regions))
	for _, r := range q.Regions {
		out[r] = c[r]
	}
	return out, nil
}

// listerStores are the stores GET /v1/persons is served from: a walk's
// pages and tokens must behave alike on both.
func listerStores(t *testing.T) map[string]hub.Store {
	t.Helper()
	pgs, err := postgres.Open(context.Background(), postgres.Config{URL: testenv.Postgres(t), Schema: testenv.Schema(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pgs.Close() })
	return map[string]hub.Store{"memdb": newMemStore(t), "postgres": pgs}
}

// TestListPersonsPageTokens: the next= token of a walk without a region
// says nothing of anyone's hukou address (a caller may walk everyone
// without the right to read addresses), every walk still returns each
// person once, and a token the API did not make is a bad request on
// either store.
func TestListPersonsPageTokens(t *testing.T) {
	addrs := []string{"230102001001", "230102019200", "230103001001", "230103020200", "230102001001"}
	for name, store := range listerStores(t) {
		t.Run(name, func(t *testing.T) {
			at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
			var in []hub.Input
			for i, a := range addrs {
				in = append(in, registration(t, 500+i, a, at))
			}
			storetest.ApplyAll(t, store, in, 2)
			srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store}).Handler())
			defer srv.Close()

			walk := func(query string) map[citizenid.ID]bool {
				seen := map[citizenid.ID]bool{}
				url := srv.URL + "/v1/persons?" + query
				for pages := 0; pages <= len(addrs)+1; pages++ {
					var page api.PersonsPage
					if code := getInto(t, url, &page); code != http.StatusOK {
						t.Fatalf("%s: status %d", url, code)
					}
					for _, r := range page.Persons {
						if seen[r.CitizenID] {
							t.Fatalf("%s: a person returned twice", query)
						}
						seen[r.CitizenID] = true
					}
					if page.Next == "" {
						return seen
					}
					if query == "limit=1" {
						tok, err := base64.RawURLEncoding.DecodeString(page.Next)
						if err != nil {
							t.Fatalf("next %q is not base64url: %v", page.Next, err)
						}
						for _, a := range addrs {
							if strings.Contains(string(tok), a) {
								t.Fatalf("next %s of a walk without region decodes to %q, which holds the hukou address %s", page.Next, tok, a)
							}
						}
					}
					url = srv.URL + "/v1/persons?" + query + "&after=" + page.Next
				}
				t.Fatalf("%s: the walk does not end", query)
				return nil
			}
			if got := walk("limit=1"); len(got) != len(addrs) {
				t.Errorf("walk of everyone returned %d persons, want %d", len(got), len(addrs))
			}
			if got := walk("region=230102&limit=1"); len(got) != 3 {
				t.Errorf("walk of 230102 returned %d persons, want 3", len(got))
			}

			for _, cursor := range []string{"0:\x00|x", "0:\xff|x", "0:2301|\xff", "0:\x00", "0:x y", "0:" + strings.Repeat("1", 300)} {
				tok := base64.RawURLEncoding.EncodeToString([]byte(cursor))
				for _, query := range []string{"", "region=2301&"} {
					var p api.Problem
					if code := getInto(t, srv.URL+"/v1/persons?"+query+"after="+tok, &p); code != http.StatusBadRequest {
						t.Errorf("%safter=%s (%q): status %d, want 400", query, tok, cursor, code)
					}
				}
			}
		})
	}
}

// TestListPersonsPageTokenBoundToItsWalk: a page token continues only
// the walk it came from, alike on both stores: one made up (a cursor no
// store makes) or one of another walk (without region, or of another
// region) is a bad request, while the next of a page continues its walk
// with the walk's stream sequence, a city written in six digits being
// the same walk as the city. Tokens of the previous format (sequence and
// cursor, without the walk) still continue their walk.
func TestListPersonsPageTokenBoundToItsWalk(t *testing.T) {
	addrs := []string{"230102001001", "230102019200", "230103001001", "230103020200"}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, store := range listerStores(t) {
		t.Run(name, func(t *testing.T) {
			at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
			var in []hub.Input
			for i, a := range addrs {
				in = append(in, registration(t, 600+i, a, at))
			}
			storetest.ApplyAll(t, store, in, 2)
			srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store,
				StreamSequence: func(context.Context) (uint64, error) { return 42, nil }}).Handler())
			defer srv.Close()
			page := func(query string) (int, api.PersonsPage, api.Problem) {
				t.Helper()
				resp, err := http.Get(srv.URL + "/v1/persons?" + query)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				var p api.PersonsPage
				var pr api.Problem
				if resp.StatusCode == http.StatusOK {
					err = json.Unmarshal(body, &p)
				} else {
					err = json.Unmarshal(body, &pr)
				}
				if err != nil {
					t.Fatalf("%s: %d %s: %v", query, resp.StatusCode, body, err)
				}
				return resp.StatusCode, p, pr
			}
			first := map[string]api.PersonsPage{}
			for _, walk := range []string{"", "region=2301&", "region=230102&"} {
				code, p, _ := page(walk + "limit=1")
				if code != http.StatusOK || p.Next == "" {
					t.Fatalf("%slimit=1: status %d, next %q", walk, code, p.Next)
				}
				first[walk] = p
			}

			tests := []struct {
				name   string
				query  string
				status int
			}{
				{"its own walk of everyone", "limit=1&after=" + first[""].Next, http.StatusOK},
				{"its own region walk", "region=2301&limit=1&after=" + first["region=2301&"].Next, http.StatusOK},
				{"the city in six digits is the same walk", "region=230100&limit=1&after=" + first["region=2301&"].Next, http.StatusOK},
				{"a walk of everyone's token in a region walk", "region=2301&limit=1&after=" + first[""].Next, http.StatusBadRequest},
				{"a region walk's token in a walk of everyone", "limit=1&after=" + first["region=2301&"].Next, http.StatusBadRequest},
				{"a region walk's token in another region's walk", "region=2301&limit=1&after=" + first["region=230102&"].Next, http.StatusBadRequest},
				{"made up: a cursor of one digit", "after=" + enc("1:1"), http.StatusBadRequest},
				{"made up: a cursor of letters", "after=" + enc("999999:zzzz"), http.StatusBadRequest},
				{"made up: a cursor of one digit in a region walk", "region=2301&after=" + enc("1:1"), http.StatusBadRequest},
				{"made up, bound to its walk", "after=" + enc("7/:1"), http.StatusBadRequest},
				{"made up, bound to a region walk", "region=2301&after=" + enc("7/2301:zzzz"), http.StatusBadRequest},
				{"a region of letters", "region=2301&after=" + enc("7/23x:2301|1"), http.StatusBadRequest},
				{"an order no walk has", "region=2301&after=" + enc("7/2301/address:2301|1"), http.StatusBadRequest},
				{"key order without region", "after=" + enc("7//key:1"), http.StatusBadRequest},
				{"made up, bound to a key-order walk", "region=2301&after=" + enc("7/2301/key:zzzz"), http.StatusBadRequest},
			}
			for _, tc := range tests {
				code, p, pr := page(tc.query)
				if code != tc.status {
					t.Errorf("%s (%s): status %d, want %d: %s", tc.name, tc.query, code, tc.status, pr.Detail)
					continue
				}
				if code == http.StatusOK {
					if p.StreamSequence != 42 || len(p.Persons) != 1 {
						t.Errorf("%s: stream sequence %d and %d persons, want 42 and 1", tc.name, p.StreamSequence, len(p.Persons))
					}
					continue
				}
				if !strings.Contains(pr.Detail, "after") {
					t.Errorf("%s: detail %q does not name after", tc.name, pr.Detail)
				}
			}

			// A token of the previous format, the stream sequence and the
			// store's cursor, continues its walk.
			for _, region := range []string{"", "2301"} {
				recs, cursor, err := store.Persons(context.Background(), hub.PersonQuery{Region: region, Limit: 1})
				if err != nil || cursor == "" {
					t.Fatalf("Persons(%q): %v, cursor %q", region, err, cursor)
				}
				query := "limit=1&after=" + enc("17:"+cursor)
				if region != "" {
					query = "region=" + region + "&" + query
				}
				code, p, pr := page(query)
				if code != http.StatusOK || p.StreamSequence != 17 || len(p.Persons) != 1 || p.Persons[0].CitizenID == recs[0].CitizenID {
					t.Errorf("region %q, a token of the previous format: status %d (%s), stream sequence %d, %d persons",
						region, code, pr.Detail, p.StreamSequence, len(p.Persons))
				}
			}
		})
	}
}

// TestListPersonsRegionAsTheStatisticsReadIt: GET /v1/persons reads a
// city written in six digits as the statistics routes do (230100 walks
// the city), but walks any other well-formed code of a real province,
// whether or not the region table has an entry of it: the official table
// adds villages only, so a township or county may be known through its
// villages alone (230102019 here), and a code nobody lives under (2399)
// is an empty walk. A code of no province, or a province written in six
// digits, is a region nobody knows (404), and only a code of the wrong
// shape is a bad request.
func TestListPersonsRegionAsTheStatisticsReadIt(t *testing.T) {
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	in := []hub.Input{registration(t, 1, "230102001001", at), registration(t, 2, "230103020200", at), registration(t, 3, "230102019200", at)}
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Counter: store, Regions: testRegions{}}).Handler())
	defer srv.Close()
	tests := []struct {
		region  string
		status  int // of the walk
		stats   int // of the statistics of the same region
		persons int
	}{
		{"2301", http.StatusOK, http.StatusOK, 3},
		{"230100", http.StatusOK, http.StatusOK, 3}, // Harbin in six digits
		{"230102", http.StatusOK, http.StatusOK, 2},
		{"230103020200", http.StatusOK, http.StatusOK, 1},
		{"230102019", http.StatusOK, http.StatusNotFound, 1}, // a township the table knows only by its village
		{"230102019200", http.StatusOK, http.StatusOK, 1},
		{"2399", http.StatusOK, http.StatusNotFound, 0},         // a city nobody lives in
		{"99", http.StatusNotFound, http.StatusNotFound, 0},     // no such province
		{"990102", http.StatusNotFound, http.StatusNotFound, 0}, // nor here
		{"230000", http.StatusNotFound, http.StatusNotFound, 0}, // a province in six digits is no city
		{"2", http.StatusBadRequest, http.StatusBadRequest, 0},
		{"2301x", http.StatusBadRequest, http.StatusBadRequest, 0},
	}
	for _, tc := range tests {
		t.Run(tc.region, func(t *testing.T) {
			var stat api.UrbanRural
			statStatus := getInto(t, srv.URL+"/v1/stats/urban-rural?as_of=2020-01-01&region="+tc.region, &stat)
			resp, err := http.Get(srv.URL + "/v1/persons?region=" + tc.region)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || statStatus != tc.stats {
				t.Fatalf("persons status %d, statistics %d, want %d and %d: %s", resp.StatusCode, statStatus, tc.status, tc.stats, body)
			}
			if tc.status != http.StatusOK {
				if strings.Contains(string(body), "is not a 2-, 4-, 6-, 9- or 12-digit") && len(tc.region)%2 == 0 {
					t.Errorf("a well-formed code called malformed: %s", body)
				}
				return
			}
			var page api.PersonsPage
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Persons) != tc.persons {
				t.Errorf("walk returned %d persons, want %d", len(page.Persons), tc.persons)
			}
			if tc.stats == http.StatusOK && stat.Total != stats.Shown(int64(tc.persons)) {
				t.Errorf("statistics count %v, the walk %d persons", stat.Total, tc.persons)
			}
		})
	}
}

// TestWalkRegionNotFoundSaysWhy: a walk of a region nobody knows answers
// 404 with the reason, as the statistics do, while an unknown citizen ID
// still answers the generic detail, which confirms nothing.
func TestWalkRegionNotFoundSaysWhy(t *testing.T) {
	store := newMemStore(t)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Counter: store, Regions: testRegions{}}).Handler())
	defer srv.Close()
	tests := []struct {
		path, want string
	}{
		{"/v1/persons?region=230000", "region 230000 is not in the region table: a province is written in two digits, 23"},
		{"/v1/persons?region=990102", "region 990102 is not in the region table: 99 is not a province code"},
		{"/v1/persons/" + string(storetest.ValidID(1)), "nothing is known under this identifier"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var p api.Problem
			if code := getInto(t, srv.URL+tc.path, &p); code != http.StatusNotFound {
				t.Fatalf("status %d (%+v), want 404", code, p)
			}
			if p.Type != api.ProblemTypePrefix+"not-found" || p.Detail != tc.want {
				t.Errorf("problem %s: %q, want not-found: %q", p.Type, p.Detail, tc.want)
			}
		})
	}
}

// countyGrant reads every section but hukou, and is subscribed to
// notifications fixed to the counties listed.
type countyGrant struct{ counties []string }

func (countyGrant) Record(_ context.Context, r hub.Record) hub.Record      { r.Hukou = nil; return r }
func (countyGrant) History(_ context.Context, c []hub.Change) []hub.Change { return c }
func (countyGrant) Done(context.Context, api.Outcome)                      {}
func (countyGrant) CanRead(s schemas.Section) bool                         { return s != schemas.SecHukou }
func (g countyGrant) SubscribedCounties() []string                         { return g.counties }

type grantAuthorizer struct{ g api.Grant }

func (a grantAuthorizer) Authorize(*http.Request, string) (api.Grant, error) { return a.g, nil }

// TestRegionWalkWithinSubscribedCounty: a caller without the hukou grant
// whose notifications are fixed to one county already learns who is
// registered there from their subjects, and bootstraps that subscription
// with a walk of the county: it may walk the county, and is refused (403)
// elsewhere, a township or village of the county included (which would
// give away the hukou addresses it may not read), with a detail that
// names the hukou grant and the counties it may walk, never pointing it
// at a walk of the whole country.
func TestRegionWalkWithinSubscribedCounty(t *testing.T) {
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	in := []hub.Input{registration(t, 1, "230102001001", at), registration(t, 2, "230102019200", at), registration(t, 3, "230103001001", at)}
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		counties []string
		region   string
		status   int
		persons  int
		detail   []string // the refusal's detail says these
	}{
		{"its county", []string{"230102"}, "230102", http.StatusOK, 2, nil},
		// A township or a village would tell the caller who lives
		// there: the hukou address it may not read.
		{"a village in its county", []string{"230102"}, "230102019200", http.StatusForbidden, 0, []string{`"hukou" read grant`, "230102"}},
		{"a township in its county", []string{"230102"}, "230102019", http.StatusForbidden, 0, []string{`"hukou" read grant`, "230102"}},
		{"one of its counties", []string{"230103", "230102"}, "230103", http.StatusOK, 1, nil},
		{"another county", []string{"230102"}, "230103", http.StatusForbidden, 0, []string{`"hukou" read grant`, "230102"}},
		{"the city around its county", []string{"230102"}, "2301", http.StatusForbidden, 0, []string{`"hukou" read grant`, "230102"}},
		{"the city in six digits", []string{"230102"}, "230100", http.StatusForbidden, 0, []string{`"hukou" read grant`, "230102"}},
		{"no county", nil, "230102", http.StatusForbidden, 0, []string{`"hukou" read grant`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Authorizer: grantAuthorizer{countyGrant{tc.counties}}}).Handler())
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/v1/persons?region=" + tc.region)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != http.StatusOK {
				var pr api.Problem
				if err := json.Unmarshal(body, &pr); err != nil {
					t.Fatal(err)
				}
				for _, w := range tc.detail {
					if !strings.Contains(pr.Detail, w) {
						t.Errorf("detail %q does not say %q", pr.Detail, w)
					}
				}
				if strings.Contains(pr.Detail, "without region") {
					t.Errorf("detail %q points at a walk of the whole country", pr.Detail)
				}
				return
			}
			var page api.PersonsPage
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Persons) != tc.persons {
				t.Errorf("%d persons, want %d", len(page.Persons), tc.persons)
			}
		})
	}
}

// TestQueryParametersChecked: a parameter a route does not take, one
// given twice, or one given empty, is a bad request naming it, rather than
// an answer that silently ignores it (as-of for as_of would count today;
// region= would walk the whole country, and after= begin the walk again).
func TestQueryParametersChecked(t *testing.T) {
	store := newMemStore(t)
	id := storetest.ValidID(1)
	if _, err := store.Apply(context.Background(), []hub.Input{registration(t, 1, "230102001001", time.Date(2020, 1, 1, 10, 0, 0, 0, cst))}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Counter: store, Regions: testRegions{},
		Policies: loadPolicies(t), Mount: api.AdminHandlers(api.AdminConfig{Store: store})}).Handler())
	defer srv.Close()
	policy := loadPolicies(t).Policies()[0].ID
	person := "/v1/persons/" + string(id)
	tests := []struct {
		path string
		want []string // in the problem detail; none for a 200
	}{
		{"/v1/persons?region=2301&limit=5", nil},
		{"/v1/persons?regoin=2301", []string{`"regoin"`, "region", "limit", "after"}},
		{"/v1/persons?limit=1&limit=2", []string{`"limit"`, "2 times"}},
		{"/v1/persons?region=2301;limit=1", []string{"query"}},
		// An empty value says what to send instead: for after=, that the
		// walk is complete (leaving it out would begin the walk again);
		// for a required parameter, that it is required.
		{"/v1/persons?region=", []string{`"region"`, "empty", "leave region out to walk every person"}},
		{"/v1/persons?region=&limit=10", []string{`"region"`, "empty"}},
		{"/v1/persons?limit=", []string{`"limit"`, "empty", "1 to 1000"}},
		{"/v1/persons?region=2301&after=", []string{`"after"`, "empty", "the walk is complete"}},
		{"/v1/stats/urban-rural?region=", []string{`"region"`, "empty", "region is required"}},
		{"/v1/stats/urban-rural?region=2301&as_of=", []string{`"as_of"`, "empty", "as of today"}},
		{"/v1/stats/urban-rural?region=2301&children=", []string{`"children"`, "empty", "true or false"}},
		{"/v1/stats/urban-rural?region=2301&depth=", []string{`"depth"`, "empty"}},
		{"/v1/stats/urban-rural?region=2301&as_of=2020-12-31", nil},
		{"/v1/stats/urban-rural?region=2301&as-of=2020-12-31", []string{`"as-of"`, "as_of", "children"}},
		{"/v1/stats/urban-rural?region=2301&as_of=2020-12-31&as_of=2021-12-31", []string{`"as_of"`}},
		{"/v1/stats/residence-permits?region=2301&as_of=2020-12-31", nil},
		{"/v1/stats/residence-permits?region=2301&childern=true", []string{`"childern"`}},
		{"/v1/stats/residence-permits?region=23&region=2301", []string{`"region"`}},
		{"/v1/eligibility/" + string(id) + "?policy=" + policy, nil},
		{"/v1/eligibility/" + string(id) + "?policy=" + policy + "&asof=2020-12-31", []string{`"asof"`, "policy", "as_of"}},
		{"/v1/eligibility/" + string(id) + "?policy=" + policy + "&policy=" + policy, []string{`"policy"`}},
		{"/v1/eligibility/" + string(id) + "?policy=" + policy + "&as_of=", []string{`"as_of"`, "empty", "as of today"}},
		{"/v1/eligibility/" + string(id) + "?policy=", []string{`"policy"`, "empty", "policy is required"}},
		// Routes that take no parameter refuse every one, rather than
		// answer today's record to a caller asking for a past one, or the
		// whole history to one asking for a page of it.
		{person, nil},
		{person + "?as_of=2020-01-01", []string{`"as_of"`, "takes no query parameters", "as it stands now", "/history"}},
		{person + "?%ZZ", []string{"malformed"}},
		{person + "/history", nil},
		{person + "/history?limit=1", []string{`"limit"`, "takes no query parameters"}},
		{person + "/history?limit=1&limit=2", []string{`"limit"`}},
		{"/v1/policies", nil},
		{"/v1/policies?group=heilongjiang", []string{`"group"`, "takes no query parameters"}},
		{"/v1/admin/status", nil},
		{"/v1/admin/status?verbose=1", []string{`"verbose"`, "takes no query parameters"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.want == nil {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
				}
				return
			}
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(p.Detail, w) {
					t.Errorf("detail %q does not name %s", p.Detail, w)
				}
			}
		})
	}
}

// TestEmptyParameterAdviceFitsRoute: the advice in the refusal of an
// empty parameter is the route's own — residence permits are counted per
// city, so their region advice names 2-, 4- and 6-digit codes only — and
// never follows the refusal of a parameter the route does not take.
func TestEmptyParameterAdviceFitsRoute(t *testing.T) {
	store := newMemStore(t)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Counter: store, Regions: testRegions{}}).Handler())
	defer srv.Close()
	tests := []struct {
		path      string
		want, not []string
	}{
		{"/v1/stats/residence-permits?region=", []string{"region is required", "2-, 4- or 6-digit"}, []string{"9-", "12-"}},
		{"/v1/stats/urban-rural?region=", []string{"region is required", "2-, 4-, 6-, 9- or 12-digit"}, nil},
		{"/v1/stats/urban-rural?region=23&depth=", []string{`"depth"`, "from 1 to 3"}, nil},
		{"/v1/stats/residence-permits?region=2301&depth=1", []string{`unknown query parameter "depth"`}, []string{"give"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var p api.Problem
			if code := getInto(t, srv.URL+tc.path, &p); code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", code, p.Detail)
			}
			for _, w := range tc.want {
				if !strings.Contains(p.Detail, w) {
					t.Errorf("detail %q does not say %q", p.Detail, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(p.Detail, n) {
					t.Errorf("detail %q says %q, which does not fit this route", p.Detail, n)
				}
			}
		})
	}
}

// TestRegionWalkWithoutHukouTokensCarryNoAddress: a subscriber without the
// hukou grant whose subscriptions are fixed to one county (the example
// policy's si-harbin, narrowed as the policy validator allows) walks that
// county in person-key order, so its page tokens decode to no hukou
// address, on either store, and the walk still returns every person of
// the county once across pages. With the grant (the example policy
// itself) the walk is as before. A token of one walk is refused (400) in
// the other: they go in different orders.
func TestRegionWalkWithoutHukouTokensCarryNoAddress(t *testing.T) {
	raw, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	oneCounty := string(raw)
	for old, repl := range map[string]string{
		`read: ["identity", "hukou", "status", "social_insurance"]`:                                                   `read: ["identity", "status", "social_insurance"]`,
		"      - pop.migration.23.2301.*.*.*.*\n      - pop.migration.*.*.*.23.2301.*\n      - pop.death.23.2301.*\n": "      - pop.death.23.2301.230102\n",
		"      - pop.changed.23.2301.*.status\n":                                                                      "      - pop.changed.23.2301.230102.status\n",
	} {
		if !strings.Contains(oneCounty, old) {
			t.Fatalf("the example policy no longer has %q", old)
		}
		oneCounty = strings.Replace(oneCounty, old, repl, 1)
	}
	policies := map[string]*access.Policy{}
	for name, text := range map[string]string{"with hukou": string(raw), "one county": oneCounty} {
		path := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if policies[name], err = access.Load(path); err != nil {
			t.Fatalf("%s policy: %v", name, err)
		}
	}
	// Villages alternate, so that key order is not address order.
	addrs := []string{"230102019200", "230102001001", "230103001001"}
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	var in []hub.Input
	county := 0
	for n := range 11 {
		in = append(in, registration(t, 800+n, addrs[n%len(addrs)], at))
		if n%len(addrs) != 2 {
			county++
		}
	}
	for name, store := range listerStores(t) {
		t.Run(name, func(t *testing.T) {
			storetest.ApplyAll(t, store, in, 4)
			servers := map[string]string{}
			for pname, p := range policies {
				az, err := access.NewAuthorizer(access.AuthorizerConfig{Policy: p})
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Authorizer: az}).Handler())
				t.Cleanup(srv.Close)
				servers[pname] = srv.URL
			}
			get := func(policy, query string) (int, []byte) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, servers[policy]+"/v1/persons?"+query, nil)
				req.Header.Set("Authorization", "Bearer "+access.DemoSecret("token:si-harbin"))
				req.Header.Set(access.HeaderPurpose, "benefit termination on death")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, body
			}
			firstNext := map[string]string{}
			for _, policy := range []string{"one county", "with hukou"} {
				seen := map[citizenid.ID]bool{}
				query := "region=230102&limit=2"
				for pages := 0; ; pages++ {
					if pages > len(in) {
						t.Fatalf("%s: the walk does not end", policy)
					}
					code, body := get(policy, query)
					if code != http.StatusOK {
						t.Fatalf("%s: %s: status %d: %s", policy, query, code, body)
					}
					var page api.PersonsPage
					if err := json.Unmarshal(body, &page); err != nil {
						t.Fatal(err)
					}
					for _, r := range page.Persons {
						if seen[r.CitizenID] {
							t.Fatalf("%s: %v returned twice", policy, r.CitizenID)
						}
						seen[r.CitizenID] = true
						if (r.Hukou != nil) != (policy == "with hukou") {
							t.Errorf("%s: hukou section shown: %t", policy, r.Hukou != nil)
						}
					}
					if page.Next == "" {
						break
					}
					if firstNext[policy] == "" {
						firstNext[policy] = page.Next
					}
					if policy == "one county" {
						tok, err := base64.RawURLEncoding.DecodeString(page.Next)
						if err != nil {
							t.Fatalf("next %q is not base64url: %v", page.Next, err)
						}
						for _, a := range addrs {
							if strings.Contains(string(tok), a) {
								t.Errorf("next %s, shown without hukou, decodes to %q, which holds the hukou address %s", page.Next, tok, a)
							}
						}
					}
					query = "region=230102&limit=2&after=" + page.Next
				}
				if len(seen) != county {
					t.Errorf("%s: the walk returned %d persons, want the county's %d", policy, len(seen), county)
				}
			}
			for _, tc := range []struct{ policy, token string }{
				{"one county", firstNext["with hukou"]},
				{"with hukou", firstNext["one county"]},
			} {
				code, body := get(tc.policy, "region=230102&limit=2&after="+tc.token)
				var pr api.Problem
				if err := json.Unmarshal(body, &pr); err != nil {
					t.Fatal(err)
				}
				if code != http.StatusBadRequest || !strings.Contains(pr.Detail, "after") {
					t.Errorf("%s, with the other walk's token: status %d (%s), want 400 naming after", tc.policy, code, pr.Detail)
				}
			}
		})
	}
}
