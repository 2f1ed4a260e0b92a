package citizenid

import (
	"fmt"
	"testing"
	"time"
)

// TestParseDateAsTimeParse: parseDate agrees with time.Parse("20060102")
// on every day from 1840 to 2110, on impossible days of every month, and
// on malformed strings.
func TestParseDateAsTimeParse(t *testing.T) {
	var inputs []string
	for d := time.Date(1840, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2110; d = d.AddDate(0, 0, 1) {
		inputs = append(inputs, d.Format("20060102"))
	}
	for y := 1899; y <= 2101; y++ {
		for m := 0; m <= 13; m++ {
			for _, day := range []int{0, 28, 29, 30, 31, 32} {
				inputs = append(inputs, fmt.Sprintf("%04d%02d%02d", y, m, day))
			}
		}
	}
	inputs = append(inputs, "", "2000010", "200001011", "2000-1-01", "2000010a", "+2000101", " 2000101", "0000000a", "99991231")
	for _, s := range inputs {
		got, ok := parseDate(s)
		want, err := time.Parse("20060102", s)
		wantOK := err == nil && want.Year() >= 1850
		if ok != wantOK || (ok && !got.Equal(want)) || (ok && got.Location() != time.UTC) {
			t.Errorf("parseDate(%q) = %v, %v; time.Parse gives %v, %v", s, got, ok, want, err)
		}
	}
}
