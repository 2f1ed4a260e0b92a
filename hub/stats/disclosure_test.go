package stats

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSuppressTreeTableGivesNoCellAway checks the promise that no hidden
// cell of one table (a region's row with its children's rows, urban, rural
// and total) can be worked out from that table's shown cells and the
// markers' ranges. Unlike the interval reasoning of the audit and of
// attack, it lists every set of counts that fits what a caller sees and
// reports a hidden cell that only one count fits: a shown cell is its
// count; "<k" is 1 to k-1; "suppressed" is k or more when the rows decided
// with it (the region's own row, or all its children's rows) show a "<k",
// any count from 0 up when they show nothing but "suppressed" and zeros,
// and any count from 1 up otherwise (zeros being shown); every row's total is its
// urban plus its rural count; the children's rows add up to the region's.
// It also counts the tables that changed marker: a small count shown as
// "suppressed".
func TestSuppressTreeTableGivesNoCellAway(t *testing.T) {
	tests := []struct {
		name     string
		k        int
		trees    int
		children [2]int // from, to
		grand    [2]int // children of each child: from, to (0: none)
		count    func(rng *rand.Rand, k int) int64
	}{
		// Urban and rural 0-8, a third of urban counts zero: the tables
		// where a region's shown row fixes a column of two children.
		{"towns of 2-3 villages, k=5", 5, 4000, [2]int{2, 3}, [2]int{0, 0}, uniform(9, 3)},
		{"towns of 2-4 villages, k=3", 3, 2000, [2]int{2, 4}, [2]int{0, 0}, uniform(7, 3)},
		{"towns of 2-4 villages, k=10", 10, 2000, [2]int{2, 4}, [2]int{0, 0}, skewed},
		{"many small villages, k=5", 5, 1000, [2]int{5, 7}, [2]int{0, 0}, uniform(3, 2)},
		// Two levels: the children's tables have their parent row fixed
		// by the table above, whose markers may be plain.
		{"counties of 2-3 towns of 2-3 villages, k=5", 5, 1500, [2]int{2, 3}, [2]int{2, 3}, uniform(6, 3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tc.k)))
			tables, plain, bare, skipped := 0, 0, 0, 0
			for n := range tc.trees {
				tree := Tree{Own: make([]int64, 3)}
				for range tc.children[0] + rng.IntN(tc.children[1]-tc.children[0]+1) {
					child := Tree{Own: make([]int64, 3)}
					if tc.grand[1] > 0 {
						for range tc.grand[0] + rng.IntN(tc.grand[1]-tc.grand[0]+1) {
							row := urbanRural(tc.count(rng, tc.k), tc.count(rng, tc.k))
							child.Children = append(child.Children, Tree{Own: row})
							addRow(child.Own, row)
						}
					} else {
						child.Own = urbanRural(tc.count(rng, tc.k), tc.count(rng, tc.k))
					}
					tree.Children = append(tree.Children, child)
					addRow(tree.Own, child.Own)
				}
				shown := SuppressTree(nil, tree, true, tc.k)

				// The region's own row is decided alone; each region's
				// children's rows together.
				check := func(name string, own []int64, ownCells []Cell, ownFloor int64, kids []Tree, kidCells []ShownTree) {
					ex := exactTable{k: int64(tc.k), own: own, ownCells: ownCells, ownFloor: ownFloor}
					for i, c := range kids {
						ex.rows = append(ex.rows, c.Own)
						ex.cells = append(ex.cells, kidCells[i].Own)
					}
					ex.floor = complementFloor(tc.k, ex.cells...)
					if !ex.enumerate() {
						skipped++
						return
					}
					tables++
					switch {
					case ex.floor == 0 && ex.anySmall():
						bare++
					case ex.floor == 1 && ex.anySmall():
						plain++
					}
					if exact := ex.given(); len(exact) > 0 {
						t.Errorf("%s (tree %d), %s: %s: region %v %s, children %v %s", tc.name, n, name, exact[0], own, cellTexts(ownCells), ex.rows, ex.texts())
					}
				}
				check("the region's table", tree.Own, shown.Own, complementFloor(tc.k, shown.Own), tree.Children, shown.Children)
				kidsFloor := complementFloor(tc.k, shownRows(shown.Children)...)
				for i, c := range tree.Children {
					if len(c.Children) > 0 {
						check(fmt.Sprintf("child %d's table", i), c.Own, shown.Children[i].Own, kidsFloor, c.Children, shown.Children[i].Children)
					}
				}
				if t.Failed() {
					return
				}
			}
			t.Logf("%d tables listed (%d too wide to list), none gives a cell away; %d show a small count as \"suppressed\" beside shown non-zero counts, %d show nothing but \"suppressed\" and zeros", tables, skipped, plain, bare)
		})
	}
}

