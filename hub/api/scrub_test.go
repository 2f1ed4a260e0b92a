package api

import "testing"

func TestScrub(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"no digits", "no digits"},
		{"port 5432 and 12345678901234", "port 5432 and 12345678901234"},
		{"id 230102199001011234 failed", "id 2301**********1234 failed"},
		{"id 11010519491231002X.", "id 1101**********002X."},
		{"230102199001011234", "2301**********1234"},
		{"legacy 230102900101123", "legacy 2301*******1123"},
		{"a 230102199001011234,110105194912310021 b", "a 2301**********1234,1101**********0021 b"},
		{"long 12345678901234567890123", "long 1234***************0123"},
	}
	for _, tt := range tests {
		if got := scrub(tt.in); got != tt.want {
			t.Errorf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
