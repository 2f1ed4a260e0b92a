package region

import (
	"bytes"
	"compress/gzip"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestBuiltinLookup(t *testing.T) {
	tests := []struct {
		code, name string
		level      Level
		urbanRural string
	}{
		{"23", "黑龙江省", ProvinceLevel, ""},
		{"2301", "哈尔滨市", CityLevel, ""},
		{"230102", "道里区", CountyLevel, ""},
		{"110101001", "东华门街道", TownshipLevel, ""},
		{"110101001001", "多福巷社区居委会", VillageLevel, "urban"},
	}
	for _, tc := range tests {
		d, ok := Lookup(tc.code)
		if !ok || d.Name != tc.name || d.Level != tc.level || d.UrbanRural != tc.urbanRural || d.Code != tc.code {
			t.Errorf("Lookup(%s) = %+v, %v; want %s at %v, %q", tc.code, d, ok, tc.name, tc.level, tc.urbanRural)
		}
	}
	for _, code := range []string{"", "2", "99", "230199", "23010200100x", "1101010010019"} {
		if d, ok := Lookup(code); ok {
			t.Errorf("Lookup(%q) = %+v, want not found", code, d)
		}
	}
}

func TestBuiltinDerivesClassesFromNames(t *testing.T) {
	tab := Builtin()
	lt := &tab.lv[levelIndex(12)]
	urban, rural := 0, 0
	for i := range lt.codes {
		d := tab.entry(levelIndex(12), i)
		if !d.Derived || d.Class != "" {
			t.Fatalf("built-in entry %s is not marked derived", d.Code)
		}
		switch {
		case strings.HasSuffix(d.Name, "居委会") && d.UrbanRural != "urban":
			t.Fatalf("%s %s is a residents' committee classed %s", d.Code, d.Name, d.UrbanRural)
		case strings.HasSuffix(d.Name, "村委会") && d.UrbanRural != "rural":
			t.Fatalf("%s %s is a village committee classed %s", d.Code, d.Name, d.UrbanRural)
		}
		if d.UrbanRural == "urban" {
			urban++
		} else {
			rural++
		}
	}
	if n := tab.Len(VillageLevel); n < 600_000 || urban < 100_000 || rural < 400_000 {
		t.Fatalf("%d village-level entries, %d urban, %d rural", n, urban, rural)
	}
}

func TestChainsAndChildren(t *testing.T) {
	tab := Builtin()
	// Every entry's parents exist (levels the data has for it).
	for li := 1; li < len(levels); li++ {
		lt := &tab.lv[li]
		for i := range lt.codes {
			d := tab.entry(li, i)
			parent := d.Code[:levels[li-1]]
			if _, ok := tab.Lookup(parent); !ok {
				t.Fatalf("%s %s: parent %s missing", d.Code, d.Name, parent)
			}
		}
	}
	chain := Chain("230102001001")
	var names []string
	for _, d := range chain {
		names = append(names, d.Code)
	}
	if strings.Join(names, ",") != "23,2301,230102,230102001,230102001001" {
		t.Errorf("chain %v", names)
	}
	kids := Children("2301")
	found := false
	for i, k := range kids {
		if len(k.Code) != 6 || !strings.HasPrefix(k.Code, "2301") || (i > 0 && kids[i-1].Code >= k.Code) {
			t.Fatalf("children of 2301: %+v", kids)
		}
		found = found || k.Code == "230102"
	}
	if !found || len(Children("230102001001")) != 0 || len(Children("x")) != 0 {
		t.Errorf("children of 2301 lack 道里区, or a village has children")
	}
	if !Known("110101001001") || Known("110101001999") || Known("110101") {
		t.Error("Known misjudges addresses")
	}
}

func TestNBSOverlay(t *testing.T) {
	csv := "code,class,name\n110101001001,111,多福巷社区居委会\n110101001002,220,银闸村\n230102999999,210,新设村委会\n"
	o, err := ParseNBS(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	tab, replaced, added := Builtin().With(o)
	if replaced != 2 || added != 1 {
		t.Fatalf("replaced %d added %d, want 2 and 1", replaced, added)
	}
	for code, want := range map[string]Division{
		"110101001001": {Class: "111", UrbanRural: "urban"},
		"110101001002": {Class: "220", UrbanRural: "rural"},
		"230102999999": {Class: "210", UrbanRural: "rural"},
	} {
		d, ok := tab.Lookup(code)
		if !ok || d.Class != want.Class || d.UrbanRural != want.UrbanRural || d.Derived {
			t.Errorf("%s after overlay: %+v", code, d)
		}
	}
	if d, _ := tab.Lookup("110101001005"); !d.Derived {
		t.Error("an entry the overlay does not cover lost its derived mark")
	}
	path := filepath.Join(t.TempDir(), "nbs.tsv.gz")
	if err := WriteOverlay(path, o); err != nil {
		t.Fatal(err)
	}
	back, err := LoadOverlay(path)
	if err != nil || back.Len() != 3 {
		t.Fatalf("LoadOverlay: %v, %d entries", err, back.Len())
	}

	_, err = ParseNBS(strings.NewReader("110101001001,111,甲\n1101010010,111,乙\n110101001003,999,丙\n110101001004,111,\n110101001005,111\n"))
	if err == nil {
		t.Fatal("bad lines accepted")
	}
	for _, want := range []string{"line 2: code", "line 3: classification code", "line 4: empty name", "line 5: 2 columns"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
	if _, err := ParseNBS(strings.NewReader("")); err == nil || errors.Unwrap(err) != nil && !strings.Contains(err.Error(), "no entries") {
		t.Errorf("empty table: %v", err)
	}
}

// TestBuiltinLoadCost reports what loading the embedded table costs.
func TestBuiltinLoadCost(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	b := newBuilder()
	if err := parseTSV(gunzip(t, divisions), b); err != nil {
		t.Fatal(err)
	}
	tab := b.table()
	took := time.Since(start)
	b = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("loading %d entries took %s and keeps %d MB of heap", tab.Len(VillageLevel), took.Round(time.Millisecond), heap>>20)
	if heap > 64<<20 {
		t.Errorf("the table keeps %d MB of heap, want under 64 MB", heap>>20)
	}
	runtime.KeepAlive(tab)
}

func BenchmarkLookup(b *testing.B) {
	tab := Builtin()
	codes := []string{"23", "2301", "230102", "110101001", "110101001001"}
	for i := 0; b.Loop(); i++ {
		if _, ok := tab.Lookup(codes[i%len(codes)]); !ok {
			b.Fatal("not found")
		}
	}
}

func gunzip(t testing.TB, b []byte) *gzip.Reader {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}
