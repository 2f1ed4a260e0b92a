package par

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
)

func TestRangesCoverEveryItemOnce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		n, minChunk int
		wantCalls   int // at GOMAXPROCS 2
	}{
		{"nothing", 0, 64, 0},
		{"fewer than two chunks: one call", 127, 64, 1},
		{"two chunks: one per core", 128, 64, 2},
		{"many chunks: still one per core", 10_000, 64, 2},
		{"chunk of zero counts as one", 5, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
			seen := make([]atomic.Int32, tc.n)
			var calls atomic.Int32
			Ranges(tc.n, tc.minChunk, func(lo, hi int) {
				calls.Add(1)
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
			})
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Fatalf("item %d seen %d times", i, c)
				}
			}
			if int(calls.Load()) != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls.Load(), tc.wantCalls)
			}
		})
	}
}

func TestEachReturnsEveryRangesError(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	errLow, errHigh := errors.New("low"), errors.New("high")
	var after atomic.Int32
	err := Each(1000, 10, func(i int) error {
		switch {
		case i == 10:
			return errLow
		case i == 900:
			return errHigh
		case i > 10 && i < 500:
			after.Add(1) // in the failed range, after its error
		}
		return nil
	})
	if !errors.Is(err, errLow) || !errors.Is(err, errHigh) {
		t.Errorf("Each = %v, want both ranges' errors", err)
	}
	if after.Load() != 0 {
		t.Errorf("a range went on %d items past its error", after.Load())
	}
	if err := Each(1000, 10, func(int) error { return nil }); err != nil {
		t.Errorf("Each without errors = %v", err)
	}
}
