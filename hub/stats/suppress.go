package stats

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ComplementMarker is the text shown instead of a cell hidden only so that
// another hidden cell cannot be worked out from the shown ones. It is not
// "<k": such a cell may hold any count, and "<k" would misstate it.
const ComplementMarker = "suppressed"

// Cell is one statistics count as shown to a caller: the count, or a
// marker when it is suppressed. It encodes as a JSON number; as the string
// "<k" (k the minimum cell) when the count itself is small (primary
// suppression); or as "suppressed" when it is hidden to protect another
// cell (complementary suppression), whatever its size.
type Cell struct {
	N             int64 // zero when suppressed
	Suppressed    bool
	Complementary bool // hidden to protect another cell; only with Suppressed
	Min           int  // the minimum cell that suppressed it; zero when Complementary
}

// Shown is a cell that is shown.
func Shown(n int64) Cell { return Cell{N: n} }

// small is a cell hidden because its count is below minCell.
func small(minCell int) Cell { return Cell{Suppressed: true, Min: minCell} }

// complement is a cell hidden to protect another.
var complement = Cell{Suppressed: true, Complementary: true}

// Marker is the text shown instead of a suppressed cell: "<10", or
// "suppressed" for a complementary one.
func (c Cell) Marker() string {
	if c.Complementary {
		return ComplementMarker
	}
	return "<" + strconv.Itoa(c.Min)
}

// MarshalJSON implements json.Marshaler.
func (c Cell) MarshalJSON() ([]byte, error) {
	if c.Suppressed {
		return strconv.AppendQuote(nil, c.Marker()), nil
	}
	return strconv.AppendInt(nil, c.N, 10), nil
}

// UnmarshalJSON reads a number, a "<k" marker or "suppressed".
func (c *Cell) UnmarshalJSON(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, `"`) {
		var m string
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("statistics cell %s: not a suppression marker", s)
		}
		if m == ComplementMarker {
			*c = complement
			return nil
		}
		k, err := strconv.Atoi(strings.TrimPrefix(m, "<"))
		if err != nil || !strings.HasPrefix(m, "<") {
			return fmt.Errorf("statistics cell %s: not a suppression marker", s)
		}
		*c = small(k)
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("statistics cell %s: not a count", s)
	}
	*c = Cell{N: n}
	return nil
}

// Suppress applies small-cell suppression to counts that add up to a
// total shown beside them (urban and rural of a region; the children of a
// region whose own count is shown): every count from 1 to minCell-1 is
// suppressed (zeros are shown), and, because a single suppressed count is
// the total minus the others, when exactly one count is suppressed the
// smallest other non-zero one is suppressed with it (complementary). The
// total is suppressed when it is itself below minCell. minCell < 2
// suppresses nothing. Pure: counts is not modified.
//
// It protects one table at a time; counts published in several tables
// that share cells (a region's row and its children's) need SuppressFamily.
func Suppress(counts []int64, minCell int) (cells []Cell, total Cell) {
	var sum int64
	for _, n := range counts {
		sum += n
	}
	t := table{minCell: minCell}
	line := make([]int, 0, len(counts)+1)
	for _, n := range counts {
		line = append(line, t.add(n, false, Cell{}))
	}
	line = append(line, t.add(sum, false, Cell{}))
	t.lines = [][]int{line}
	t.suppress()
	return t.cells[:len(counts)], t.cells[len(counts)]
}

// SuppressFamily suppresses the cells of a region's children as one
// two-way table with the region's own row (the parent) as its margin: each
// row is a child's counts, each column adds up to the parent's count in it,
// and when totalled, the last count of every row is the sum of the others
// (urban, rural, total). The parent's row is shown as parentCells, decided
// in the table one level up (or by Suppress for a top-level region), and
// is never changed here, so that a region's cells read the same in every
// answer that shows them.
//
// Children's counts from 1 to minCell-1 are suppressed (zeros are shown).
// Then, until nothing changes, every row and every column with exactly one
// hidden cell (the parent's cell counting in its column) gets its smallest
// non-zero shown child cell hidden as complementary: a line with one hidden
// cell gives it away by subtraction, one with two or more does not. A zero
// is never chosen: it protects nothing, since zeros are always shown. Nor is
// a cell whose column is otherwise only zeros and a shown parent cell: it is
// known from the parent, and hiding it would leave that column with one
// hidden cell for good. When the children add up to the parent, every line
// ends with zero or at least two hidden cells.
//
// minCell < 2 shows every cell. Pure: the arguments are not modified. The
// result has one row of cells per child, in order.
func SuppressFamily(parent []int64, parentCells []Cell, children [][]int64, totalled bool, minCell int) [][]Cell {
	t := table{minCell: minCell}
	cols := len(parent)
	margin := make([]int, cols)
	for j, n := range parent {
		margin[j] = t.add(n, true, parentCells[j])
	}
	rows := make([][]int, len(children))
	for i, counts := range children {
		rows[i] = make([]int, cols)
		for j, n := range counts {
			rows[i][j] = t.add(n, false, Cell{})
		}
	}
	if totalled {
		t.lines = append(t.lines, margin)
		t.lines = append(t.lines, rows...)
	}
	for j := range cols {
		col := make([]int, 0, len(children)+1)
		for i := range children {
			col = append(col, rows[i][j])
		}
		t.lines = append(t.lines, append(col, margin[j]))
	}
	t.suppress()
	out := make([][]Cell, len(children))
	for i := range children {
		out[i] = make([]Cell, cols)
		for j := range cols {
			out[i][j] = t.cells[rows[i][j]]
		}
	}
	return out
}

