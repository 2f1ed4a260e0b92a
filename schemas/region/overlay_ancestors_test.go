package region

import (
	"slices"
	"strings"
	"testing"
)

// TestOverlayAddsMissingAncestors: an official table may list a committee
// of a township, county or even city the built-in table lacks. Its
// ancestors are then added, unnamed, so that the committee's county is a
// known region (events carry it as a region code), its chain reaches it and
// the stats drill down from the city finds it; named entries stay as they
// were and the table the overlay was laid over does not change.
func TestOverlayAddsMissingAncestors(t *testing.T) {
	const csv = "code,class,name\n" +
		"230199001001,111,新社区居委会\n" + // county 230199 and township 230199001 are new
		"230102099001,220,新村委会\n" + // township 230102099 is new, its county is not
		"239901001001,210,新镇村委会\n" // city 2399 is new as well
	o, err := ParseNBS(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	base := Builtin()
	for _, code := range []string{"230199", "230102099", "2399"} {
		if _, ok := base.Lookup(code); ok {
			t.Fatalf("the built-in table has %s: pick another code for this test", code)
		}
	}
	tab, replaced, added := base.With(o)
	if replaced != 0 || added != 3 {
		t.Fatalf("replaced %d, added %d; want 0 and 3", replaced, added)
	}
	tests := []struct {
		code string
		want Division
	}{
		{"230199", Division{Code: "230199", Level: CountyLevel}},
		{"230199001", Division{Code: "230199001", Level: TownshipLevel}},
		{"230102099", Division{Code: "230102099", Level: TownshipLevel}},
		{"2399", Division{Code: "2399", Level: CityLevel}},
		{"239901", Division{Code: "239901", Level: CountyLevel}},
		{"239901001", Division{Code: "239901001", Level: TownshipLevel}},
		{"230102", Division{Code: "230102", Name: "道里区", Level: CountyLevel}},
		{"2301", Division{Code: "2301", Name: "哈尔滨市", Level: CityLevel}},
		{"230199001001", Division{Code: "230199001001", Name: "新社区居委会", Level: VillageLevel, Class: "111", UrbanRural: "urban"}},
	}
	for _, tc := range tests {
		if got, ok := tab.Lookup(tc.code); !ok || got != tc.want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", tc.code, got, ok, tc.want)
		}
	}
	for _, code := range []string{"230199", "239901", "239900"} {
		if !tab.KnownRegion(code) {
			t.Errorf("KnownRegion(%s) = false after the overlay", code)
		}
	}
	if !tab.Known("230199001001") {
		t.Error("Known(230199001001) = false after the overlay")
	}
	if got := len(tab.Chain("230199001001")); got != 5 {
		t.Errorf("Chain(230199001001) has %d entries, want 5", got)
	}
	for parent, child := range map[string]string{"2301": "230199", "230199": "230199001", "230199001": "230199001001",
		"230102": "230102099", "23": "2399", "2399": "239901"} {
		if !slices.ContainsFunc(tab.Children(parent), func(d Division) bool { return d.Code == child }) {
			t.Errorf("Children(%s) lacks %s", parent, child)
		}
	}
	for _, l := range []Level{CityLevel, CountyLevel, TownshipLevel} {
		wantAdded := map[Level]int{CityLevel: 1, CountyLevel: 2, TownshipLevel: 3}[l]
		if got, want := tab.Len(l), base.Len(l)+wantAdded; got != want {
			t.Errorf("%d %s entries after the overlay, want %d", got, l, want)
		}
	}
	// Every entry's parent is present, as in the built-in table.
	for li := 1; li < len(levels); li++ {
		for i := range tab.lv[li].codes {
			d := tab.entry(li, i, "")
			if _, ok := tab.Lookup(d.Code[:levels[li-1]]); !ok {
				t.Fatalf("%s: parent %s missing", d.Code, d.Code[:levels[li-1]])
			}
		}
	}
	if _, ok := base.Lookup("230199"); ok {
		t.Error("With changed the table it was called on")
	}
}
