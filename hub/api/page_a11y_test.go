package api_test

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/chromedp/chromedp"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/storetest"
)

// TestStatsPageEveryRefusalLeadsInChinese: README promises that "a refusal
// is shown with a short Chinese explanation ahead of the hub's detail".
// A clerk on a Chinese desktop who opens a bookmark or link with a date
// after today, or whose hub has lost its database (503), or whose network
// drops the connection, must get a Chinese sentence first, not only the
// hub's English detail or the browser's "Failed to fetch". The date field
// itself offers no day after today (in China, where the hub counts).
func TestStatsPageEveryRefusalLeadsInChinese(t *testing.T) {
	store := districtsStore(t)
	ctx := browser(t)
	open := api.New(api.Config{Store: store, Counter: store, Regions: testRegions{}}).Handler()
	afterTomorrow := time.Now().In(cst).AddDate(0, 0, 2).Format("2006-01-02")
	tests := []struct {
		name, asOf string
		handler    http.Handler
		wantHas    string // the hub's detail, or what the page says of a dropped connection
	}{
		{"as_of after today, in the address", afterTomorrow, open, "is in the future"},
		{"hub unavailable", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", api.ProblemContentType)
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":503,"detail":"a dependency of the hub is unavailable; retry later"}`))
		}), "retry later"},
		{"connection dropped", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
		}), ""},
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
			if tc.asOf != "" {
				// The date field refuses a day after today, so such a
				// date comes by the address.
				if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=23&as_of="+tc.asOf),
					chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats"), chromedp.WaitReady(chromedp.CSS(`#query`)),
					chromedp.SetValue(chromedp.CSS(`#region`), "23"), chromedp.Click(chromedp.CSS(`#query button`)),
					chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
					t.Fatal(err)
				}
			}
			status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
			first := []rune(strings.TrimSpace(status))
			if len(first) == 0 || !unicode.Is(unicode.Han, first[0]) || !strings.Contains(status, tc.wantHas) {
				t.Errorf("status %q: want a Chinese explanation first, then %q", status, tc.wantHas)
			}
		})
	}

	// The date picker offers nothing after today, China's today.
	today := time.Now().In(cst).Format("2006-01-02")
	maxDate, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("asof").max`))
	if err != nil {
		t.Fatal(err)
	}
	if maxDate != today && maxDate != time.Now().In(cst).Add(-time.Minute).Format("2006-01-02") {
		t.Errorf("the date field's max is %q, want today in China, %s", maxDate, today)
	}
}

// TestStatsPageAnnouncesAnswerAndKeepsFocus: a screen-reader user drills
// down from 黑龙江省 into 哈尔滨市 with Enter on the link. The page's live
// region (#status, role=status) said "加载中 Loading…"; when the answer
// arrives it must say what is now shown (WCAG 4.1.3), and the keyboard
// focus, whose link the redraw removed, must land somewhere in the page
// (the heading or the table), not fall back to <body> so that the next Tab
// starts again at the top of the form (WCAG 2.4.3).
func TestStatsPageAnnouncesAnswerAndKeepsFocus(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=23&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#table tbody tr.child`)), chromedp.Sleep(300*time.Millisecond),
		chromedp.Focus(chromedp.CSS(`#table tbody tr[data-region="2301"] a`)),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS(`#table tbody tr[data-region="230103"]`)),
		chromedp.Sleep(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[
		document.querySelector("[role=status],[aria-live]:not([aria-live=off])").textContent,
		document.activeElement === document.body ? "BODY" : document.activeElement.tagName + "#" + document.activeElement.id]`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got[0], "哈尔滨市") {
		t.Errorf("live region reads %q once 哈尔滨市 is shown: a screen reader announces nothing of the answer", got[0])
	}
	if got[1] == "BODY" {
		t.Errorf("after drilling down by keyboard the focus is on <body>: the next Tab starts at the top of the form")
	}
}

// TestStatsPageChartContrast: the chart's bars are the only thing that
// tells urban from rural in it; WCAG 2.1 1.4.11 (non-text contrast, AA)
// wants graphical objects needed to understand the content at 3:1 against
// their background (the chart's white) and against adjacent colours (a
// rural segment sits directly on an urban one).
func TestStatsPageChartContrast(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=2301&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#chart rect.rural`))); err != nil {
		t.Fatal(err)
	}
	fills, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[
		getComputedStyle(document.querySelector("#chart")).backgroundColor,
		getComputedStyle(document.querySelector("#chart rect.urban")).fill,
		getComputedStyle(document.querySelector("#chart rect.rural")).fill]`))
	if err != nil {
		t.Fatal(err)
	}
	lum := func(css string) float64 {
		var r, g, b float64
		if _, err := fmt.Sscanf(css, "rgb(%f, %f, %f)", &r, &g, &b); err != nil {
			t.Fatalf("colour %q: %v", css, err)
		}
		lin := func(c float64) float64 {
			c /= 255
			if c <= 0.03928 {
				return c / 12.92
			}
			return math.Pow((c+0.055)/1.055, 2.4)
		}
		return 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
	}
	ratio := func(a, b string) float64 {
		la, lb := lum(a), lum(b)
		return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
	}
	for _, p := range []struct{ what, a, b string }{
		{"urban bar on the chart's background", fills[1], fills[0]},
		{"rural bar on the chart's background", fills[2], fills[0]},
		{"rural segment on the urban segment", fills[2], fills[1]},
	} {
		if r := ratio(p.a, p.b); r < 3 {
			t.Errorf("%s: %s against %s is %.2f:1, want at least 3:1", p.what, p.a, p.b, r)
		}
	}
}

// TestStatsPageChartPartlyHiddenBar: for a caller with a minimum cell of 5
// (the example policy's default), 南岗区 with 30 urban and 40 rural people
// next to 道里区 with 3 rural is answered urban 30, rural "suppressed",
// total "suppressed" (its rural would otherwise follow from the city's
// row). The table shows the markers, but the chart draws 南岗区 as a plain
// blue bar of 30 with a rural segment of height 0: a wholly urban district
// of 30 people, when 70 live there and most of them rurally. A bar with
// hidden parts must say so (as the grey bar of a hidden breakdown does),
// not pass for a complete one.
func TestStatsPageChartPartlyHiddenBar(t *testing.T) {
	store := newMemStore(t)
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, cst)
	var in []hub.Input
	n := 900
	add := func(addr string, k int) {
		for range k {
			in = append(in, registration(t, n, addr, at))
			n++
		}
	}
	add("230102019200", 3)  // Daoli rural
	add("230103001001", 30) // Nangang urban
	add("230103020200", 40) // Nangang rural
	storetest.ApplyAll(t, store, in, 5)
	ctx := browser(t)
	srv := pageServer(t, store, cellGrant{5})
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=2301&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#chart`))); err != nil {
		t.Fatal(err)
	}
	// 南岗区's table cells, and each drawn element of its bar: class, height, title.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		const tr = document.querySelector('#table tbody tr[data-region="230103"]');
		const cells = [...tr.cells].slice(2).map(c => c.textContent).join(" / ");
		const parts = [...document.querySelectorAll("#chart rect, #chart text")]
			.filter(e => e.querySelector("title") && e.querySelector("title").textContent.startsWith("南岗区 "))
			.map(e => (e.getAttribute("class") || "") + " h=" + (e.getAttribute("height") || "-") + " «" + e.querySelector("title").textContent + "»");
		return [cells, ...parts];
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got[0], "suppressed") {
		t.Fatalf("南岗区's cells read %q; the scenario expects a suppressed total", got[0])
	}
	whollyUrban := false
	for _, p := range got[1:] {
		if strings.HasPrefix(p, "urban ") && !strings.HasPrefix(p, "urban h=0 ") {
			whollyUrban = true
		}
		if strings.HasPrefix(p, "breakdown-hidden") {
			whollyUrban = false
			break
		}
	}
	if whollyUrban {
		t.Errorf("南岗区 (urban / rural / total / share: %s) is drawn as a complete bar: %q", got[0], got[1:])
	}
	// The markers in the table are explained under it.
	markers, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(e => e.hidden ? "" : e.textContent)(document.getElementById("markers"))`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(markers, "suppressed") || !strings.Contains(markers, "<5") {
		t.Errorf("the table shows hidden counts, but what its markers mean is explained as %q", markers)
	}
}

// TestStatsPagePaddedCityCrumbs: a city written in six digits (230100, as
// NBS tables often write it) is the city 2301, not its own child: the
// breadcrumbs list 黑龙江省 alone above it, not 哈尔滨市 as its parent.
func TestStatsPagePaddedCityCrumbs(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=230100&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#crumbs a`))); err != nil {
		t.Fatal(err)
	}
	links, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#crumbs a")].map(a => a.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0] != "黑龙江省" {
		t.Errorf("breadcrumbs above 230100 link %q, want 黑龙江省 alone", links)
	}
}

