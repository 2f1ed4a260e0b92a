package api_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// chromium returns the headless browser's path: the test runs in a real
// Chromium (Debian's chromium package). Under CI its absence is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("POPHUB_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	testenv.Unavailable(t, "Chromium is not installed (apt-get install chromium); .ci/run installs it")
	return ""
}

// TestStatsPageInBrowser loads the statistics page in headless Chromium,
// checks the table and chart for a province, drills down into a city by
// clicking its row, follows the breadcrumb back, and checks that a
// screenshot shows the chart's colours.
func TestStatsPageInBrowser(t *testing.T) {
	exe := chromium(t)
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	var in []hub.Input
	for i, addr := range []string{"230102001001", "230102001001", "230102019200", "230103001001", "230103020200", "230103020200"} {
		in = append(in, registration(t, 500+i, addr, at))
	}
	in = append(in, storetest.Event(t, schemas.HukouMigrated, storetest.ValidID(500), "ps-mig", at.AddDate(1, 0, 0),
		schemas.HukouMigratedData{FromAddressCode: "230102001001", ToAddressCode: "230103020200", Reason: "employment"}))
	storetest.ApplyAll(t, store, in, 3)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler())
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1200, 900),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return v
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=23&as_of=2020-06-30"),
		chromedp.WaitVisible(css(`#table tbody tr.child`))); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	province, totals := text(`#table tbody`), text(`#totals`)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking a screenshot: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(css(`#table tbody tr[data-region="2301"]`)),
		chromedp.WaitVisible(css(`#table tbody tr[data-region="230103"]`)),
		chromedp.WaitVisible(css(`#crumbs a`))); err != nil {
		t.Fatalf("drilling down: %v", err)
	}
	cityRows, crumb := text(`#table tbody`), text(`#crumbs`)
	if !strings.Contains(province, "2301") || !strings.Contains(province, "哈尔滨市") || !strings.Contains(totals, "6") {
		t.Errorf("province table %q, totals %q", province, totals)
	}
	// As of mid-2020, before the migration: Daoli 2 urban 1 rural,
	// Nangang 1 urban 2 rural.
	if !strings.Contains(cityRows, "道里区") || !strings.Contains(cityRows, "南岗区") {
		t.Errorf("city table %q lacks its districts", cityRows)
	}
	if !strings.Contains(crumb, "黑龙江省") || !strings.Contains(crumb, "2301") {
		t.Errorf("breadcrumbs %q", crumb)
	}
	if f := os.Getenv("POPHUB_SCREENSHOT"); f != "" {
		_ = os.WriteFile(f, shot, 0o644)
	}
	img, _, err := image.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("decoding screenshot: %v", err)
	}
	colours := map[[3]uint32]bool{}
	blue := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r>>8 < 60 && g>>8 > 90 && g>>8 < 140 && bl>>8 > 200 { // the urban bars, #1f6feb
				blue++
			}
		}
	}
	if len(colours) < 20 || blue < 100 {
		t.Errorf("screenshot looks blank: %d colours, %d pixels of urban bars", len(colours), blue)
	}

	// Under a policy: refused without credentials; the token and purpose
	// typed into the page are sent, and kept for the tab across a reload.
	guarded := httptest.NewServer(api.New(api.Config{Store: store, Counter: store, Regions: testRegions{},
		Authorizer: tokenAuth{token: "page-token", purpose: "official population statistics"}}).Handler())
	defer guarded.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(guarded.URL+"/stats?region=23&as_of=2020-06-30"),
		chromedp.WaitVisible(css(`#status.error`))); err != nil {
		t.Fatalf("loading the page under a policy: %v", err)
	}
	if msg := text(`#status`); !strings.Contains(msg, "token") {
		t.Errorf("refusal shown as %q", msg)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(css(`#token`), "page-token"),
		chromedp.SetValue(css(`#purpose`), "official population statistics"),
		chromedp.Click(css(`#query button`)),
		chromedp.WaitVisible(css(`#table tbody tr.child`))); err != nil {
		t.Fatalf("showing counts with a token: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(css(`#table tbody tr.child`))); err != nil {
		t.Fatalf("reloading with the token kept: %v", err)
	}
}

// tokenAuth grants requests with its bearer token and purpose only. It
// reads the purpose as the policy's authorizer does (access.RequestPurpose).
type tokenAuth struct{ token, purpose string }

