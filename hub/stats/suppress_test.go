package stats

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSuppress: small cells are hidden, with a second one when a single
// hidden cell could be worked out from the total.
func TestSuppress(t *testing.T) {
	tests := []struct {
		name      string
		counts    []int64
		min       int
		want      string
		wantTotal string
	}{
		{"none below", []int64{120, 40}, 10, "120 40", "160"},
		{"one small pulls the smallest other", []int64{3, 40, 12}, 10, "<10 40 suppressed", "55"},
		{"a zero protects nothing", []int64{3, 0, 40}, 10, "<10 0 suppressed", "43"},
		{"two small", []int64{3, 4, 50}, 10, "<10 <10 50", "57"},
		{"zeros shown", []int64{0, 50}, 10, "0 50", "50"},
		{"small total", []int64{2, 3}, 10, "<10 <10", "<10"},
		{"bureau", []int64{1, 2}, 0, "1 2", "3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cells, total := Suppress(tc.counts, tc.min)
			var got []string
			for _, c := range cells {
				b, _ := c.MarshalJSON()
				got = append(got, strings.Trim(string(b), `"`))
			}
			tb, _ := total.MarshalJSON()
			if strings.Join(got, " ") != tc.want || strings.Trim(string(tb), `"`) != tc.wantTotal {
				t.Errorf("Suppress(%v, %d) = %v total %s, want %s total %s", tc.counts, tc.min, got, tb, tc.want, tc.wantTotal)
			}
		})
	}
}

// TestCellJSON: a cell reads back what it wrote.
func TestCellJSON(t *testing.T) {
	for _, c := range []Cell{Shown(0), Shown(1234), {Suppressed: true, Min: 10}, {Suppressed: true, Complementary: true}} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Cell
		if err := json.Unmarshal(b, &back); err != nil || back != c {
			t.Errorf("%s read back as %+v (%v), want %+v", b, back, err, c)
		}
	}
	for _, bad := range []string{`"ten"`, `"<"`, `"5"`, `"Suppressed"`} {
		var c Cell
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%s read as a cell %+v", bad, c)
		}
	}
	if b, _ := json.Marshal(Cell{Suppressed: true, Complementary: true}); string(b) != `"suppressed"` {
		t.Errorf("a complementary cell encodes as %s, want \"suppressed\"", b)
	}
}

// cellTexts is a row of cells as the API writes them.
func cellTexts(cells []Cell) string {
	var out []string
	for _, c := range cells {
		b, _ := c.MarshalJSON()
		out = append(out, strings.Trim(string(b), `"`))
	}
	return strings.Join(out, " ")
}

// urbanRural is a row of urban, rural and total.
func urbanRural(u, r int64) []int64 { return []int64{u, r, u + r} }

// TestSuppressFamily: a region's children with the region's row as the
// margin, as one table; no row or column is left with one hidden cell.
func TestSuppressFamily(t *testing.T) {
	shown := func(row []int64) []Cell {
		cells := make([]Cell, len(row))
		for j, n := range row {
			cells[j] = Shown(n)
		}
		return cells
	}
	tests := []struct {
		name        string
		parent      []int64
		parentCells []Cell // nil: every parent cell shown
		children    [][]int64
		min         int
		want        []string
	}{
		{
			// The reviewers' case: Harbin urban 14 shown, Daoli urban 12
			// shown would give Nangang's 2 away.
			name:     "a small cell's column gets a second",
			parent:   urbanRural(14, 50),
			children: [][]int64{urbanRural(12, 20), urbanRural(2, 30)},
			min:      5,
			want:     []string{"suppressed suppressed 32", "<5 suppressed 32"},
		},
		{
			// The urban column takes 40, not child 1's zero; the total
			// column takes child 1's 10, which leaves child 1's row with
			// one hidden cell, so a second pass hides its rural 10, and
			// the rural column then pulls child 2's 30.
			name:     "iterates until stable, never hiding a zero",
			parent:   urbanRural(43, 40),
			children: [][]int64{urbanRural(3, 0), urbanRural(0, 10), urbanRural(40, 30)},
			min:      5,
			want:     []string{"<5 0 <5", "0 suppressed suppressed", "suppressed suppressed 70"},
		},
		{
			name:     "the smallest shown cell of the line",
			parent:   urbanRural(40, 62),
			children: [][]int64{urbanRural(20, 2), urbanRural(20, 60)},
			min:      5,
			want:     []string{"suppressed <5 22", "suppressed suppressed 80"},
		},
		{
			// The parent's cells are decided one level up: its hidden urban
			// needs a second hidden urban below it, and nothing of the
			// parent changes here.
			name:        "a hidden parent cell counts in its column",
			parent:      urbanRural(30, 50),
			parentCells: []Cell{complement, Shown(50), complement},
			children:    [][]int64{urbanRural(10, 20), urbanRural(20, 30)},
			min:         5,
			want:        []string{"suppressed 20 suppressed", "20 30 50"},
		},
		{
			// The only child with urban residents: its urban is the
			// parent's, so the rural 2 is protected by the total instead.
			name:     "a cell known from the parent is not a complement",
			parent:   urbanRural(30, 12),
			children: [][]int64{urbanRural(30, 2), urbanRural(0, 10)},
			min:      5,
			want:     []string{"30 <5 suppressed", "0 suppressed suppressed"},
		},
		{
			name:     "nothing small",
			parent:   urbanRural(30, 50),
			children: [][]int64{urbanRural(10, 20), urbanRural(20, 30)},
			min:      5,
			want:     []string{"10 20 30", "20 30 50"},
		},
		{
			name:     "bureau",
			parent:   urbanRural(1, 2),
			children: [][]int64{urbanRural(1, 0), urbanRural(0, 2)},
			min:      0,
			want:     []string{"1 0 1", "0 2 2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parentCells := tc.parentCells
			if parentCells == nil {
				parentCells = shown(tc.parent)
			}
			got := SuppressFamily(tc.parent, parentCells, tc.children, true, tc.min)
			var texts []string
			for _, row := range got {
				texts = append(texts, cellTexts(row))
			}
			if strings.Join(texts, " | ") != strings.Join(tc.want, " | ") {
				t.Errorf("SuppressFamily(%v, %v, %d) =\n %q\nwant\n %q", tc.parent, tc.children, tc.min, texts, tc.want)
			}
			checkFamily(t, tc.parent, parentCells, tc.children, got, tc.min)
		})
	}
}

