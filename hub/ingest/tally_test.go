package ingest

import (
	"maps"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestSplit: a batch's applied and duplicate events per source are those
// the store reported, whichever sources the batch mixes: a source's repeat
// is never charged to another source.
func TestSplit(t *testing.T) {
	type counts = map[schemas.Source]int64
	tests := []struct {
		name                  string
		sources               []schemas.Source // of the batch's inputs, in order
		duplicateAt           []int
		wantApplied, wantDups counts
	}{
		{"one source with duplicates", []schemas.Source{schemas.Tax, schemas.Tax, schemas.Tax}, []int{0, 2},
			counts{schemas.Tax: 1}, counts{schemas.Tax: 2}},
		{"several sources, no duplicates", []schemas.Source{schemas.Tax, schemas.Health, schemas.Health}, nil,
			counts{schemas.Tax: 1, schemas.Health: 2}, counts{}},
		{"several sources, all duplicates", []schemas.Source{schemas.Tax, schemas.Health}, []int{0, 1},
			counts{schemas.Tax: 0, schemas.Health: 0}, counts{schemas.Tax: 1, schemas.Health: 1}},
		{"the repeat of the smaller source", []schemas.Source{schemas.Marriage, schemas.Health, schemas.Health}, []int{0},
			counts{schemas.Marriage: 0, schemas.Health: 2}, counts{schemas.Marriage: 1}},
		{"only rejects", nil, nil, counts{}, counts{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := tally{}
			inputs := make([]hub.Input, len(tc.sources))
			for i, src := range tc.sources {
				tl.of(src).accepted++
				inputs[i].Event.Source = src
			}
			tl.of(schemas.Education).rejected["not_json"] = 2 // no accepted events: gets nothing
			res := hub.ApplyResult{Applied: len(inputs) - len(tc.duplicateAt), Duplicates: len(tc.duplicateAt), DuplicateAt: tc.duplicateAt}
			applied, dups := tl.split(inputs, res)
			if !maps.Equal(applied, tc.wantApplied) || !maps.Equal(dups, tc.wantDups) {
				t.Errorf("applied %v duplicates %v, want %v %v", applied, dups, tc.wantApplied, tc.wantDups)
			}
		})
	}
}