func (a tokenAuth) Authorize(r *http.Request, _ string) (api.Grant, error) {
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		return nil, fmt.Errorf("a bearer token is required: %w", api.ErrUnauthenticated)
	}
	purpose, err := access.RequestPurpose(r)
	if err != nil {
		return nil, err
	}
	if purpose != a.purpose {
		return nil, fmt.Errorf("purpose %q is not allowed: %w", purpose, api.ErrForbiddenPurpose)
	}
	return cellGrant{}, nil
}

// TestStatsPageAssets: the page and its assets are served with their types;
// anything else under /stats/ is a not-found problem like every other
// error of the API.
func TestStatsPageAssets(t *testing.T) {
	store := newMemStore(t)
	h := api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler()
	tests := []struct {
		path        string
		status      int
		contentType string
	}{
		{"/stats", 200, "text/html; charset=utf-8"},
		{"/stats/stats.js", 200, "text/javascript; charset=utf-8"},
		{"/stats/stats.css", 200, "text/css; charset=utf-8"},
		{"/stats/nothing.js", 404, api.ProblemContentType},
		{"/stats/stats.html", 404, api.ProblemContentType},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != tc.status || rec.Header().Get("Content-Type") != tc.contentType {
				t.Fatalf("HTTP %d %s, want %d %s", rec.Code, rec.Header().Get("Content-Type"), tc.status, tc.contentType)
			}
			if tc.status == 404 && !strings.Contains(rec.Body.String(), api.ProblemTypePrefix+"not-found") {
				t.Errorf("body %s is not a not-found problem", rec.Body)
			}
		})
	}
}

// browser starts headless Chromium in the zh-CN locale a clerk's desktop
// has and returns a context for it, closed with the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("lang", "zh-CN"),
		chromedp.WindowSize(1200, 900), chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// districtsStore holds six people in two districts of Harbin: 道里区
// (230102) and 南岗区 (230103).
func districtsStore(t *testing.T) *memdb.Store {
	t.Helper()
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	var in []hub.Input
	for i, addr := range []string{"230102001001", "230102001001", "230102019200", "230103001001", "230103020200", "230103020200"} {
		in = append(in, registration(t, 500+i, addr, at))
	}
	storetest.ApplyAll(t, store, in, 3)
	return store
}

// pageServer serves the hub's API and page over store.
func pageServer(t *testing.T, store *memdb.Store, az api.Authorizer) *httptest.Server {
	t.Helper()
	c := api.Config{Store: store, Counter: store, Regions: testRegions{}}
	if az != nil {
		c.Authorizer = az
	}
	srv := httptest.NewServer(api.New(c).Handler())
	t.Cleanup(srv.Close)
	return srv
}

// TestStatsPageChinesePurpose: a policy whose purpose is written in
// Chinese (the example policy's si-harbin purpose has Chinese in it) must
// be usable from the page. Browsers refuse header values outside
// ISO-8859-1, so the page sends such a purpose as an RFC 8187 ext-value;
// a Latin purpose still goes as it is typed.
func TestStatsPageChinesePurpose(t *testing.T) {
	store := districtsStore(t)
	ctx := browser(t)
	for _, purpose := range []string{"官方人口统计", "official population statistics"} {
		srv := pageServer(t, store, tokenAuth{token: "page-token", purpose: purpose})
		err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats"),
			chromedp.SetValue(chromedp.CSS(`#region`), "23"),
			chromedp.SetValue(chromedp.CSS(`#token`), "page-token"),
			chromedp.SetValue(chromedp.CSS(`#purpose`), purpose),
			chromedp.Click(chromedp.CSS(`#query button`)),
			chromedp.Sleep(1500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
		tableHidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("table").hidden`))
		if err != nil {
			t.Fatal(err)
		}
		if tableHidden {
			t.Errorf("purpose %q: no counts shown, status %q", purpose, status)
		}
	}
}

// TestStatsPageKeyboardDrillDown: a clerk who works by keyboard (or a
// screen reader) must be able to reach a child region and open it: Tab
// lands on a link in the children's table and Enter drills down. The table
// has a caption and its header cells a scope, for screen readers.
func TestStatsPageKeyboardDrillDown(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=23&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#table tbody tr.child`)), chromedp.Sleep(500*time.Millisecond),
		chromedp.Focus(chromedp.CSS(`#query button`))); err != nil {
		t.Fatal(err)
	}
	a11y, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[
		document.querySelector("#table caption") ? document.querySelector("#table caption").textContent : "",
		String(document.querySelectorAll("#table thead th:not([scope=col])").length),
		String(document.querySelectorAll("#table tbody tr > :nth-child(2):not(th[scope=row])").length)]`))
	if err != nil {
		t.Fatal(err)
	}
	if a11y[0] == "" || a11y[1] != "0" || a11y[2] != "0" {
		t.Errorf("caption %q, %s column headers without scope=col, %s name cells not th scope=row", a11y[0], a11y[1], a11y[2])
	}
	var seen []string
	for range 10 {
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
		inTable, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.activeElement.closest("#table tbody")`))
		if err != nil {
			t.Fatal(err)
		}
		what, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.tagName + " " + document.activeElement.textContent.slice(0, 12)`))
		seen = append(seen, what)
		if inTable {
			if err := chromedp.Do(ctx, chromedp.KeyEvent("\r"),
				chromedp.WaitVisible(chromedp.CSS(`#table tbody tr[data-region="230103"]`))); err != nil {
				t.Fatalf("Enter on %q did not drill down: %v", what, err)
			}
			url, _ := chromedp.Run(ctx, chromedp.Location())
			if !strings.Contains(url, "region=2301") {
				t.Errorf("after drilling down the address bar is %s", url)
			}
			return
		}
	}
	t.Fatalf("Tab never reaches a child region of the table; focus went %q", seen)
}

