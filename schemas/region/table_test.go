package region

import (
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLookup: entries at every level of the built-in table, derived
// classes of committees, and codes that are not in it.
func TestLookup(t *testing.T) {
	tests := []struct {
		name string
		code string
		want Division // zero: not found
	}{
		{"province", "23", Division{Code: "23", Name: "黑龙江省", Level: ProvinceLevel}},
		{"city", "2301", Division{Code: "2301", Name: "哈尔滨市", Level: CityLevel}},
		{"municipality's placeholder city", "1101", Division{Code: "1101", Name: "市辖区", Level: CityLevel}},
		{"county", "230102", Division{Code: "230102", Name: "道里区", Level: CountyLevel}},
		{"county-level city under a placeholder", "429004", Division{Code: "429004", Name: "仙桃市", Level: CountyLevel}},
		{"township", "230102001", Division{Code: "230102001", Name: "兆麟街道", Level: TownshipLevel}},
		{"residents' committee: urban, derived", "230102001001",
			Division{Code: "230102001001", Name: "省报社社区居委会", Level: VillageLevel, UrbanRural: "urban", Derived: true}},
		{"village committee: rural, derived", "230111003200",
			Division{Code: "230111003200", Name: "大堡村村委会", Level: VillageLevel, UrbanRural: "rural", Derived: true}},
		{"neither: by committee number 5xx, rural", "110108024500",
			Division{Code: "110108024500", Name: "小营股份经济合作社生活区", Level: VillageLevel, UrbanRural: "rural", Derived: true}},
		{"gacha (嘎查): rural", "150203102211",
			Division{Code: "150203102211", Name: "卜尔汉图嘎查", Level: VillageLevel, UrbanRural: "rural", Derived: true}},
		{"unknown committee", "230102001999", Division{}},
		{"unknown county", "230199", Division{}},
		{"no such province", "99", Division{}},
		{"Hong Kong is not in the data", "81", Division{}},
		{"empty", "", Division{}},
		{"one digit", "2", Division{}},
		{"seven digits", "2301020", Division{}},
		{"thirteen digits", "2301020010011", Division{}},
		{"not digits", "23010200100x", Division{}},
		{"blank around", " 230102", Division{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Lookup(tc.code)
			if ok != (tc.want != Division{}) || got != tc.want {
				t.Errorf("Lookup(%q) = %+v, %v; want %+v", tc.code, got, ok, tc.want)
			}
			wantKnown := ok && got.Level == VillageLevel
			if Known(tc.code) != wantKnown {
				t.Errorf("Known(%q) = %v, want %v", tc.code, !wantKnown, wantKnown)
			}
		})
	}
}

// TestChain: from the province down to the code; levels the table lacks
// are skipped and malformed codes give nothing.
func TestKnownRegion(t *testing.T) {
	tests := []struct {
		code string
		want bool
	}{
		{"230102", true},  // 道里区
		{"110101", true},  // 东城区
		{"230100", true},  // 哈尔滨市, written in six digits
		{"230000", true},  // 黑龙江省
		{"239999", false}, // no such county
		{"230199", false},
		{"239900", false}, // no such city
		{"820001", true},  // Macao: the table has no divisions there to judge by
		{"990102", false}, // no such province
		{"2301", false},
	}
	for _, tt := range tests {
		if got := Builtin().KnownRegion(tt.code); got != tt.want {
			t.Errorf("KnownRegion(%s) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestChain(t *testing.T) {
	tests := []struct {
		name, code string
		want       string // codes joined by commas
	}{
		{"committee", "230102001001", "23,2301,230102,230102001,230102001001"},
		{"county", "230102", "23,2301,230102"},
		{"province", "23", "23"},
		{"municipality", "110101001001", "11,1101,110101,110101001,110101001001"},
		{"unknown committee: its known parents", "230102001999", "23,2301,230102,230102001"},
		{"malformed", "2301020", ""},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range Chain(tc.code) {
				got = append(got, d.Code)
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("Chain(%q) = %v, want %s", tc.code, got, tc.want)
			}
		})
	}
}

// TestChildren: direct children only, in code order.
func TestChildren(t *testing.T) {
	tests := []struct {
		name, code string
		includes   string // a child's code, or "" for no children
		min        int
	}{
		{"province", "23", "2301", 13},
		{"city", "2301", "230102", 18},
		{"municipality", "11", "1101", 1},
		{"placeholder city", "1101", "110101", 16},
		{"county", "230102", "230102001", 10},
		{"township", "230102001", "230102001001", 4},
		{"committee has none", "230102001001", "", 0},
		{"unknown", "230199", "", 0},
		{"malformed", "x", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kids := Children(tc.code)
			found := false
			for i, k := range kids {
				if !strings.HasPrefix(k.Code, tc.code) || int(k.Level) != len(k.Code) || levelIndex(len(k.Code)) != levelIndex(len(tc.code))+1 {
					t.Fatalf("Children(%s)[%d] = %+v", tc.code, i, k)
				}
				if i > 0 && kids[i-1].Code >= k.Code {
					t.Fatalf("Children(%s) out of order at %s", tc.code, k.Code)
				}
				found = found || k.Code == tc.includes
			}
			if len(kids) < tc.min || found != (tc.includes != "") {
				t.Errorf("Children(%s): %d children, %s among them: %v", tc.code, len(kids), tc.includes, found)
			}
		})
	}
}

// TestBuiltinIsComplete: the whole embedded table, every 12-digit entry
// derived and classed, every entry's parent present.
func TestBuiltinIsComplete(t *testing.T) {
	tab := Builtin()
	wantAtLeast := map[Level]int{ProvinceLevel: 31, CityLevel: 340, CountyLevel: 2_970, TownshipLevel: 41_000, VillageLevel: 600_000}
	for l, n := range wantAtLeast {
		if got := tab.Len(l); got < n {
			t.Errorf("%d %s entries, want at least %d", got, l, n)
		}
	}
	for li := range levels {
		lt := &tab.lv[li]
		for i := range lt.codes {
			d := tab.entry(li, i, "")
			if d.Name == "" {
				t.Fatalf("%s has no name", d.Code)
			}
			if li > 0 {
				if _, ok := tab.Lookup(d.Code[:levels[li-1]]); !ok {
					t.Fatalf("%s %s: parent %s missing", d.Code, d.Name, d.Code[:levels[li-1]])
				}
			}
			if (d.Level == VillageLevel) != (d.UrbanRural != "") || d.Class != "" || d.Derived != (d.Level == VillageLevel) {
				t.Fatalf("%+v: want a derived class exactly on 12-digit entries", d)
			}
		}
	}
}

// TestBuiltinDerivesClassesFromNames: the names that decide the class
// always do (see internal/gen for the rule).
func TestBuiltinDerivesClassesFromNames(t *testing.T) {
	tab := Builtin()
	vi := levelIndex(int(VillageLevel))
	count := map[string]int{}
	for i := range tab.lv[vi].codes {
		d := tab.entry(vi, i, "")
		count[d.UrbanRural]++
		switch {
		case strings.HasSuffix(d.Name, "居委会") || strings.HasSuffix(d.Name, "社区"):
			if d.UrbanRural != "urban" {
				t.Fatalf("%s %s is a residents' committee classed %s", d.Code, d.Name, d.UrbanRural)
			}
		case strings.HasSuffix(d.Name, "村委会") || strings.HasSuffix(d.Name, "村民委员会"):
			if d.UrbanRural != "rural" {
				t.Fatalf("%s %s is a village committee classed %s", d.Code, d.Name, d.UrbanRural)
			}
		}
	}
	if count["urban"] < 120_000 || count["rural"] < 480_000 {
		t.Errorf("%d urban and %d rural committees", count["urban"], count["rural"])
	}
}

// TestParseTable: the table format refuses what the writer never writes.
func TestParseTable(t *testing.T) {
	tests := []struct{ name, text, err string }{
		{"good", "# c\n23\t黑龙江省\t\t\n230102001001\t甲\tu\td\n230102001002\t乙\t111\t\n", ""},
		{"three fields", "23\t黑龙江省\t\n", "line 1: 3 fields"},
		{"five fields", "23\t黑龙江省\t\t\t\n", "line 1: more than 4 fields"},
		{"bad code", "230\t甲\t\t\n", "line 1: code \"230\""},
		{"out of order", "2301\t甲\t\t\n23\t乙\t\t\n2302\t丙\t\t\n2301\t丁\t\t\n", "line 4: code 2301 out of order"},
		{"repeated", "23\t甲\t\t\n23\t乙\t\t\n", "line 2: code 23 out of order or repeated"},
		{"no name", "23\t\t\t\n", "line 1: code 23 has no name"},
		{"class above village", "23\t甲\t111\t\n", "line 1: code 23 above village level has a class"},
		{"derived without flag", "230102001001\t甲\tu\t\n", "line 1: class \"u\""},
		{"bad class", "230102001001\t甲\t130\t\n", "line 1: class \"130\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTable([]byte(tc.text))
			if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseTable: %v, want %q", err, tc.err)
			}
		})
	}
}

