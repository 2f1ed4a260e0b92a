package ingest

import (
	"maps"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestSplit: a batch's applied and duplicate events per source are exact
// when the batch allows it, and always sum to each source's accepted
// events and to the store's totals.
func TestSplit(t *testing.T) {
	type counts = map[schemas.Source]int64
	tests := []struct {
		name                  string
		accepted              counts
		res                   hub.ApplyResult
		wantApplied, wantDups counts // nil: only the sums are checked
	}{
		{"one source with duplicates", counts{schemas.Tax: 10}, hub.ApplyResult{Applied: 7, Duplicates: 3},
			counts{schemas.Tax: 7}, counts{schemas.Tax: 3}},
		{"several sources, no duplicates", counts{schemas.Tax: 4, schemas.Health: 6}, hub.ApplyResult{Applied: 10},
			counts{schemas.Tax: 4, schemas.Health: 6}, counts{schemas.Tax: 0, schemas.Health: 0}},
		{"several sources, all duplicates", counts{schemas.Tax: 4, schemas.Health: 6}, hub.ApplyResult{Duplicates: 10},
			counts{schemas.Tax: 0, schemas.Health: 0}, counts{schemas.Tax: 4, schemas.Health: 6}},
		{"several sources, some duplicates", counts{schemas.Tax: 1, schemas.Health: 1, schemas.Housing: 1}, hub.ApplyResult{Applied: 1, Duplicates: 2}, nil, nil},
		{"proportional", counts{schemas.Tax: 30, schemas.Health: 10}, hub.ApplyResult{Applied: 36, Duplicates: 4},
			counts{schemas.Tax: 27, schemas.Health: 9}, counts{schemas.Tax: 3, schemas.Health: 1}},
		{"only rejects", counts{}, hub.ApplyResult{}, counts{}, counts{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := tally{}
			for src, n := range tc.accepted {
				tl.of(src).accepted = n
			}
			tl.of(schemas.Marriage).rejected["not_json"] = 2 // no accepted events: gets nothing
			applied, dups := tl.split(tc.res)
			var sumA, sumD int64
			for src, n := range tc.accepted {
				if applied[src]+dups[src] != n || applied[src] < 0 || dups[src] < 0 {
					t.Errorf("%s: applied %d + duplicates %d, want %d accepted", src, applied[src], dups[src], n)
				}
				sumA += applied[src]
				sumD += dups[src]
			}
			if sumA != int64(tc.res.Applied) || sumD != int64(tc.res.Duplicates) {
				t.Errorf("sums applied %d duplicates %d, want %+v", sumA, sumD, tc.res)
			}
			if applied[schemas.Marriage] != 0 || dups[schemas.Marriage] != 0 {
				t.Error("a source without accepted events got some")
			}
			if tc.wantApplied != nil && (!maps.Equal(applied, tc.wantApplied) || !maps.Equal(dups, tc.wantDups)) {
				t.Errorf("applied %v duplicates %v, want %v %v", applied, dups, tc.wantApplied, tc.wantDups)
			}
		})
	}
}
