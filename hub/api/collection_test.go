package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/hub/storetest"
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
}

func (l *outcomeLog) Authorize(*http.Request, string) (api.Grant, error) { return outcomeGrant{l}, nil }

// last is the latest outcome.
func (l *outcomeLog) last(t testing.TB) api.Outcome {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.got) == 0 {
		t.Fatal("no outcome was reported")
	}
	return l.got[len(l.got)-1]
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

// TestPermitsSuppressedAcrossAnswers: Harbin's 12 holders, Daoli's 10 and
// Nangang's 2, each asked for alone: Daoli's 10 shown would give Nangang's
// 2 away, so it is hidden too, in every answer.
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
	harbin, daoli, nangang := ask("2301"), ask("230102"), ask("230103")
	if !nangang.Suppressed || harbin.Suppressed == daoli.Suppressed {
		t.Errorf("holders: Harbin %+v, Daoli %+v, Nangang %+v: Nangang's can be worked out", harbin, daoli, nangang)
	}
	var province api.ResidencePermits
	getInto(t, srv.URL+"/v1/stats/residence-permits?region=23&children=true&as_of=2020-01-01", &province)
	if len(province.Children) != 1 || province.Children[0].Holders != harbin {
		t.Errorf("Harbin reads %+v among the province's cities, %+v alone", province.Children, harbin)
	}
}

// TestStatisticsCityInSixDigits: a city written in six digits (230100), as
// residence permits carry it in city_code, is asked for as the 4-digit
// city it is and answered under the code as asked, with the city's counts;
// a code that is not a city in six digits is still not found.
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
		{"permits, a county", "residence-permits?region=230102&as_of=2020-06-01", http.StatusOK,
			`{"region":"230102","name":"道里区","holders":0,"as_of":"2020-06-01"}`},
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