// uniform draws counts 0 to n-1, one in zeroIn of them zero as well.
func uniform(n, zeroIn int) func(*rand.Rand, int) int64 {
	return func(rng *rand.Rand, _ int) int64 {
		if rng.IntN(zeroIn) == 0 {
			return 0
		}
		return int64(rng.IntN(n))
	}
}

// skewed draws zeros, small counts and counts a little above k.
func skewed(rng *rand.Rand, k int) int64 {
	switch rng.IntN(5) {
	case 0:
		return 0
	case 1, 2:
		return int64(1 + rng.IntN(k-1))
	default:
		return int64(k + rng.IntN(4))
	}
}

func addRow(sum, row []int64) {
	for j := range sum {
		sum[j] += row[j]
	}
}

// complementFloor is the least count a caller knows a "suppressed" cell of
// rows decided together to hold: k when they show a "<k" too; 0 when they
// show nothing but "suppressed" and zeros (zeros may be hidden then); else
// 1, zeros being shown.
func complementFloor(k int, rows ...[]Cell) int64 {
	bare := true
	for _, row := range rows {
		for _, c := range row {
			if c.Suppressed && !c.Complementary {
				return int64(k)
			}
			if !c.Suppressed && c.N != 0 {
				bare = false
			}
		}
	}
	if bare {
		return 0
	}
	return 1
}

func shownRows(ts []ShownTree) [][]Cell {
	rows := make([][]Cell, len(ts))
	for i, c := range ts {
		rows[i] = c.Own
	}
	return rows
}

// exactTable lists what a caller can know of one table: the region's row
// (own) over its children's rows, urban, rural, total.
type exactTable struct {
	k        int64
	own      []int64
	ownCells []Cell
	ownFloor int64 // the least a "suppressed" of the region's row holds
	rows     [][]int64
	cells    [][]Cell
	floor    int64 // the least a "suppressed" of the children's rows holds

	// Filled by enumerate: every count each hidden cell can take.
	ownFits  [3]map[int64]bool
	rowsFits [][3]map[int64]bool
}

// fits reports whether count v reads as c, "suppressed" being floor or
// more.
func (e *exactTable) fits(c Cell, floor int64, v int64) bool {
	switch {
	case !c.Suppressed:
		return c.N == v
	case c.Complementary:
		return v >= floor
	default:
		return v >= 1 && v < int64(c.Min)
	}
}

// maxWidth bounds the urban and rural counts enumerated (a hidden region
// cell is tried up to its count plus a margin, which can only make a cell
// look more given away than it is).
const maxWidth = 48

