package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/pophub/pophub/hub/api"
)

// TestStatsPageRefusalHidesChartAndLegend: after a refusal the page hides
// what the previous answer showed (hideAnswer sets hidden on the chart
// and the legend, as on the table). A clerk who asked for 2301, then
// typed 2399 (refused, 404) must not see 哈尔滨市's chart and legend
// under the refusal, as if they were 2399's: the table is gone, and the
// chart is the only thing left to read.
func TestStatsPageRefusalHidesChartAndLegend(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=2301&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#chart rect.rural`)),
		chromedp.SetValue(chromedp.CSS(`#region`), "2399"), chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
		t.Fatal(err)
	}
	// Each element hidden by the page (the attribute: an SVG element has
	// no hidden property), and whether it is laid out (drawn) all the same.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`["table", "chart", "legend", "summary", "markers"].map(id => {
		const e = document.getElementById(id);
		return id + " hidden=" + e.hasAttribute("hidden") + " drawn=" + (e.getClientRects().length > 0);
	})`))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range got {
		if strings.Contains(g, "hidden=true drawn=true") {
			t.Errorf("after 2399 was refused: %s: the previous answer's part is still on the page", g)
		}
	}
}

// TestStatsPageTimeoutThenRetry: the hub does not answer within the page's
// 30 s (scaled here to 300 ms by a page whose timers run 100 times
// faster): the page says so, the late answer is dropped, and asking
// again shows the answer.
func TestStatsPageTimeoutThenRetry(t *testing.T) {
	store := districtsStore(t)
	ctx := browser(t)
	h := api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler()
	var slow atomic.Bool
	slow.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") && slow.Load() {
			time.Sleep(time.Second)
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `{ const st = window.setTimeout; window.setTimeout = (f, ms, ...a) => st(f, (ms || 0) / 100, ...a); }`}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=23&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#status.error`)), chromedp.Sleep(1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	got, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("status").textContent, String(document.getElementById("table").hidden), String(document.getElementById("main").getAttribute("aria-busy"))]`))
	if !strings.Contains(got[0], "30 s") || got[1] != "true" || got[2] != "null" {
		t.Errorf("after the timeout and the late answer: status %q, table hidden %s, aria-busy %s", got[0], got[1], got[2])
	}
	slow.Store(false)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.WaitVisible(chromedp.CSS(`#table tbody tr.child`))); err != nil {
		t.Fatalf("asking again: %v", err)
	}
}

// TestStatsPageNoCSPViolation (exploratory): the page under its own CSP
// reports no violation while it draws a chart with every kind of bar.
func TestStatsPageNoCSPViolation(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), cellGrant{5})
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__v = []; document.addEventListener("securitypolicyviolation", e => window.__v.push(e.violatedDirective + " " + e.blockedURI + " " + e.sample));`}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=2301&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#table`)), chromedp.Sleep(500*time.Millisecond),
		chromedp.SetValue(chromedp.CSS(`#region`), "2399"), chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
		t.Fatal(err)
	}
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__v`))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) > 0 {
		t.Errorf("CSP violations: %q", v)
	}
}

// TestStatsPagePurposeRefusalMentioningUse: a purpose refusal's detail
// lists the identity's allowed purposes, the policy's free text, which
// may say anything, even "may not use" as a route refusal does. The page
// tells the two 403s apart by their problem types, and focuses the
// purpose.
func TestStatsPagePurposeRefusalMentioningUse(t *testing.T) {
	pol := strings.Replace(statsPolicy, `purposes: ["official population statistics"]`,
		`purposes: ["official statistics (staff may not use names)"]`, 1)
	az := statsAuthorizer(t, pol)
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), az)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats"), chromedp.WaitReady(chromedp.CSS(`#query`)),
		chromedp.SetValue(chromedp.CSS(`#region`), "23"),
		chromedp.SetValue(chromedp.CSS(`#token`), "bureau-token"),
		chromedp.SetValue(chromedp.CSS(`#purpose`), "official statistics"),
		chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
		t.Fatal(err)
	}
	status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
	focus, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if !strings.Contains(status, "may not act for this purpose") {
		t.Fatalf("status %q: the scenario expects the hub's refusal of the purpose", status)
	}
	if focus != "purpose" {
		t.Errorf("refused for its purpose, the page says %q and focuses #%s, want #purpose", status, focus)
	}
}