// TestStatsPageBreadcrumbNamesHere: the breadcrumbs name every ancestor;
// the region shown is named too (道里区), not left as a bare code.
func TestStatsPageBreadcrumbNamesHere(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=230102&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#crumbs a`))); err != nil {
		t.Fatal(err)
	}
	here, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#crumbs [aria-current=page]`)))
	if err != nil {
		t.Fatal(err)
	}
	if here != "道里区 (230102)" {
		t.Errorf("breadcrumb of the region shown reads %q, want its name with its code, 道里区 (230102)", here)
	}
}

// TestStatsPageLateAnswer: the clerk asks for 哈尔滨市 and, while that
// answer is still on its way, for 黑龙江省. The page shows what was asked
// last; the slower, earlier answer does not overwrite it.
func TestStatsPageLateAnswer(t *testing.T) {
	store := districtsStore(t)
	ctx := browser(t)
	h := api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler()
	var slowed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/stats/urban-rural" && r.URL.Query().Get("region") == "2301" && r.URL.Query().Get("children") == "true" {
			slowed.Add(1)
			time.Sleep(1500 * time.Millisecond) // a city of many districts on a busy PostgreSQL
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats"),
		chromedp.SetValue(chromedp.CSS(`#region`), "2301"), chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.Sleep(200*time.Millisecond),
		chromedp.SetValue(chromedp.CSS(`#region`), "23"), chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.Sleep(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	title, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#title`)))
	input, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`#region`)))
	status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
	url, _ := chromedp.Run(ctx, chromedp.Location())
	if slowed.Load() == 0 {
		t.Fatal("the slow request was never made")
	}
	if !strings.Contains(title, "(23)") || strings.Contains(status, "Abort") {
		t.Errorf("asked for 23 last (address bar %s, region field %q), page shows %q, status %q", url, input, title, status)
	}
}

