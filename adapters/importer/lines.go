package importer

import (
	"math"
	"sort"
	"sync"
)

// lineRanges is a set of line numbers as sorted, disjoint ranges
// [first, last] that do not touch: a file whose lines are mostly bad (a
// wrong mapping) has a few ranges, not a number a line. It is what a
// checkpoint records of the lines a run rejected.
type lineRanges [][2]int

// add adds line, which is after every line added before (validation
// finds lines in order); a line at or before the last range's end is
// already in it or out of order, and is ignored.
func (r *lineRanges) add(line int) {
	n := len(*r)
	switch {
	case n > 0 && line <= (*r)[n-1][1]:
	case n > 0 && line == (*r)[n-1][1]+1:
		(*r)[n-1][1] = line
	default:
		*r = append(*r, [2]int{line, line})
	}
}

// has reports whether line is in the set.
func (r lineRanges) has(line int) bool {
	i := sort.Search(len(r), func(i int) bool { return r[i][1] >= line })
	return i < len(r) && r[i][0] <= line
}

// count is how many lines the set holds.
func (r lineRanges) count() int {
	n := 0
	for _, g := range r {
		n += g[1] - g[0] + 1
	}
	return n
}

// clip is the part of the set from lo to hi, both included.
func (r lineRanges) clip(lo, hi int) lineRanges {
	return r.intersect(lineRanges{{lo, hi}})
}

// intersect is the lines in both sets.
func (r lineRanges) intersect(o lineRanges) lineRanges {
	var out lineRanges
	for i, j := 0, 0; i < len(r) && j < len(o); {
		lo, hi := max(r[i][0], o[j][0]), min(r[i][1], o[j][1])
		if lo <= hi {
			out = append(out, [2]int{lo, hi})
		}
		if r[i][1] < o[j][1] {
			i++
		} else {
			j++
		}
	}
	return out
}

// union is the lines in either set.
func (r lineRanges) union(o lineRanges) lineRanges {
	var out lineRanges
	push := func(g [2]int) {
		n := len(out)
		// Ranges that overlap or touch merge; last+1 cannot overflow
		// past a range ending at math.MaxInt.
		if n > 0 && (out[n-1][1] == math.MaxInt || g[0] <= out[n-1][1]+1) {
			out[n-1][1] = max(out[n-1][1], g[1])
			return
		}
		out = append(out, g)
	}
	i, j := 0, 0
	for i < len(r) || j < len(o) {
		if j == len(o) || i < len(r) && r[i][0] <= o[j][0] {
			push(r[i])
			i++
		} else {
			push(o[j])
			j++
		}
	}
	return out
}

// rejectedLines collects the lines validation rejects, for the sender's
// checkpoints: while an import streams, the sender reads them as
// validation adds later ones.
type rejectedLines struct {
	mu    sync.Mutex
	lines lineRanges
}

func (r *rejectedLines) add(line int) {
	r.mu.Lock()
	r.lines.add(line)
	r.mu.Unlock()
}

// upTo returns a copy of the rejected lines up to line last.
func (r *rejectedLines) upTo(last int) lineRanges {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lines.clip(1, last)
}
