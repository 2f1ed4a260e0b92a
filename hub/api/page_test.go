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
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
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

// tokenAuth grants requests with its bearer token and purpose only.
type tokenAuth struct{ token, purpose string }

func (a tokenAuth) Authorize(r *http.Request, _ string) (api.Grant, error) {
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		return nil, fmt.Errorf("a bearer token is required: %w", api.ErrUnauthenticated)
	}
	if r.Header.Get("X-Purpose") != a.purpose {
		return nil, fmt.Errorf("purpose %q is not allowed: %w", r.Header.Get("X-Purpose"), api.ErrForbidden)
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