// enumerate fills the fits; false when the table is too wide to list.
func (e *exactTable) enumerate() bool {
	var capOf [2]int64
	for j := range 2 {
		capOf[j] = e.own[j]
		if e.ownCells[j].Suppressed || e.ownCells[2].Suppressed {
			capOf[j] += 2*e.k + 4
		}
		if capOf[j] > maxWidth {
			return false
		}
	}
	w, h := capOf[0]+1, capOf[1]+1
	at := func(u, r int64) int64 { return u*h + r }
	// The pairs (urban, rural) each row can be.
	cands := make([][][2]int64, len(e.rows))
	for i, cells := range e.cells {
		for u := range w {
			for r := range h {
				if e.fits(cells[0], e.floor, u) && e.fits(cells[1], e.floor, r) && e.fits(cells[2], e.floor, u+r) {
					cands[i] = append(cands[i], [2]int64{u, r})
				}
			}
		}
	}
	// Sums of the first i rows (forward) and of rows i on (backward).
	n := len(e.rows)
	sums := func(from, to, step int) [][]bool {
		out := make([][]bool, n+1)
		start := from
		out[start] = make([]bool, w*h)
		out[start][0] = true
		for i := from; i != to; i += step {
			row := i
			if step < 0 {
				row = i - 1
			}
			next := make([]bool, w*h)
			for s, ok := range out[i] {
				if !ok {
					continue
				}
				su, sr := int64(s)/h, int64(s)%h
				for _, c := range cands[row] {
					if su+c[0] < w && sr+c[1] < h {
						next[at(su+c[0], sr+c[1])] = true
					}
				}
			}
			out[i+step] = next
		}
		return out
	}
	fwd, bwd := sums(0, n, 1), sums(n, 0, -1)
	// The region's rows that fit its cells and some children's rows.
	own := make([]bool, w*h)
	for s, ok := range fwd[n] {
		u, r := int64(s)/h, int64(s)%h
		if ok && e.fits(e.ownCells[0], e.ownFloor, u) && e.fits(e.ownCells[1], e.ownFloor, r) && e.fits(e.ownCells[2], e.ownFloor, u+r) {
			own[s] = true
			e.ownFits = note(e.ownFits, u, r)
		}
	}
	e.rowsFits = make([][3]map[int64]bool, n)
	for i := range n {
		// rest: the sums the other rows can leave for row i, given a
		// region's row that fits.
		rest := make([]bool, w*h)
		for s, ok := range own {
			if !ok {
				continue
			}
			u, r := int64(s)/h, int64(s)%h
			for b, ok := range bwd[i+1] {
				bu, br := int64(b)/h, int64(b)%h
				if ok && bu <= u && br <= r {
					rest[at(u-bu, r-br)] = true
				}
			}
		}
		for _, c := range cands[i] {
			for f, ok := range fwd[i] {
				fu, fr := int64(f)/h, int64(f)%h
				if ok && fu+c[0] < w && fr+c[1] < h && rest[at(fu+c[0], fr+c[1])] {
					e.rowsFits[i] = note(e.rowsFits[i], c[0], c[1])
					break
				}
			}
		}
	}
	return true
}

// note records that a row can be (u, r, u+r).
func note(fits [3]map[int64]bool, u, r int64) [3]map[int64]bool {
	for j, v := range [3]int64{u, r, u + r} {
		if fits[j] == nil {
			fits[j] = map[int64]bool{}
		}
		fits[j][v] = true
	}
	return fits
}

// given lists the hidden cells only one count fits.
func (e *exactTable) given() []string {
	var out []string
	one := func(c Cell, fits map[int64]bool) bool { return c.Suppressed && len(fits) == 1 }
	for j, c := range e.ownCells {
		if one(c, e.ownFits[j]) {
			out = append(out, fmt.Sprintf("the region's cell %d (%s) is %v", j, cellTexts([]Cell{c}), keys(e.ownFits[j])))
		}
	}
	for i, cells := range e.cells {
		for j, c := range cells {
			if one(c, e.rowsFits[i][j]) {
				out = append(out, fmt.Sprintf("child %d's cell %d (%s) is %v", i, j, cellTexts([]Cell{c}), keys(e.rowsFits[i][j])))
			}
		}
	}
	return out
}

// anySmall reports whether the children's rows hold a count below k.
func (e *exactTable) anySmall() bool {
	for _, row := range e.rows {
		for _, n := range row {
			if n > 0 && n < e.k {
				return true
			}
		}
	}
	return false
}

func (e *exactTable) texts() string {
	var s []string
	for _, c := range e.cells {
		s = append(s, cellTexts(c))
	}
	return fmt.Sprint(s)
}

func keys(m map[int64]bool) []int64 {
	var out []int64
	for v := range m {
		out = append(out, v)
	}
	return out
}