// TestStatsPageLanguageOfParts: the page is lang="zh-CN" and every label
// carries an English translation ("Region", "As of", "Show", "Urban
// share", …). WCAG 2.1 3.1.2 (Language of Parts, AA) wants those parts
// marked lang="en", or a Chinese screen-reader voice reads them with
// Chinese rules (letter by letter or mangled).
func TestStatsPageLanguageOfParts(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=2301&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#table tbody tr.child`))); err != nil {
		t.Fatal(err)
	}
	unmarked, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		const out = [];
		const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
		for (let n; (n = w.nextNode());) {
			const words = n.textContent.match(/[A-Za-z]{3,}(?:[ \/][A-Za-z]{2,})*/g);
			if (!words || n.parentElement.closest("script,style,title,[hidden]")) continue;
			const lang = (n.parentElement.closest("[lang]") || document.documentElement).lang;
			if (!lang.startsWith("en")) out.push(words.join(" "));
		}
		return out;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if len(unmarked) > 0 {
		t.Errorf("%d English texts are read as zh-CN: %q", len(unmarked), unmarked)
	}
}

// TestStatsPageErrorClearsBreadcrumbs: the clerk looks at 哈尔滨市, then
// asks for 2399, which the hub does not know (404). The table is hidden
// and the error shown, but the breadcrumbs still announce 哈尔滨市 (2301)
// as the current page (aria-current=page) while the address bar and the
// region field say 2399.
func TestStatsPageErrorClearsBreadcrumbs(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats?region=2301&as_of=2020-06-30"),
		chromedp.WaitVisible(chromedp.CSS(`#crumbs [aria-current=page]`)),
		chromedp.SetValue(chromedp.CSS(`#region`), "2399"), chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
		t.Fatal(err)
	}
	crumb, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("#crumbs [aria-current=page]") || {textContent: ""}).textContent`))
	if err != nil {
		t.Fatal(err)
	}
	url, _ := chromedp.Run(ctx, chromedp.Location())
	if strings.Contains(crumb, "2301") {
		t.Errorf("after 2399 was refused (address bar %s) the breadcrumbs still mark %q as the current page", url, crumb)
	}
}

// TestStatsPageRegionFormatExplained: a clerk types a code of the wrong
// length (230, or a city padded wrongly) and presses 查询. The browser
// refuses the form by the field's pattern, and its message is all the
// clerk learns; without a title on the field it reads only "请与所请求的
// 格式保持一致" (match the requested format), not which format (WCAG 2.1
// 3.3.3, Error Suggestion, AA: the page knows the correction, 2, 4, 6, 9
// or 12 digits, and must give it).
func TestStatsPageRegionFormatExplained(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats"), chromedp.WaitReady(chromedp.CSS(`#query`)),
		chromedp.SetValue(chromedp.CSS(`#region`), "230")); err != nil {
		t.Fatal(err)
	}
	msg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("region").validationMessage`))
	if err != nil {
		t.Fatal(err)
	}
	if msg == "" {
		t.Fatal("230 passes the field's check")
	}
	if !strings.Contains(msg, "12") {
		t.Errorf("the browser refuses 230 saying %q: nothing tells the clerk a code has 2, 4, 6, 9 or 12 digits", msg)
	}
}

// statsPolicy has the statistics bureau and a registry office whose token
// reads records for its purpose but has no statistics grant.
const statsPolicy = `version: 1
identities:
  - name: hub
    kind: hub
    credentials:
      kafka: {password: env:HUB_PW}
      nats: {password_bcrypt: "$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy"}
  - name: stats-bureau
    kind: statistics
    stats: true
    purposes: ["official population statistics"]
    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000001}
  - name: registry
    kind: subscriber
    read: [identity, hukou]
    purposes: ["household registration"]
    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000002}
