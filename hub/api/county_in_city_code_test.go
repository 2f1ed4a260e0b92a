package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

// builtinRegions is the built-in division table, as the hub serves it.
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

// TestCountyCodedLikeItsCity: Dongguan (4419), Zhongshan (4420) and
// Danzhou (4604) have no districts; each has one county-level entry whose
// code ends in 00 (441900, 442000, 460400), the level their townships
// hang from. Such a code is that county, not the city written in six
// digits: its children are its townships, so a drill-down from the city
// reaches them instead of finding the same region again, and a caller
// fixed to the county may walk it. A city written in six digits that is
// no county (230100) is still the city.
func TestCountyCodedLikeItsCity(t *testing.T) {
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	in := []hub.Input{
		registration(t, 1, "441900003001", at), // 东城街道
		registration(t, 2, "441900003002", at),
		registration(t, 3, "441900004003", at), // 南城街道
		registration(t, 4, "460400100001", at), // 儋州 那大镇
		storetest.Event(t, schemas.ResidencePermitIssued, storetest.ValidID(5), "ps-p5", at,
			schemas.ResidencePermitIssuedData{CityCode: "441900", AddressCode: "441900003001", Basis: "employment"}),
	}
	storetest.ApplyAll(t, store, in, 2)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Counter: store, Regions: builtinRegions{}}).Handler())
	defer srv.Close()

	tests := []struct {
		name     string
		query    string
		total    int64
		children []string // the first children, in order
	}{
		{"the county's townships", "region=441900&children=true", 3, []string{"441900003", "441900004", "441900005"}},
		{"the city's one county", "region=4419&children=true", 3, []string{"441900"}},
		{"Danzhou's townships", "region=460400&children=true", 1, []string{"460400100", "460400101"}},
		{"Zhongshan's townships", "region=442000&children=true", 0, []string{"442000001"}},
		{"a city in six digits is still the city", "region=230100&children=true", 0, []string{"230102", "230103"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a api.UrbanRural
			if status := getInto(t, srv.URL+"/v1/stats/urban-rural?as_of=2020-06-01&"+tc.query, &a); status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			var got []string
			for _, c := range a.Children {
				got = append(got, c.Region)
			}
			if len(got) > len(tc.children) {
				got = got[:len(tc.children)]
			}
			if a.Total != stats.Shown(tc.total) || !slices.Equal(got, tc.children) {
				t.Errorf("total %v, children %v…, want %d and %v…", a.Total, got, tc.total, tc.children)
			}
			if slices.ContainsFunc(a.Children, func(c api.RegionCount) bool { return c.Region == a.Region }) {
				t.Errorf("%s is its own child", a.Region)
			}
		})
	}

	// Residence permits are counted per city; the county that is the
	// whole city counts them too.
	t.Run("permits of the county that is the city", func(t *testing.T) {
		var p api.ResidencePermits
		if status := getInto(t, srv.URL+"/v1/stats/residence-permits?as_of=2020-06-01&region=441900", &p); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		if p.Holders != stats.Shown(1) || p.Name != "东莞市" {
			t.Errorf("%s holders %v, want 1", p.Name, p.Holders)
		}
	})

	// A caller fixed to the county walks it, with the hub's table or
	// without one (the built-in table then).
	for _, cfg := range []struct {
		name    string
		regions api.Regions
		counter api.Counter
	}{{"with the table", builtinRegions{}, store}, {"built-in table", nil, nil}} {
		t.Run("walk of the county, "+cfg.name, func(t *testing.T) {
			srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Counter: cfg.counter, Regions: cfg.regions,
				Authorizer: grantAuthorizer{countyGrant{[]string{"441900"}}}}).Handler())
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/v1/persons?region=441900")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var page api.PersonsPage
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Persons) != 3 {
				t.Errorf("walk of 441900: %d persons, want 3", len(page.Persons))
			}
		})
	}
}

// TestStatsPageDrillsIntoCountyCodedLikeItsCity: on the statistics page,
// Dongguan's one county (441900) is a drill-down from the city to the
// townships, not to the same county again.
func TestStatsPageDrillsIntoCountyCodedLikeItsCity(t *testing.T) {
	exe := chromium(t)
	store := newMemStore(t)
	storetest.ApplyAll(t, store, []hub.Input{registration(t, 1, "441900003001", time.Date(2020, 1, 1, 10, 0, 0, 0, cst))}, 1)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: builtinRegions{}}).Handler())
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=4419&as_of=2020-06-30"),
		chromedp.WaitVisible(css(`#table tbody tr[data-region="441900"]`)),
		chromedp.Click(css(`#table tbody tr[data-region="441900"]`)),
		chromedp.WaitVisible(css(`#table tbody tr[data-region="441900003"]`))); err != nil {
		t.Fatalf("drilling down from 4419 into 441900 to its townships: %v", err)
	}
	if here, err := chromedp.Run(ctx, chromedp.Text(css(`#here`))); err != nil || here != "441900" {
		t.Errorf("page shows %q (%v), want 441900", here, err)
	}
}
