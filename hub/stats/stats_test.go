package stats

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
)

// urbanIfEven classifies addresses by their last digit, for tests.
func urbanIfEven(a string) bool { return (a[len(a)-1]-'0')%2 == 0 }

// count sums the counters of region and class over the as-of ranges.
func count(acc Acc, region string, c Class, asOf string) int64 {
	rs, err := AsOf(asOf)
	if err != nil {
		panic(err)
	}
	var n int64
	for k, v := range acc {
		if k.Region == region && k.Class == c && In(k.Bucket, rs) {
			n += v
		}
	}
	return n
}

// brute counts the spans that hold day at an address under region.
func brute(spans [][]hub.Interval, region string, c Class, day string) int64 {
	var n int64
	for _, person := range spans {
		for _, iv := range person {
			if !strings.HasPrefix(iv.Code, region) || (c == Urban) != urbanIfEven(iv.Code) {
				continue
			}
			if iv.From <= day && (iv.To == "" || day < iv.To) {
				n++
			}
		}
	}
	return n
}

func randomSpans(r *rand.Rand) []hub.Interval {
	addrs := []string{"230102001001", "230102001002", "230103002003", "230203001004", "110101001005"}
	day := time.Date(1950+r.IntN(70), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
	var out []hub.Interval
	for range r.IntN(4) {
		end := day.AddDate(0, r.IntN(30), r.IntN(400))
		iv := hub.Interval{Code: addrs[r.IntN(len(addrs))], From: day.Format(time.DateOnly), To: end.Format(time.DateOnly)}
		out = append(out, iv)
		day = end.AddDate(0, 0, r.IntN(3)) // sometimes a gap
	}
	if len(out) > 0 && r.IntN(2) == 0 {
		out[len(out)-1].To = "" // still registered
	}
	return out
}

// TestCountsMatchSpans changes random persons' spans several times over
// and checks, for random dates at every level, that the counters sum to
// the number of spans holding that date.
func TestCountsMatchSpans(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	acc := Acc{}
	spans := make([][]hub.Interval, 300)
	for round := range 3 {
		for i := range spans {
			if round > 0 && r.IntN(2) == 0 {
				continue // unchanged this round
			}
			next := randomSpans(r)
			acc.Registrations(spans[i], next, urbanIfEven)
			spans[i] = next
		}
		for range 200 {
			day := time.Date(1950+r.IntN(80), time.Month(1+r.IntN(12)), 1+r.IntN(31), 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
			for _, region := range []string{"23", "2301", "230102", "230102001", "230102001002", "11", "44"} {
				for _, c := range []Class{Urban, Rural} {
					if got, want := count(acc, region, c, day), brute(spans, region, c, day); got != want {
						t.Fatalf("round %d, %s class %c as of %s: counters say %d, spans %d", round, region, c, day, got, want)
					}
				}
			}
		}
	}
}

func TestAsOfRanges(t *testing.T) {
	tests := []struct {
		asOf    string
		in, out []string
	}{
		{"2026-03-05", []string{"Y2025", "Y1950", "M202601", "M202602", "D20260301", "D20260305"},
			[]string{"Y2026", "M202603", "M202512", "D20260306", "D20260228", "D20260401"}},
		{"2026-03-31", []string{"D20260331", "M202602"}, []string{"D20260401", "M202603"}},
		{"2026-12-31", []string{"D20261231", "M202611", "Y2025"}, []string{"Y2026", "M202612", "D20270101"}},
		{"2026-01-01", []string{"Y2025", "D20260101"}, []string{"M202601", "D20260102", "Y2026"}},
	}
	for _, tc := range tests {
		rs, err := AsOf(tc.asOf)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range tc.in {
			if !In(b, rs) {
				t.Errorf("as of %s: bucket %s left out", tc.asOf, b)
			}
		}
		for _, b := range tc.out {
			if In(b, rs) {
				t.Errorf("as of %s: bucket %s counted", tc.asOf, b)
			}
		}
	}
	for _, bad := range []string{"", "2026-13-01", "2026-02-30", "20260101", "2026-1-1"} {
		if _, err := AsOf(bad); !errors.Is(err, hub.ErrInvalid) {
			t.Errorf("AsOf(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestPermitsCountAtCityAndProvince(t *testing.T) {
	acc := Acc{}
	acc.Permits(nil, []hub.Interval{{Code: "230100", From: "2025-01-10", To: "2026-01-10"}, {Code: "230200", From: "2025-06-01"}})
	for _, tc := range []struct {
		region, day string
		want        int64
	}{
		{"2301", "2025-01-09", 0}, {"2301", "2025-01-10", 1}, {"2301", "2026-01-09", 1}, {"2301", "2026-01-10", 0},
		{"23", "2025-07-01", 2}, {"23", "2026-02-01", 1}, {"2302", "2030-01-01", 1}, {"230100", "2025-01-10", 1},
	} {
		if got := count(acc, tc.region, Permit, tc.day); got != tc.want {
			t.Errorf("%s on %s: %d permit holders, want %d", tc.region, tc.day, got, tc.want)
		}
	}
}

func TestDeltasSortedAndNetted(t *testing.T) {
	acc := Acc{}
	spans := []hub.Interval{{Code: "230102001002", From: "2020-05-01"}}
	acc.Registrations(nil, spans, urbanIfEven)
	acc.Registrations(spans, nil, urbanIfEven)
	if d := acc.Deltas(); len(d) != 0 {
		t.Fatalf("a span added and removed leaves %d deltas", len(d))
	}
	acc.Registrations(nil, []hub.Interval{{Code: "230102001002", From: "2020-05-01", To: "2021-01-01"}}, urbanIfEven)
	d := acc.Deltas()
	if len(d) != 2*3*5 {
		t.Fatalf("%d deltas, want 30 (2 days × 3 buckets × 5 levels)", len(d))
	}
	for i := 1; i < len(d); i++ {
		a, b := d[i-1].Key, d[i].Key
		if a.Region > b.Region || (a.Region == b.Region && a.Class == b.Class && a.Bucket >= b.Bucket) {
			t.Fatalf("deltas out of key order at %d: %+v then %+v", i, a, b)
		}
	}
}

func TestUrbanByCode(t *testing.T) {
	for addr, want := range map[string]bool{
		"230102001001": true, "230102001199": true, "230102001200": false, "230102001399": false, "230102001099": true, "2301020": false,
	} {
		if got := UrbanByCode(addr); got != want {
			t.Errorf("UrbanByCode(%s) = %v, want %v", addr, got, want)
		}
	}
}
