package api_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
)

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
}