// TestParseNBSReportsEveryBadLine: one run names every bad line.
func TestParseNBSReportsEveryBadLine(t *testing.T) {
	tests := []struct {
		name, csv string
		want      []string // fragments of the error, or none for success
	}{
		{"with header", "code,class,name\n230102001001,111,甲\n", nil},
		{"without header, BOM, blanks", "\ufeff230102001001 , 220 , 甲 \n\n230102001002,112,乙\n", nil},
		{"bad lines", "230102001001,111,甲\n1101010010,111,乙\n230102001003,999,丙\n230102001004,111,\n230102001005,111\n990102001001,111,戊\n",
			[]string{"line 2: code \"1101010010\"", "line 3: classification code \"999\"", "line 4: code 230102001004 has no name", "line 5: 2 columns", "line 6: code \"990102001001\""}},
		{"repeated code", "230102001002,111,甲\n230102001001,111,乙\n230102001002,112,丙\n", []string{"line 3: code 230102001002 repeats line 1"}},
		{"header only", "code,class,name\n", []string{"no entries"}},
		{"empty", "", []string{"no entries"}},
		{"broken quotes", "230102001001,111,\"甲\n", []string{"reading NBS table"}},
		{"control characters in names", "230102001001,111,\"甲\t乙居委会\"\n230102001002,111,\"甲\n乙\"\n230102001003,111,\"甲\r乙\"\n230102001004,111,甲\x00\n230102001005,111,甲\u0085乙\n",
			[]string{"line 1: name of 230102001001 contains a control character", "line 2: name of 230102001002 contains", "line 4: name of 230102001003 contains",
				"line 5: name of 230102001004 contains", "line 6: name of 230102001005 contains"}},
		{"names a spreadsheet would run as formulas", "230102001001,111,\"=HYPERLINK(\"\"http://evil.example/\"\",\"\"森林社区\"\")\"\n" +
			"230102001002,111,+甲\n230102001003,111,-甲\n230102001004,111,@SUM(A1)\n230102001005,111,\" =甲\"\n",
			[]string{"line 1: name of 230102001001 begins with \"=\"", "line 2: name of 230102001002 begins with \"+\"",
				"line 3: name of 230102001003 begins with \"-\"", "line 4: name of 230102001004 begins with \"@\"",
				"line 5: name of 230102001005 begins with \"=\""}},
		{"formula characters inside a name", "230102001001,111,甲-乙村委会\n230102001002,111,甲@乙=丙+丁\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseNBS(strings.NewReader(tc.csv))
			if len(tc.want) == 0 {
				if err != nil || o.Len() == 0 {
					t.Fatalf("ParseNBS: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseNBS accepted %q", tc.csv)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not report %q", err, w)
				}
			}
		})
	}
	var many strings.Builder
	for range 200 {
		many.WriteString("x,1,2\n1,2,3\n")
	}
	if _, err := ParseNBS(strings.NewReader(many.String())); err == nil || !strings.Contains(err.Error(), "stopped after 50 bad lines") {
		t.Errorf("a file of bad lines: %v", err)
	}
}