// TestStatsPageBackToFirstRegion: the clerk opens a bookmarked
// /stats?region=23, drills down into 哈尔滨市 and presses the browser's
// Back button. The address bar returns to region=23; the page does too.
func TestStatsPageBackToFirstRegion(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=23&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#table tbody tr[data-region="2301"]`)),
		chromedp.Click(chromedp.CSS(`#table tbody tr[data-region="2301"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#table tbody tr[data-region="230103"]`)),
		chromedp.NavigateBack(), chromedp.Sleep(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	url, _ := chromedp.Run(ctx, chromedp.Location())
	title, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#title`)))
	if !strings.Contains(url, "region=23&") || !strings.Contains(title, "(23)") {
		t.Errorf("after Back the address bar is %s and the page shows %q, want region 23 in both", url, title)
	}

	// Opened bare, a region asked for, then Back: the page asks again.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats"),
		chromedp.SetValue(chromedp.CSS(`#region`), "23"), chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.WaitVisible(chromedp.CSS(`#table tbody tr[data-region="2301"]`)),
		chromedp.NavigateBack(), chromedp.WaitNotVisible(chromedp.CSS(`#table`))); err != nil {
		t.Fatalf("Back to the bare page: %v", err)
	}
	if status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`))); !strings.Contains(status, "输入区划代码") {
		t.Errorf("after Back to the bare page the status reads %q, want the prompt for a division code", status)
	}
}

// TestStatsPageChartHiddenCells: for a caller with a minimum cell, a
// district whose urban and rural counts are hidden but whose total is
// shown (道里区: 15) is drawn as one bar of its total, not as an empty bar
// like a district where nobody lives.
func TestStatsPageChartHiddenCells(t *testing.T) {
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	var in []hub.Input
	n := 700
	add := func(addr string, k int) {
		for range k {
			in = append(in, registration(t, n, addr, at))
			n++
		}
	}
	add("230102001001", 12) // Daoli urban
	add("230102019200", 3)  // Daoli rural
	add("230103001001", 8)  // Nangang urban
	add("230103020200", 6)  // Nangang rural
	storetest.ApplyAll(t, store, in, 3)
	ctx := browser(t)
	srv := pageServer(t, store, cellGrant{5})
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=2301&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#chart`))); err != nil {
		t.Fatal(err)
	}
	// For each child: its total cell, and the height of its drawn bars.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("#table tbody tr")].map(tr => {
		const name = tr.cells[1].textContent;
		const h = [...document.querySelectorAll("#chart rect")].filter(r => r.querySelector("title") && r.querySelector("title").textContent.startsWith(name + " "))
			.reduce((s, r) => s + Number(r.getAttribute("height")), 0);
		return [name, tr.cells[2].textContent, tr.cells[3].textContent, tr.cells[4].textContent, String(h)];
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("rows (name, urban, rural, total, bar height): %q, want 道里区 and 南岗区", got)
	}
	for _, r := range got {
		if r[3] == "" || r[3][0] < '1' || r[3][0] > '9' || r[4] == "0" {
			t.Errorf("%s (urban %s, rural %s) has total %s but a bar of height %s", r[0], r[1], r[2], r[3], r[4])
		}
	}
}

// TestStatsPageRefusals: a refusal is shown with a short Chinese sentence
// ahead of the hub's detail, and the field to correct has the focus; an
// HTML error page from a proxy in front of the hub is a readable message,
// not a JSON parse error.
func TestStatsPageRefusals(t *testing.T) {
	store := districtsStore(t)
	ctx := browser(t)
	guarded := api.New(api.Config{Store: store, Counter: store, Regions: testRegions{},
		Authorizer: tokenAuth{token: "page-token", purpose: "official population statistics"}}).Handler()
	open := api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler()
	tests := []struct {
		name, token, purpose, region string
		handler                      http.Handler
		// wantHas is the hub's detail (or the status of a proxy's page).
		wantLead, wantHas, wantFocus string
	}{
		{"no token", "", "", "23", guarded, "需要有效的令牌", "a bearer token is required", "token"},
		{"purpose not allowed", "page-token", "curiosity", "23", guarded, "该令牌无权用于此用途", `purpose "curiosity" is not allowed`, "purpose"},
		{"unknown region", "", "", "2399", open, "区划代码不存在", "2399 is not in the region table", ""},
		{"rate limited", "", "", "23", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", api.ProblemContentType)
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"status":429,"detail":"too many requests for this identity; slow down: rate limited"}`))
		}), "请求过于频繁", "slow down", ""},
		{"HTML from a proxy", "", "", "23", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>"))
		}), "服务暂时不可用", "HTTP 502", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/v1/") {
					tc.handler.ServeHTTP(w, r)
					return
				}
				open.ServeHTTP(w, r)
			}))
			defer srv.Close()
			fill := fmt.Sprintf(`document.getElementById("region").value = %q; document.getElementById("token").value = %q; document.getElementById("purpose").value = %q; true`,
				tc.region, tc.token, tc.purpose)
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats"), chromedp.WaitReady(chromedp.CSS(`#query`))); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fill)); err != nil {
				t.Fatal(err)
			}
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#query button`)),
				chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
				t.Fatal(err)
			}
			status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
			focus, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
			if !strings.HasPrefix(status, tc.wantLead) || !strings.Contains(status, tc.wantHas) {
				t.Errorf("status %q, want it to lead with %q and say %q", status, tc.wantLead, tc.wantHas)
			}
			if tc.wantFocus != "" && focus != tc.wantFocus {
				t.Errorf("focus on %q, want #%s", focus, tc.wantFocus)
			}
		})
	}
}

// TestStatsPageEncodedDotsNotFound: an encoded dot segment is no asset
// of the statistics page: 404, not the page itself.
func TestStatsPageEncodedDotsNotFound(t *testing.T) {
	store := newMemStore(t)
	h := api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler()
	for _, p := range []string{"/stats/%2E%2E", "/stats/%2E"} {
		if rec := do(t, h, "GET", p, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
}
