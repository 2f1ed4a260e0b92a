// Package par spreads a loop over the cores: the hub decodes and encodes
// persons' states, and the adapters check events, on both cores of a
// small machine and on all of a large one.
package par

import (
	"errors"
	"runtime"
	"sync"
)

// Ranges calls fn on consecutive ranges [lo, hi) that cover [0, n), one
// per core, each of at least minChunk items; with fewer items than two
// chunks it calls fn(0, n) on the calling goroutine. It returns when every
// call has.
func Ranges(n, minChunk int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	workers := min(runtime.GOMAXPROCS(0), n/max(minChunk, 1))
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		wg.Go(func() { fn(lo, min(lo+per, n)) })
	}
	wg.Wait()
}

// Each calls fn(i) for every i in [0, n), spread as Ranges does. A range
// stops at its first error; Each returns the errors of all ranges.
func Each(n, minChunk int, fn func(i int) error) error {
	var mu sync.Mutex
	var errs []error
	Ranges(n, minChunk, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if err := fn(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
		}
	})
	return errors.Join(errs...)
}
