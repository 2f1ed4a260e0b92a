package stats

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ComplementMarker is the text shown instead of a cell hidden so that
// another hidden cell cannot be worked out from the shown ones. Where the
// cells decided together (a region's own row, or its children's rows) show
// a "<k" too, it holds k or more: a smaller count would read "<k", and
// zeros are shown. Where the "<k" and "suppressed" ranges together would
// give a count away and hiding more cannot stop it, every hidden cell
// decided there reads "suppressed", small ones included, and is then any
// count from 1 up (see table.suppress).
const ComplementMarker = "suppressed"

// Cell is one statistics count as shown to a caller: the count, or a
// marker when it is suppressed. It encodes as a JSON number; as the string
// "<k" (k the minimum cell) when the count itself is small (primary
// suppression); or as "suppressed" when it is hidden to protect another
// cell (complementary suppression), whatever its size, or when it is small
// in a table whose "<k" markers would give a count away (see
// ComplementMarker).
type Cell struct {
	N             int64 // zero when suppressed
	Suppressed    bool
	Complementary bool // shown as "suppressed"; only with Suppressed
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
// total is suppressed when it is itself below minCell. The result is then
// audited as SuppressFamily's is: while the markers' ranges and the total
// pin a hidden count to one value (<10 <10 50 of 52: both are 1), one more
// cell is hidden, and when none can be, every hidden cell reads
// "suppressed", then, as a last resort, every cell. minCell < 2 suppresses
// nothing. Pure: counts is not modified.
//
// It protects one table at a time; counts published in several tables
// that share cells (a region's row and its children's) need SuppressFamily.
func Suppress(counts []int64, minCell int) (cells []Cell, total Cell) {
	cells, total, _ = suppressLine(counts, minCell)
	return cells, total
}

// suppressLine is Suppress, with the range a caller can narrow each cell
// to (the counts', then the total's), for the tables below it.
func suppressLine(counts []int64, minCell int) (cells []Cell, total Cell, ranges []span) {
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
	lo, hi := t.bounds()
	ranges = make([]span, len(line))
	for x, i := range line {
		ranges[x] = span{lo[i], hi[i]}
	}
	return t.cells[:len(counts)], t.cells[len(counts)], ranges
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
// hidden cell for good; nor a cell whose other line has no hidden cell and
// nothing else to hide, for the same reason.
//
// Two hidden cells can still give each other away through their markers'
// ranges ("<k" is 1 to k-1, "suppressed" k or more): <10 and <10 in a
// column that leaves 2 for them are both 1. So the pattern is audited as a
// caller would read it (table.audit): while a hidden cell's range narrows
// to one value, the smallest cell worth hiding in one of its lines is
// hidden too and the lines are completed again. When no line of such a
// cell can hide more (the parent's row, decided one level up, fixes the
// lines' sums: a "<5" and a "suppressed" in a column the parent shows as 6
// are 1 and 5), the children's cells are suppressed again from their small
// ones with one marker, every hidden cell reading "suppressed" (any count
// from 1 up, to a caller); if even that gives a cell away, every child cell
// is hidden, zeros too (any count from 0 up), except the zeros of a column
// the parent shows as 0. So no hidden cell of the table can be worked out
// from its shown cells and the markers' ranges, unless the parent's row
// brings it from above (a parent's cell known exactly, or a single child's
// row, which is its parent's). When the children add up to the parent,
// every line otherwise ends with zero or at least two hidden cells.
//
// minCell < 2 shows every cell. Pure: the arguments are not modified. The
// result has one row of cells per child, in order.
func SuppressFamily(parent []int64, parentCells []Cell, children [][]int64, totalled bool, minCell int) [][]Cell {
	cells, _ := suppressFamily(parent, parentCells, nil, children, totalled, minCell)
	return cells
}

// suppressFamily is SuppressFamily, where a caller may already know the
// parent's cells to be within parentRanges (nil: only what their markers
// say), as the parent's own table shows them. It returns the range a caller
// can narrow each child's cells to, for the tables below.
func suppressFamily(parent []int64, parentCells []Cell, parentRanges []span, children [][]int64, totalled bool, minCell int) ([][]Cell, [][]span) {
	t := table{minCell: minCell}
	cols := len(parent)
	margin := make([]int, cols)
	for j, n := range parent {
		margin[j] = t.add(n, true, parentCells[j])
		if parentRanges != nil {
			if t.given == nil {
				t.given = make(map[int]span, cols)
			}
			t.given[margin[j]] = parentRanges[j]
		}
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
	lo, hi := t.bounds()
	out := make([][]Cell, len(children))
	ranges := make([][]span, len(children))
	for i := range children {
		out[i] = make([]Cell, cols)
		ranges[i] = make([]span, cols)
		for j, c := range rows[i] {
			out[i][j] = t.cells[c]
			ranges[i][j] = span{lo[c], hi[c]}
		}
	}
	return out, ranges
}

// span is the range of counts a caller can narrow a cell to.
type span struct{ lo, hi int64 }

// table is a set of counts tied by lines: the last cell of each line is
// the sum of the others, so a line with exactly one hidden cell gives that
// cell away, and the markers' ranges can give away more (see audit).
type table struct {
	minCell int
	counts  []int64
	cells   []Cell
	pinned  []bool       // decided elsewhere: neither hidden nor shown here
	given   map[int]span // pinned cells a caller knows more of, from their own table
	lines   [][]int

	// plain is set when the two markers' ranges would give a hidden cell
	// away whatever else is hidden: every cell hidden here then reads
	// "suppressed", and a caller knows of each only that it is not zero.
	plain bool
	// bare is set when even that gives a cell away: every cell decided
	// here is hidden, zeros too, and a caller knows of each only that it
	// is not negative.
	bare bool

	// Filled by index, once the primary cells are hidden.
	linesOf [][]int // the lines each cell is in
	hidden  []int   // hidden cells per line
	known   []bool  // cells never worth hiding (see markKnown)
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
// has zero or at least two hidden cells (or no line with one can get a
// second), and then audits the pattern: while the markers' ranges give a
// hidden cell's count away, it hides one more cell beside it and starts
// again.
//
// When no line of such a cell can hide more, it is mostly the markers that
// give it away, with the parent's row, decided one level up, fixing the
// lines' sums: in a column the parent shows as 6, a "<5" and a
// "suppressed" beside it are 1 and 5. Then the table starts again from its
// small cells with one marker: every cell it hides reads "suppressed",
// which a caller can narrow only to "not zero", so a small count and a
// large one beside it look alike. If a hidden cell is still given away
// then, it is because zeros are shown: hidden cells that must each be at
// least 1 add up to all their line allows (five hidden cells in a column
// the parent shows as 5 are all 1). So the last resort hides every cell
// decided here, zeros included (hideAll): each is then any count from 0
// up, and with two or more children no cell of theirs is pinned by the
// parent's row unless the parent's row is itself known exactly from the
// table above it.
//
// Each round hides at least one more cell, and the restart happens once,
// so it ends.
func (t *table) suppress() {
	if t.minCell < 2 {
		return
	}
	t.hidePrimary()
	t.index()
	for {
		t.complete()
		exact := t.audit()
		if len(exact) == 0 {
			return
		}
		if t.hideBeside(exact) {
			continue
		}
		if !t.plain {
			t.plain = true
			t.hidePrimary()
			t.index()
			continue
		}
		t.hideAll()
		return
	}
}

// hidePrimary shows every cell decided here but the small ones, which it
// hides: as "<k", or as "suppressed" in a plain table.
func (t *table) hidePrimary() {
	for i, n := range t.counts {
		switch {
		case t.pinned[i]:
		case n > 0 && n < int64(t.minCell) && t.plain:
			t.cells[i] = complement
		case n > 0 && n < int64(t.minCell):
			t.cells[i] = small(t.minCell)
		default:
			t.cells[i] = Cell{N: n}
		}
	}
}

// index fills linesOf, hidden and known.
func (t *table) index() {
	t.linesOf = make([][]int, len(t.cells))
	t.hidden = make([]int, len(t.lines))
	for l, line := range t.lines {
		for _, i := range line {
			t.linesOf[i] = append(t.linesOf[i], l)
			if t.cells[i].Suppressed {
				t.hidden[l]++
			}
		}
	}
	t.markKnown()
}

// hide hides cell i as complementary.
func (t *table) hide(i int) {
	t.cells[i] = complement
	for _, l := range t.linesOf[i] {
		t.hidden[l]++
	}
}

// complete gives every line with one hidden cell a second, its smallest
// cell worth hiding, until nothing changes.
func (t *table) complete() {
	for changed := true; changed; {
		changed = false
		for l, line := range t.lines {
			if t.hidden[l] != 1 {
				continue
			}
			if next := t.smallestHideable(line, -1); next >= 0 {
				t.hide(next)
				changed = true
			}
		}
	}
}

// smallestHideable is the hideable cell of line with the smallest count
// (the first of equals), other than skip; -1 when there is none.
func (t *table) smallestHideable(line []int, skip int) int {
	best := -1
	for _, i := range line {
		if i != skip && t.hideable(i) && (best < 0 || t.counts[i] < t.counts[best]) {
			best = i
		}
	}
	return best
}

// hideable reports whether cell i is worth hiding as a complement: shown,
// decided here, not zero (zeros are always shown, so a hidden one protects
// nothing), not known whatever else is hidden, and not the only cell that
// could be hidden in a line with none hidden yet: hiding it would leave
// that line with one hidden cell for good, plainly the line's sum minus
// the others.
func (t *table) hideable(i int) bool {
	if !t.open(i) {
		return false
	}
	for _, l := range t.linesOf[i] {
		if t.hidden[l] == 0 && !t.hasOpen(t.lines[l], i) {
			return false
		}
	}
	return true
}

// open reports whether cell i could be hidden at all.
func (t *table) open(i int) bool {
	return !t.cells[i].Suppressed && !t.pinned[i] && t.counts[i] != 0 && !t.known[i]
}

// hasOpen reports whether line has a cell other than skip that could be
// hidden.
func (t *table) hasOpen(line []int, skip int) bool {
	for _, i := range line {
		if i != skip && t.open(i) {
			return true
		}
	}
	return false
}

// markKnown marks the cells that are never worth hiding: those in a line
// whose other cells are all zero or pinned shown, so they can be worked out
// whatever else is hidden.
func (t *table) markKnown() {
	fixed := func(i int) bool { return t.counts[i] == 0 || t.pinned[i] && !t.cells[i].Suppressed }
	t.known = make([]bool, len(t.counts))
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
			t.known[open] = true
		}
	}
}

// hideBeside hides one more cell in a line of a cell given away: the
// smallest hideable cell of those lines, trying the given-away cells in
// order. It reports false when none of their lines has one.
func (t *table) hideBeside(exact []int) bool {
	for _, e := range exact {
		best := -1
		for _, l := range t.linesOf[e] {
			if i := t.smallestHideable(t.lines[l], -1); i >= 0 && (best < 0 || t.counts[i] < t.counts[best]) {
				best = i
			}
		}
		if best >= 0 {
			t.hide(best)
			return true
		}
	}
	return false
}

// hideAll is the last resort when a hidden cell is still given away with
// one marker and no line of it can hide another cell: every cell decided
// here is hidden as "suppressed", zeros included, and the table is bare;
// only the zeros of a line whose sum the parent's row shows as 0 stay
// shown, since hiding them could not make them anything else. The pinned
// cells stay as decided elsewhere.
func (t *table) hideAll() {
	t.bare = true
	for i := range t.cells {
		if t.pinned[i] || t.underZero(i) {
			continue
		}
		if !t.cells[i].Suppressed {
			t.hide(i)
		}
		t.cells[i] = complement
	}
}

// underZero reports whether cell i is in a line whose sum is decided
// elsewhere and shown as 0.
func (t *table) underZero(i int) bool {
	for _, l := range t.linesOf[i] {
		sum := t.lines[l][len(t.lines[l])-1]
		if sum != i && t.pinned[sum] && !t.cells[sum].Suppressed && t.cells[sum].N == 0 {
			return true
		}
	}
	return false
}

// unbounded stands for "no upper bound known" in the audit: far above any
// population count, and far enough below the int64 limit that sums of a
// table's bounds cannot overflow.
const unbounded = int64(1) << 40

// auditSweeps caps the audit's passes over the lines. Bounds in these
// small tables settle within a few passes; a capped audit only leaves some
// bounds wider than an attacker could make them.
const auditSweeps = 64

// audit returns the hidden cells whose count the table gives away, in
// table order. It works out what a caller can: each hidden cell's range
// from its marker ("<k" is 1..k-1, zeros being shown; "suppressed" is k or
// more, since a smaller count would read "<k", or 1 or more in a plain
// table, or 0 or more in a bare one), narrowed by interval propagation over
// every line (the line's sum is the sum of the others' ranges, each other
// cell is the sum minus the rest) until no bound moves. A cell is given away when its range is one
// value, except a "<2", which its marker alone gives away and nothing
// hidden beside it can protect, and a parent's cell that a caller already
// knows exactly from its own table, which nothing here can protect either.
func (t *table) audit() []int {
	lo, hi := t.bounds()
	var exact []int
	for i, c := range t.cells {
		if !c.Suppressed || lo[i] != hi[i] || !c.Complementary && c.Min == 2 {
			continue
		}
		if g, ok := t.given[i]; ok && g.lo == g.hi {
			continue
		}
		exact = append(exact, i)
	}
	return exact
}

// bounds is each cell's range as a caller can narrow it (see audit). A
// line whose cells do not add up (the children of a region need not cover
// it) bounds only from above: its cells are at most the sum less the
// others.
func (t *table) bounds() (lo, hi []int64) {
	lo = make([]int64, len(t.cells))
	hi = make([]int64, len(t.cells))
	for i, c := range t.cells {
		g, given := t.given[i]
		switch {
		case !c.Suppressed:
			lo[i], hi[i] = c.N, c.N
		case given:
			// The parent's table's own bounds, which read its markers
			// as that table showed them (plain or not).
			lo[i], hi[i] = g.lo, g.hi
		case t.bare && !t.pinned[i]:
			lo[i], hi[i] = 0, unbounded
		case t.plain && !t.pinned[i]:
			lo[i], hi[i] = 1, unbounded
		case c.Complementary:
			lo[i], hi[i] = int64(t.minCell), unbounded
		default:
			lo[i], hi[i] = 1, int64(c.Min)-1
		}
	}
	adds := make([]bool, len(t.lines))
	for l, line := range t.lines {
		var sum int64
		for _, i := range line[:len(line)-1] {
			sum += t.counts[i]
		}
		adds[l] = sum == t.counts[line[len(line)-1]]
	}
	narrow := func(i int, l, h int64) bool {
		moved := false
		if l > lo[i] {
			lo[i], moved = l, true
		}
		if h < hi[i] {
			hi[i], moved = h, true
		}
		return moved
	}
	for range auditSweeps {
		moved := false
		for l, line := range t.lines {
			parts, total := line[:len(line)-1], line[len(line)-1]
			var partsLo, partsHi int64
			for _, i := range parts {
				partsLo += lo[i]
				partsHi += hi[i]
			}
			if adds[l] {
				moved = narrow(total, partsLo, partsHi) || moved
			} else {
				moved = narrow(total, partsLo, unbounded) || moved
			}
			for _, i := range parts {
				// The others' sums are taken before i moves, so they
				// can only be wider than the latest: still sound.
				othersLo, othersHi := partsLo-lo[i], partsHi-hi[i]
				floor := int64(0)
				if adds[l] {
					floor = lo[total] - othersHi
				}
				moved = narrow(i, floor, hi[total]-othersLo) || moved
			}
		}
		if !moved {
			break
		}
	}
	return lo, hi
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
// children, or listed as a child. Each family table is audited on its own,
// given the parent row's ranges from above; it cannot change that row, so
// a hidden cell may still be worked out by combining this answer with the
// answers above or beside it (a shown 18 over two "<10" children gives
// both away). Closing that takes one pattern per top-level region audited
// across all its levels. When totalled, a row's last count is the sum of
// the others. Pure.
func SuppressLineage(lineage []Family, totalled bool, minCell int) (own []Cell, children [][]Cell) {
	last := lineage[len(lineage)-1]
	tree := Tree{Own: last.Own, Children: make([]Tree, len(last.Children))}
	for i, row := range last.Children {
		tree.Children[i] = Tree{Own: row}
	}
	shown := SuppressTree(lineage[:len(lineage)-1], tree, totalled, minCell)
	if len(shown.Children) == 0 {
		return shown.Own, nil
	}
	children = make([][]Cell, len(shown.Children))
	for i, c := range shown.Children {
		children[i] = c.Own
	}
	return shown.Own, children
}

// Tree is a region's row with the rows of the regions below it, down to
// some depth: Children are its direct children in code order, each with
// theirs, and a region at the depth has none.
type Tree struct {
	Own      []int64
	Children []Tree
}

// ShownTree is a Tree as a caller with a minimum cell sees it.
type ShownTree struct {
	Own      []Cell
	Children []ShownTree
}

// SuppressTree shows a region and the regions below it (tree) to a caller
// with a minimum cell, each region's row exactly as SuppressLineage shows
// it: ancestors run from a top-level region down to tree's region's parent
// (none when tree's region is top-level), each family's Next its child on
// the way down; the last family's Next is tree's region.
//
// Every table is the one SuppressLineage builds: a region's children's
// rows with the region's row, as decided in its own parent's table, as the
// margin. So an answer of a whole subtree shows each cell as the answers
// of its regions one at a time (each with its children) do, and reveals
// nothing they do not together; what they can reveal in combination (see
// SuppressLineage) it can reveal too. Pure.
func SuppressTree(ancestors []Family, tree Tree, totalled bool, minCell int) ShownTree {
	own, ranges := decidedRow(ancestors, tree.Own, totalled, minCell)
	return suppressBelow(tree, own, ranges, totalled, minCell)
}

// decidedRow is the row of a region as decided in its parent's family
// table, with the ranges a caller can narrow its cells to: ancestors lead
// down to the region as in SuppressTree, and own is the region's row, the
// one the top-level region's is decided from when there are no ancestors.
func decidedRow(ancestors []Family, own []int64, totalled bool, minCell int) ([]Cell, []span) {
	top := own
	if len(ancestors) > 0 {
		top = ancestors[0].Own
	}
	var cells []Cell
	var ranges []span
	if totalled {
		counts, total, rs := suppressLine(top[:len(top)-1], minCell)
		cells, ranges = append(counts, total), rs
	} else {
		cells = make([]Cell, len(top))
		ranges = make([]span, len(top))
		for j, n := range top {
			_, total, rs := suppressLine([]int64{n}, minCell)
			cells[j], ranges[j] = total, rs[1]
		}
	}
	for _, f := range ancestors {
		kids, kidRanges := suppressFamily(f.Own, cells, ranges, f.Children, totalled, minCell)
		cells, ranges = kids[f.Next], kidRanges[f.Next]
	}
	return cells, ranges
}

// suppressBelow shows the regions below tree's region, whose row is shown
// as own, within ranges; each family table is built as SuppressLineage
// builds it.
func suppressBelow(tree Tree, own []Cell, ranges []span, totalled bool, minCell int) ShownTree {
	out := ShownTree{Own: own}
	if len(tree.Children) == 0 {
		return out
	}
	rows := make([][]int64, len(tree.Children))
	for i, c := range tree.Children {
		rows[i] = c.Own
	}
	cells, kidRanges := suppressFamily(tree.Own, own, ranges, rows, totalled, minCell)
	out.Children = make([]ShownTree, len(tree.Children))
	for i, c := range tree.Children {
		out.Children[i] = suppressBelow(c, cells[i], kidRanges[i], totalled, minCell)
	}
	return out
}