// checkFamily checks what SuppressFamily promises: every row and column
// (the parent's cell counting in its column) has zero or at least two
// hidden cells, zeros are shown, small counts are "<k", and complementary
// cells are never zeros.
func checkFamily(t *testing.T, parent []int64, parentCells []Cell, children [][]int64, got [][]Cell, k int) {
	t.Helper()
	line := func(name string, hidden int) {
		if hidden == 1 {
			t.Errorf("%s has one hidden cell: it is worked out from the others", name)
		}
	}
	for i, row := range got {
		hidden := 0
		for j, c := range row {
			n := children[i][j]
			switch {
			case n == 0 && c.Suppressed:
				t.Errorf("child %d column %d: a zero is hidden", i, j)
			case k >= 2 && n > 0 && n < int64(k) && (!c.Suppressed || c.Complementary):
				t.Errorf("child %d column %d: small count %d shown as %s", i, j, n, cellTexts([]Cell{c}))
			case !c.Suppressed && c.N != n:
				t.Errorf("child %d column %d: shows %d, holds %d", i, j, c.N, n)
			}
			if c.Suppressed {
				hidden++
			}
		}
		line("child "+string(rune('0'+i))+"'s row", hidden)
	}
	for j := range parent {
		hidden := 0
		if parentCells[j].Suppressed {
			hidden++
		}
		for i := range got {
			if got[i][j].Suppressed {
				hidden++
			}
		}
		line("column "+string(rune('0'+j)), hidden)
	}
}

// TestSuppressLineage: a region's row reads the same asked for alone and
// listed among its parent's children, and the family below it rests on it.
func TestSuppressLineage(t *testing.T) {
	province := urbanRural(44, 130)
	cities := [][]int64{urbanRural(14, 50), urbanRural(30, 80)}
	districts := [][]int64{urbanRural(12, 20), urbanRural(2, 30)} // of city 0
	const k = 5

	// The province with its cities.
	_, asChildren := SuppressLineage([]Family{{Own: province, Children: cities}}, true, k)
	// City 0 alone, then with its districts.
	alone, _ := SuppressLineage([]Family{{Own: province, Children: cities, Next: 0}, {Own: cities[0]}}, true, k)
	withKids, kids := SuppressLineage([]Family{{Own: province, Children: cities, Next: 0}, {Own: cities[0], Children: districts}}, true, k)
	if a, b, c := cellTexts(asChildren[0]), cellTexts(alone), cellTexts(withKids); a != b || b != c {
		t.Errorf("city 0 reads %q among its province's children, %q alone, %q with its districts", a, b, c)
	}
	checkFamily(t, cities[0], withKids, districts, kids, k)
	// District 1 alone reads as it does among its city's children.
	district, _ := SuppressLineage([]Family{{Own: province, Children: cities, Next: 0}, {Own: cities[0], Children: districts, Next: 1}, {Own: districts[1]}}, true, k)
	if a, b := cellTexts(kids[1]), cellTexts(district); a != b {
		t.Errorf("district 1 reads %q among its city's children, %q alone", a, b)
	}
	if got := cellTexts(district); got != "<5 suppressed 32" {
		t.Errorf("district 1 reads %q, want its small urban hidden with its rural", got)
	}
}
