package schemas

import (
	"testing"
	"time"
)

// TestDateChecksMatchTimeParse: IsDate and the month check accept exactly
// what time.Parse accepts, over every two-character month and day from
// digits, signs, spaces and letters, for years of every kind.
func TestDateChecksMatchTimeParse(t *testing.T) {
	years := []string{"0000", "0001", "0004", "0100", "0400", "1900", "2000", "2023", "2024", "2100", "9999",
		"+999", "-999", "+024", "a024", "20 4", " 024", "2o24", "-000", "0x10"}
	var pairs []string
	const alphabet = "0123456789-+ aZ\xff"
	for _, a := range alphabet {
		for _, b := range alphabet {
			pairs = append(pairs, string(a)+string(b))
		}
	}
	checked := 0
	for _, y := range years {
		for _, m := range pairs {
			for _, sep := range []string{"-", "/"} {
				month := y + sep + m
				_, err := time.Parse("2006-01", month)
				_, _, ok := yearMonth(month)
				if want := err == nil && len(month) == 7; ok != want {
					t.Fatalf("yearMonth(%q) = %v, time.Parse says %v", month, ok, want)
				}
				for _, d := range pairs {
					date := month + "-" + d
					_, err := time.Parse(time.DateOnly, date)
					if want := err == nil && len(date) == 10; IsDate(date) != want {
						t.Fatalf("IsDate(%q) = %v, time.Parse says %v", date, !want, want)
					}
					checked++
				}
			}
		}
	}
	for _, s := range []string{"", "2024-02-2", "2024-02-290", "2024-2-29", "20240229", "2024-02-29T", "02024-02-2"} {
		_, err := time.Parse(time.DateOnly, s)
		if want := err == nil && len(s) == 10; IsDate(s) != want {
			t.Errorf("IsDate(%q) = %v, time.Parse says %v", s, !want, want)
		}
	}
	t.Logf("%d dates checked", checked)
}