`

// TestStatsPageForbiddenTokenFocusesToken: a clerk pastes the wrong
// token, one of an identity that reads records but may not use the
// statistics at all, with that identity's own, allowed purpose. The hub
// refuses (403: "identity registry may not use GET
// /v1/stats/urban-rural"). README: "the token or purpose field to correct
// is focused". The field to correct is the token, but the page tells the
// clerk to check the purpose ("请检查「用途」") and focuses it, whatever
// the refusal says; with the right purpose for the wrong token the clerk
// can change the purpose for ever.
func TestStatsPageForbiddenTokenFocusesToken(t *testing.T) {
	az := statsAuthorizer(t, statsPolicy)
	ctx := browser(t)
	srv := pageServer(t, districtsStore(t), az)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/stats"), chromedp.WaitReady(chromedp.CSS(`#query`)),
		chromedp.SetValue(chromedp.CSS(`#region`), "23"),
		chromedp.SetValue(chromedp.CSS(`#token`), "registry-token"),
		chromedp.SetValue(chromedp.CSS(`#purpose`), "household registration"),
		chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.WaitVisible(chromedp.CSS(`#status.error`))); err != nil {
		t.Fatal(err)
	}
	status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
	focus, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if !strings.Contains(status, "may not use") {
		t.Fatalf("status %q: the scenario expects the hub's refusal of the route", status)
	}
	if focus != "token" || strings.Contains(status, "用途") && !strings.Contains(status, "令牌") {
		t.Errorf("refused for the token's identity, the page says %q and focuses #%s, want the token named and #token focused", status, focus)
	}
}

// statsAuthorizer is the authorizer of the access policy yaml (statsPolicy
// or a variant of it), its two placeholder token hashes standing for
// "bureau-token" and "registry-token".
func statsAuthorizer(t *testing.T, yaml string) *access.Authorizer {
	t.Helper()
	policy, err := access.Parse([]byte(strings.NewReplacer(
		"0000000000000000000000000000000000000000000000000000000000000001", access.HashToken("bureau-token"),
		"0000000000000000000000000000000000000000000000000000000000000002", access.HashToken("registry-token"),
	).Replace(yaml)))
	if err != nil {
		t.Fatal(err)
	}
	az, err := access.NewAuthorizer(access.AuthorizerConfig{Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	return az
}
