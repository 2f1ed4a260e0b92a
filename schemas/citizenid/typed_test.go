package citizenid

import "testing"

// TestTrimTyped: what a clerk cannot see goes at the edges, not inside,
// and Invisible names what is left inside.
func TestTrimTyped(t *testing.T) {
	tests := []struct {
		in, want  string
		invisible rune
	}{
		{" 230102199001011230\t", "230102199001011230", 0},
		{"\ufeff\u200b张三\u3000", "张三", 0},
		{"\u200c\u200d\u2060", "", 0},
		{"张\u200b三", "张\u200b三", '\u200b'},
		{"a\u00adb", "a\u00adb", '\u00ad'},
		{"", "", 0},
	}
	for _, tc := range tests {
		got := TrimTyped(tc.in)
		if got != tc.want {
			t.Errorf("TrimTyped(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if r := Invisible(got); r != tc.invisible {
			t.Errorf("Invisible(%q) = %U, want %U", got, r, tc.invisible)
		}
	}
}
