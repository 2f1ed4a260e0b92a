package stats

import (
	"math/rand/v2"
	"testing"
)

// TestSuppressTreeReadsAsLineages: a region and the regions below it,
// shown in one answer (SuppressTree), read cell for cell as the answers of
// each region one at a time with its children (SuppressLineage) do, for
// every minimum cell, totalled or not, from a top-level region or from one
// below it; so the answer of a subtree reveals nothing those answers did
// not.
func TestSuppressTreeReadsAsLineages(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for _, tc := range []struct {
		name     string
		minCell  int
		totalled bool
		fanout   int
		levels   int
		start    int // the level of the region shown with its subtree
	}{
		{"no minimum cell", 0, true, 3, 4, 0},
		{"small cells from the top", 5, true, 3, 4, 0},
		{"small cells from a city", 10, true, 4, 4, 1},
		{"small cells from a county", 3, true, 2, 4, 2},
		{"untotalled", 5, false, 3, 3, 0},
		{"untotalled from a city", 5, false, 3, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				k := max(tc.minCell, 2)
				root := randomTree(rng, k, tc.totalled, tc.fanout, tc.levels)
				// The path from the top-level region to the one shown.
				var ancestors []Family
				sub := root
				for range tc.start {
					next := rng.IntN(len(sub.Children))
					ancestors = append(ancestors, Family{Own: sub.Own, Children: rowsOf(sub.Children), Next: next})
					sub = sub.Children[next]
				}
				shown := SuppressTree(ancestors, sub, tc.totalled, tc.minCell)
				compareLineages(t, ancestors, sub, shown, tc.totalled, tc.minCell)
			}
		})
	}
}

// compareLineages checks every region of shown against SuppressLineage of
// the lineage to it, asked for with its children.
func compareLineages(t *testing.T, ancestors []Family, tree Tree, shown ShownTree, totalled bool, minCell int) {
	t.Helper()
	lineage := append(append([]Family(nil), ancestors...), Family{Own: tree.Own, Children: rowsOf(tree.Children)})
	own, children := SuppressLineage(lineage, totalled, minCell)
	if a, b := cellTexts(own), cellTexts(shown.Own); a != b {
		t.Fatalf("region %v reads %q alone, %q in the subtree", tree.Own, a, b)
	}
	if len(children) != len(shown.Children) {
		t.Fatalf("region %v: %d children alone, %d in the subtree", tree.Own, len(children), len(shown.Children))
	}
	for i := range children {
		if a, b := cellTexts(children[i]), cellTexts(shown.Children[i].Own); a != b {
			t.Fatalf("child %d of %v reads %q with its parent, %q in the subtree", i, tree.Own, a, b)
		}
	}
	for i, c := range tree.Children {
		lineage[len(lineage)-1].Next = i
		compareLineages(t, lineage, c, shown.Children[i], totalled, minCell)
	}
}

// randomTree is a region with levels levels of regions below it, each
// with 1 to fanout children of mostly small counts that add up to it.
func randomTree(rng *rand.Rand, k int, totalled bool, fanout, levels int) Tree {
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
	if levels == 0 {
		if totalled {
			return Tree{Own: urbanRural(count(), count())}
		}
		return Tree{Own: []int64{count()}}
	}
	var t Tree
	for range 1 + rng.IntN(fanout) {
		c := randomTree(rng, k, totalled, fanout, levels-1)
		t.Children = append(t.Children, c)
		if t.Own == nil {
			t.Own = make([]int64, len(c.Own))
		}
		for j, n := range c.Own {
			t.Own[j] += n
		}
	}
	return t
}

func rowsOf(ts []Tree) [][]int64 {
	rows := make([][]int64, len(ts))
	for i, c := range ts {
		rows[i] = c.Own
	}
	return rows
}
