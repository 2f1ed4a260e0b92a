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
		{"one small pulls the smallest other", []int64{3, 40, 12}, 10, "<10 40 <10", "55"},
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
	for _, c := range []Cell{Shown(0), Shown(1234), {Suppressed: true, Min: 10}} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Cell
		if err := json.Unmarshal(b, &back); err != nil || back != c {
			t.Errorf("%s read back as %+v (%v), want %+v", b, back, err, c)
		}
	}
	var c Cell
	if err := json.Unmarshal([]byte(`"ten"`), &c); err == nil {
		t.Error(`"ten" read as a cell`)
	}
}
