package stats

import "testing"

// TestUrbanByCodeBoundaries: each edge of the NBS numbering of the last
// three digits decides whether a person counts as urban or rural; the
// 400–499 committees (like residents' committees) are urban, 500–599
// rural, and 000 is no committee.
func TestUrbanByCodeBoundaries(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"230102001000", false},
		{"230102001001", true},
		{"230102001199", true},
		{"230102001200", false},
		{"230102001399", false},
		{"230102001400", true},
		{"230102001450", true},
		{"230102001499", true},
		{"230102001500", false},
		{"230102001599", false},
		{"23010200100", false},
		{"2301020010011", false},
	}
	for _, tc := range tests {
		if got := UrbanByCode(tc.addr); got != tc.want {
			t.Errorf("UrbanByCode(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
