package stats

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
		// The minimum is the smallest count published: only counts below it are hidden.
		{"a cell at the minimum is shown", []int64{10, 40}, 10, "10 40", "50"},
		{"one small pulls the smallest other", []int64{3, 40, 12}, 10, "<10 40 suppressed", "55"},
		{"a zero protects nothing", []int64{3, 0, 40}, 10, "<10 0 suppressed", "43"},
		{"two small", []int64{3, 4, 50}, 10, "<10 <10 50", "57"},
		{"zeros shown", []int64{0, 50}, 10, "0 50", "50"},
		{"small total", []int64{2, 3}, 10, "<10 <10", "<10"},
		// Shown as <10 <10 50 of 52, the pair adds up to 2: both are 1.
		{"a pair whose sum gives it away gets a third", []int64{1, 1, 50}, 10, "<10 <10 suppressed", "52"},
		// Shown as <5 <5 of 8, each is at most 4: both are 4.
		{"a pair at its markers' limit hides the total", []int64{4, 4}, 5, "<5 <5", "suppressed"},
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
			// Shown as <10 suppressed 16 twice and 49 0 49, the urban
			// column leaves 2 for the two small cells: both are 1. The
			// totals, then the 49s, are hidden beside them.
			name:     "a column whose small cells add up to the least they can",
			parent:   urbanRural(51, 30),
			children: [][]int64{urbanRural(1, 15), urbanRural(1, 15), urbanRural(49, 0)},
			min:      10,
			want:     []string{"<10 suppressed suppressed", "<10 suppressed suppressed", "suppressed 0 suppressed"},
		},
		{
			// Shown as <5 <5 8, the row's small cells add up to 8: both
			// are 4.
			name:     "a row whose small cells add up to the most they can",
			parent:   urbanRural(20, 17),
			children: [][]int64{urbanRural(4, 4), urbanRural(15, 4), urbanRural(1, 9)},
			min:      5,
			want:     []string{"<5 <5 suppressed", "suppressed <5 19", "<5 suppressed suppressed"},
		},
		{
			// Child 0's total would protect the total column, but its
			// row's rural 14 is known from the parent (the only rural
			// residents): hidden, the total would be 0 + 14 for good.
			name:     "a complement needs a line that can take a second",
			parent:   urbanRural(20, 14),
			children: [][]int64{urbanRural(0, 14), urbanRural(1, 0), urbanRural(19, 0)},
			min:      5,
			want:     []string{"0 14 14", "<5 0 <5", "suppressed 0 suppressed"},
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

// TestSuppressLineageGivesNothingAway: over random regions with mostly
// small counts, a caller who reads a lineage's answers (the top region's
// row, then each family's table) and narrows every hidden cell's range by
// its marker and the lines' sums cannot pin a hidden count to one value,
// and no line keeps exactly one hidden cell, unless the family had nothing
// left to hide: then the parent's row, decided one level up, gives it away.
func TestSuppressLineageGivesNothingAway(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lastResort, audited := 0, 0
	for iter := range 3000 {
		k := 3 + rng.IntN(8)
		count := func() int64 {
			switch rng.IntN(5) {
			case 0:
				return 0
			case 1, 2:
				return int64(1 + rng.IntN(k-1))
			default:
				return int64(k + rng.IntN(3*k))
			}
		}
		family := func(n int) (own []int64, children [][]int64) {
			own = make([]int64, 3)
			for range n {
				row := urbanRural(count(), count())
				children = append(children, row)
				for j := range own {
					own[j] += row[j]
				}
			}
			return own, children
		}
		// Two levels: a top region, its children, and one child's own.
		top, cities := family(2 + rng.IntN(4))
		next := rng.IntN(len(cities))
		districts := make([][]int64, 0)
		if rng.IntN(2) == 0 {
			var own []int64
			own, districts = family(1 + rng.IntN(5))
			copy(cities[next], own)
			top = urbanRural(0, 0)
			for _, c := range cities {
				top[0], top[1], top[2] = top[0]+c[0], top[1]+c[1], top[2]+c[2]
			}
		}
		lineage := []Family{{Own: top, Children: cities, Next: next}, {Own: cities[next], Children: districts}}
		topCells, _ := SuppressLineage(lineage[:1], true, k)
		_, cityCells := SuppressLineage([]Family{{Own: top, Children: cities}}, true, k)
		_, districtCells := SuppressLineage(lineage, true, k)

		var a attack
		a.k = k
		topRow := a.row(top, topCells)
		cityRows := make([][]int, len(cities))
		for i := range cities {
			cityRows[i] = a.row(cities[i], cityCells[i])
		}
		districtRows := make([][]int, len(districts))
		for i := range districts {
			districtRows[i] = a.row(districts[i], districtCells[i])
		}
		a.decided([][]int{topRow})
		a.decided(cityRows)
		a.decided(districtRows)
		a.family(topRow, cityRows)
		if len(districts) > 0 {
			a.family(cityRows[next], districtRows)
		}
		a.line(topRow)
		a.narrow()
		name := fmt.Sprintf("iteration %d, k=%d: top %v cities %v districts of %d %v", iter, k, top, cities, next, districts)
		// A table may leave a cell given away only when it hid every
		// non-zero cell it could; what its pinned parent row then gives
		// away also reaches the tables above, so such lineages are only
		// counted.
		if a.allHidden([][]int{topRow}) || a.allHidden(cityRows) || a.allHidden(districtRows) {
			lastResort++
		} else {
			for c, cell := range a.cells {
				audited++
				if cell.Suppressed && a.lo[c] == a.hi[c] {
					t.Errorf("%s: a hidden cell %s (%d) is worked out", name, cellTexts([]Cell{cell}), a.lo[c])
				}
			}
		}
		for _, l := range a.lines {
			hidden := 0
			for _, c := range l {
				if a.cells[c].Suppressed {
					hidden++
				}
			}
			if hidden == 1 && !a.allHidden([][]int{l[:len(l)-1]}) {
				t.Errorf("%s: a line %v has one hidden cell", name, a.texts(l))
			}
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d cells audited; %d lineages had a table hide every non-zero cell", audited, lastResort)
}

// attack is what a caller can work out from the cells shown, written apart
// from table.bounds so that each checks the other: every line's last cell
// is the sum of the others; a shown cell is its count, "<k" is 1..k-1,
// "suppressed" is k or more where the rows decided with it show a "<k",
// 0 or more where they show nothing but "suppressed" and zeros, and 1 or
// more otherwise.
type attack struct {
	k      int
	counts []int64
	cells  []Cell
	floor  []int64 // the least a "suppressed" here holds; k unless decided says otherwise
	lines  [][]int
	lo, hi []int64
}

// decided marks rows decided together: when none reads "<k", each of
// their "suppressed" cells is known only to be non-zero, or, when they
// show nothing else but zeros, not negative.
func (a *attack) decided(rows [][]int) {
	floor := int64(0)
	for _, row := range rows {
		for _, c := range row {
			switch cell := a.cells[c]; {
			case cell.Suppressed && !cell.Complementary:
				return
			case !cell.Suppressed && cell.N != 0:
				floor = 1
			}
		}
	}
	for _, row := range rows {
		for _, c := range row {
			a.floor[c] = floor
		}
	}
}

// row adds a row of cells and returns their indexes.
func (a *attack) row(counts []int64, cells []Cell) []int {
	idx := make([]int, len(cells))
	for j, c := range cells {
		idx[j] = len(a.cells)
		a.counts = append(a.counts, counts[j])
		a.cells = append(a.cells, c)
		a.floor = append(a.floor, int64(a.k))
	}
	return idx
}

// line adds a line: its last cell is the sum of the others.
func (a *attack) line(cells []int) { a.lines = append(a.lines, cells) }

// family adds the rows and columns of a parent row and its children.
func (a *attack) family(parent []int, children [][]int) {
	for _, row := range children {
		a.line(row)
	}
	for j := range parent {
		var col []int
		for _, row := range children {
			col = append(col, row[j])
		}
		a.line(append(col, parent[j]))
	}
}

// narrow narrows every cell's range until nothing moves.
func (a *attack) narrow() {
	a.lo = make([]int64, len(a.cells))
	a.hi = make([]int64, len(a.cells))
	for i, c := range a.cells {
		switch {
		case !c.Suppressed:
			a.lo[i], a.hi[i] = c.N, c.N
		case c.Complementary:
			a.lo[i], a.hi[i] = a.floor[i], 1<<40
		default:
			a.lo[i], a.hi[i] = 1, int64(c.Min-1)
		}
	}
	for moved := true; moved; {
		moved = false
		for _, l := range a.lines {
			for x, c := range l {
				// c = sum - others when c is a part, or the sum of the parts.
				var lo, hi int64
				for y, o := range l {
					switch {
					case y == x:
					case x == len(l)-1:
						lo, hi = lo+a.lo[o], hi+a.hi[o]
					case y == len(l)-1:
						lo, hi = lo+a.lo[o], hi+a.hi[o]
					default:
						lo, hi = lo-a.hi[o], hi-a.lo[o]
					}
				}
				if lo > a.lo[c] {
					a.lo[c], moved = lo, true
				}
				if hi < a.hi[c] {
					a.hi[c], moved = hi, true
				}
			}
		}
	}
}

// allHidden reports whether every non-zero cell of rows is hidden.
func (a *attack) allHidden(rows [][]int) bool {
	any := false
	for _, row := range rows {
		for _, c := range row {
			any = true
			if a.counts[c] != 0 && !a.cells[c].Suppressed {
				return false
			}
		}
	}
	return any
}

func (a *attack) texts(l []int) string {
	var cells []Cell
	for _, c := range l {
		cells = append(cells, a.cells[c])
	}
	return cellTexts(cells)
}

// BenchmarkSuppressFamily: a town's children list is about 30 rows and a
// province's about 100 (cities and counties); 100 rows of mostly small
// counts is well above the first. The tiny counts, every one of them below
// k, are the slowest case: the table starts again with one marker and
// ends hiding every cell.
func BenchmarkSuppressFamily(b *testing.B) {
	for _, bc := range []struct {
		name string
		rows int
		max  int64 // counts 0 to max-1
	}{
		{"100 rows of 0-14", 100, 15},
		{"100 rows of 0-3", 100, 4},
		{"100 rows of 0-40", 100, 41},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			parent := make([]int64, 3)
			children := make([][]int64, bc.rows)
			for i := range children {
				children[i] = urbanRural(rng.Int64N(bc.max), rng.Int64N(bc.max))
				for j := range parent {
					parent[j] += children[i][j]
				}
			}
			parentCells := []Cell{Shown(parent[0]), Shown(parent[1]), Shown(parent[2])}
			for b.Loop() {
				SuppressFamily(parent, parentCells, children, true, 10)
			}
		})
	}
}
