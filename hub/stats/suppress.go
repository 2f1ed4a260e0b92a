package stats

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Cell is one statistics count as shown to a caller: the count, or a
// marker when it is suppressed. It encodes as a JSON number, or as the
// string "<k" (k the minimum cell) when suppressed.
type Cell struct {
	N          int64 // zero when suppressed
	Suppressed bool
	Min        int // the minimum cell that suppressed it
}

// Shown is a cell that is shown.
func Shown(n int64) Cell { return Cell{N: n} }

// Marker is the text shown instead of a suppressed cell: "<10".
func (c Cell) Marker() string { return "<" + strconv.Itoa(c.Min) }

// MarshalJSON implements json.Marshaler.
func (c Cell) MarshalJSON() ([]byte, error) {
	if c.Suppressed {
		return strconv.AppendQuote(nil, c.Marker()), nil
	}
	return strconv.AppendInt(nil, c.N, 10), nil
}

// Suppress applies small-cell suppression to counts that add up to a
// total shown beside them (urban and rural of a region; the children of a
// region whose own count is shown): every count from 1 to minCell-1 is
// suppressed (zeros are shown), and, because a single suppressed count is
// the total minus the others, when exactly one count is suppressed the
// smallest other one is suppressed with it. The total is suppressed when it
// is itself below minCell. minCell < 2 suppresses nothing. Pure: counts is
// not modified.
//
// It protects one table at a time; a caller publishing the same counts in
// several overlapping tables must suppress them consistently.
func Suppress(counts []int64, minCell int) (cells []Cell, total Cell) {
	cells = make([]Cell, len(counts))
	var sum int64
	for i, n := range counts {
		cells[i] = Cell{N: n}
		sum += n
	}
	total = Cell{N: sum}
	if minCell < 2 {
		return cells, total
	}
	small := func(n int64) bool { return n > 0 && n < int64(minCell) }
	hidden := 0
	for i, n := range counts {
		if small(n) {
			cells[i] = Cell{Suppressed: true, Min: minCell}
			hidden++
		}
	}
	if small(sum) {
		total = Cell{Suppressed: true, Min: minCell}
	}
	if hidden == 1 && !total.Suppressed && len(counts) > 1 {
		next := -1
		for i, n := range counts {
			if !cells[i].Suppressed && (next < 0 || n < counts[next]) {
				next = i
			}
		}
		cells[next] = Cell{Suppressed: true, Min: minCell}
	}
	return cells, total
}

// UnmarshalJSON reads a number or a "<k" marker.
func (c *Cell) UnmarshalJSON(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, `"`) {
		var m string
		if err := json.Unmarshal(b, &m); err != nil || !strings.HasPrefix(m, "<") {
			return fmt.Errorf("statistics cell %s: not a suppression marker", s)
		}
		k, err := strconv.Atoi(m[1:])
		if err != nil {
			return fmt.Errorf("statistics cell %s: not a suppression marker", s)
		}
		*c = Cell{Suppressed: true, Min: k}
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("statistics cell %s: not a count", s)
	}
	*c = Cell{N: n}
	return nil
}