// TestStatsPageBadPurposeFocusesPurpose: under the access policy a
// purpose the hub cannot take (longer than 200 bytes: 70 Chinese
// characters) is a 400 about the X-Purpose header. README: "the field to
// correct is focused: ... the region or the date when the hub refuses
// them". The region and the date are right here: the page must name the
// purpose, not the region code, and focus it.
func TestStatsPageBadPurposeFocusesPurpose(t *testing.T) {
	az := statsAuthorizer(t, statsPolicy)
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), az)
	purpose := strings.Repeat("官方人口统计", 12) // 72 characters, 216 bytes
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats"), chromedp.WaitReady(chromedp.CSS(`#query`)),
		chromedp.SetValue(chromedp.CSS(`#region`), "23"),
		chromedp.SetValue(chromedp.CSS(`#token`), "bureau-token"),
		chromedp.SetValue(chromedp.CSS(`#purpose`), purpose),
		chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
		t.Fatal(err)
	}
	status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
	focus, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if !strings.Contains(status, "X-Purpose") {
		t.Fatalf("status %q: the scenario expects the hub's refusal of the purpose", status)
	}
	if focus != "purpose" || strings.Contains(status, "区划代码") {
		t.Errorf("refused for its purpose, the page says %q and focuses #%s, want the purpose named and #purpose focused", status, focus)
	}
}

// TestStatsPageBadDateFocusesDate: a link with a date that is no day
// (2020-02-30, or 2020-6-30) is refused by the hub (400, "as-of date
// \"2020-02-30\" is not YYYY-MM-DD", with a hyphen, where the refusal of
// a date in the future says as_of). README: the date field is focused
// when the hub refuses the date.
func TestStatsPageBadDateFocusesDate(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	for _, asOf := range []string{"2020-02-30", "2020-6-30"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=23&as_of="+asOf),
			chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
			t.Fatal(err)
		}
		status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
		focus, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
		if !strings.Contains(status, "as-of date") {
			t.Fatalf("status %q: the scenario expects the hub's refusal of the date", status)
		}
		if focus != "asof" {
			t.Errorf("as_of=%s refused (%q), focus on #%s, want #asof", asOf, status, focus)
		}
	}
}

// TestStatsPageProxyErrorsExplained: in production a reverse proxy
// stands in front of the hub; when the hub is down or restarting the
// clerk gets the proxy's HTML page (503 or 504), and a proxy's own rate
// limit answers 429 in HTML. README: "a refusal or failure, including a
// hub that is unavailable ..., is shown with a short Chinese explanation";
// an answer that is not the hub's JSON must lead with the same sentences
// as the hub's own 503 and 429 (try again later; too many requests).
func TestStatsPageProxyErrorsExplained(t *testing.T) {
	store := districtsStore(t)
	ctx := browser(t)
	open := api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler()
	tests := []struct {
		status   int
		wantLead string
	}{
		{http.StatusServiceUnavailable, "服务暂时不可用"},
		{http.StatusGatewayTimeout, "服务暂时不可用"},
		{http.StatusTooManyRequests, "请求过于频繁"},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/v1/") {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(tc.status)
					_, _ = fmt.Fprintf(w, "<html><body><center><h1>%d %s</h1></center><hr><center>nginx</center></body></html>", tc.status, http.StatusText(tc.status))
					return
				}
				open.ServeHTTP(w, r)
			}))
			defer srv.Close()
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=23"),
				chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
				t.Fatal(err)
			}
			status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
			if !strings.HasPrefix(status, tc.wantLead) {
				t.Errorf("the proxy's HTML %d is shown as %q, want it to lead with %q", tc.status, status, tc.wantLead)
			}
		})
	}
}

// TestStatsPageDateMaxBehindHubsToday: the page opened without a date
// shows the hub's today and puts it in the date field, whose max is the
// browser's idea of today in China. Around China's midnight the two
// differ (an answer that arrives after midnight to a page loaded before
// it, or a desktop clock a few minutes slow); the browser then refuses to
// submit the form for any region, saying the date must be no later than
// yesterday. The clock is set back a day here to stand for that.
func TestStatsPageDateMaxBehindHubsToday(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `{ const now = Date.now; Date.now = () => now() - 24 * 3600e3; }`}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=23"),
		chromedp.WaitVisible(chromedp.CSS(`#table tbody tr.child`)),
		chromedp.SetValue(chromedp.CSS(`#region`), "2301"), chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.Sleep(time.Second)); err != nil {
		t.Fatal(err)
	}
	got, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("title").textContent,
		document.getElementById("asof").value, document.getElementById("asof").max, document.getElementById("asof").validationMessage]`))
	if !strings.Contains(got[0], "(2301)") {
		t.Errorf("asked for 2301, the page still shows %q: the date field (%s, max %s) refuses the form: %q", got[0], got[1], got[2], got[3])
	}
}