// TestOverlayReplacesDerivedEntries: the official class and name replace
// derived entries, new codes are added, the rest stays derived, and a
// saved overlay loads back the same.
func TestOverlayReplacesDerivedEntries(t *testing.T) {
	const csv = "code,class,name\n230102001001,112,省报社社区居委会\n230111003200,121,大堡村村委会（镇区）\n230102001999,210,新设村委会\n"
	o, err := ParseNBS(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	base := Builtin()
	tab, replaced, added := base.With(o)
	if replaced != 2 || added != 1 {
		t.Fatalf("replaced %d, added %d; want 2 and 1", replaced, added)
	}
	if got, want := tab.Len(VillageLevel), base.Len(VillageLevel)+1; got != want {
		t.Errorf("%d entries after the overlay, want %d", got, want)
	}
	path := filepath.Join(t.TempDir(), "regions.tsv.gz")
	if err := WriteOverlay(path, o); err != nil {
		t.Fatal(err)
	}
	back, err := LoadOverlay(path)
	if err != nil {
		t.Fatal(err)
	}
	reloaded, _, _ := base.With(back)
	tests := []struct {
		code string
		want Division
	}{
		{"230102001001", Division{Code: "230102001001", Name: "省报社社区居委会", Level: VillageLevel, Class: "112", UrbanRural: "urban"}},
		{"230111003200", Division{Code: "230111003200", Name: "大堡村村委会（镇区）", Level: VillageLevel, Class: "121", UrbanRural: "urban"}},
		{"230102001999", Division{Code: "230102001999", Name: "新设村委会", Level: VillageLevel, Class: "210", UrbanRural: "rural"}},
		{"230102001002", Division{Code: "230102001002", Name: "索菲亚社区居委会", Level: VillageLevel, UrbanRural: "urban", Derived: true}},
		{"230102", Division{Code: "230102", Name: "道里区", Level: CountyLevel}},
	}
	for _, tc := range tests {
		for name, tb := range map[string]*Table{"overlaid": tab, "reloaded": reloaded} {
			if got, ok := tb.Lookup(tc.code); !ok || got != tc.want {
				t.Errorf("%s: Lookup(%s) = %+v, %v; want %+v", name, tc.code, got, ok, tc.want)
			}
		}
	}
	if d, _ := base.Lookup("230102001001"); !d.Derived {
		t.Error("With changed the table it was called on")
	}
	if _, err := LoadOverlay(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadOverlay of a missing file succeeded")
	}
}

// TestSetDefault: the package functions follow the table set, concurrent
// lookups see one table or the other, and nil restores the built-in one.
func TestSetDefault(t *testing.T) {
	t.Cleanup(func() { SetDefault(nil) })
	o, err := ParseNBS(strings.NewReader("230102001001,111,省报社社区居委会\n"))
	if err != nil {
		t.Fatal(err)
	}
	tab, _, _ := Builtin().With(o)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				if d, ok := Lookup("230102001001"); !ok || d.Class != "" && d.Class != "111" {
					t.Errorf("Lookup during SetDefault: %+v, %v", d, ok)
					return
				}
			}
		})
	}
	SetDefault(tab)
	wg.Wait()
	if d, _ := Lookup("230102001001"); d.Class != "111" || Default() != tab {
		t.Errorf("after SetDefault: %+v", d)
	}
	SetDefault(nil)
	if d, _ := Lookup("230102001001"); !d.Derived || Default() != Builtin() {
		t.Errorf("after SetDefault(nil): %+v", d)
	}
}