// table is a set of counts tied by lines: each line's counts add up (one
// of them is the sum of the others), so a line with exactly one hidden cell
// gives that cell away.
type table struct {
	minCell int
	counts  []int64
	cells   []Cell
	pinned  []bool // decided elsewhere: neither hidden nor shown here
	lines   [][]int
}

// add adds a count; a pinned one keeps the cell given.
func (t *table) add(n int64, pinned bool, c Cell) int {
	if !pinned {
		c = Cell{N: n}
	}
	t.counts = append(t.counts, n)
	t.cells = append(t.cells, c)
	t.pinned = append(t.pinned, pinned)
	return len(t.counts) - 1
}

// suppress hides the small cells, then complementary ones until every line
// has zero or at least two hidden cells, or no line with one can get a
// second.
func (t *table) suppress() {
	if t.minCell < 2 {
		return
	}
	for i, n := range t.counts {
		if !t.pinned[i] && n > 0 && n < int64(t.minCell) {
			t.cells[i] = small(t.minCell)
		}
	}
	known := t.known()
	for changed := true; changed; {
		changed = false
		for _, line := range t.lines {
			hidden, next := 0, -1
			for _, i := range line {
				switch {
				case t.cells[i].Suppressed:
					hidden++
				case t.pinned[i] || t.counts[i] == 0 || known[i]:
				case next < 0 || t.counts[i] < t.counts[next]:
					next = i
				}
			}
			if hidden == 1 && next >= 0 {
				t.cells[next] = complement
				changed = true
			}
		}
	}
}

// known marks the cells that are never worth hiding: those in a line whose
// other cells are all zero or pinned shown, so they can be worked out
// whatever else is hidden.
func (t *table) known() []bool {
	fixed := func(i int) bool { return t.counts[i] == 0 || t.pinned[i] && !t.cells[i].Suppressed }
	known := make([]bool, len(t.counts))
	for _, line := range t.lines {
		open := -1
		for _, i := range line {
			if !fixed(i) {
				if open >= 0 {
					open = -2
					break
				}
				open = i
			}
		}
		if open >= 0 {
			known[open] = true
		}
	}
	return known
}

// Family is a region's row of counts with its direct children's rows, one
// step of a lineage for SuppressLineage.
type Family struct {
	Own      []int64   // the region's row
	Children [][]int64 // its direct children's rows, in code order
	Next     int       // the index in Children of the lineage's next region
}

// SuppressLineage shows the last region of a lineage and its children to a
// caller with a minimum cell. lineage runs from a top-level region (one
// with no parent in the region table) down to the region asked for, each
// family holding the next region among its children; the last family's
// Children are the ones to show, if any.
//
// A region's row is decided once, in its parent's family table
// (SuppressFamily), and a top-level region's by Suppress alone; each
// family's table is built with its parent row as decided one level up. So
// a region's cells read the same whether it is asked for alone, with its
// children, or listed as a child, and no answer's shown cells work out a
// hidden one that another answer hid. When totalled, a row's last count
// is the sum of the others. Pure.
func SuppressLineage(lineage []Family, totalled bool, minCell int) (own []Cell, children [][]Cell) {
	top := lineage[0].Own
	if totalled {
		cells, total := Suppress(top[:len(top)-1], minCell)
		own = append(cells, total)
	} else {
		own = make([]Cell, len(top))
		for j, n := range top {
			_, own[j] = Suppress([]int64{n}, minCell)
		}
	}
	for i, f := range lineage {
		if i == len(lineage)-1 && len(f.Children) == 0 {
			break
		}
		cells := SuppressFamily(f.Own, own, f.Children, totalled, minCell)
		if i == len(lineage)-1 {
			return own, cells
		}
		own = cells[f.Next]
	}
	return own, nil
}