// TestBuiltinLoadCost measures decoding the embedded table and the heap
// it keeps: the budget is 50 MB. The time it takes is logged, not
// asserted: it depends on the machine and the race detector
// (BenchmarkBuiltinLoad measures it).
func TestBuiltinLoadCost(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	tab, err := readTable(divisions)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("decoding %d entries (%.1f MB compressed) took %s and keeps %.1f MB of heap",
		tab.Len(VillageLevel), float64(len(divisions))/(1<<20), took.Round(time.Millisecond), float64(heap)/(1<<20))
	if heap > 50<<20 {
		t.Errorf("the table keeps %d MB of heap, want under 50 MB", heap>>20)
	}
	runtime.KeepAlive(tab)
}

func BenchmarkLookup(b *testing.B) {
	tab := Builtin()
	codes := []string{"23", "2301", "230102", "230102001", "230102001001", "230111003200"}
	for i := 0; b.Loop(); i++ {
		if _, ok := tab.Lookup(codes[i%len(codes)]); !ok {
			b.Fatal("not found")
		}
	}
}

func BenchmarkKnown(b *testing.B) {
	tab := Builtin()
	for b.Loop() {
		if !tab.Known("230111003200") {
			b.Fatal("not known")
		}
	}
}

func BenchmarkBuiltinLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := readTable(divisions); err != nil {
			b.Fatal(err)
		}
	}
}
