package memdb

import (
	"context"
	"fmt"
	"sync"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/stats"
)

// counterSet holds the hub/stats counters beside go-memdb rather than in
// it: a batch changes thousands of counters at once, and a radix-tree
// insert per counter cost the write path three times more than the rest
// of the batch. The counters are derived data: they are added after the
// batch's transaction commits (under the store's write lock, so in commit
// order), rebuilt from the persons when a snapshot is loaded, and kept by
// replaying the log like everything else. A reader may see a batch's
// records a moment before its counts.
type counterSet struct {
	mu sync.RWMutex
	m  map[regionClass]map[string]int64 // bucket → net change
}

type regionClass struct {
	region string
	class  stats.Class
}

func (c *counterSet) add(ds []stats.Delta) {
	if len(ds) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[regionClass]map[string]int64{}
	}
	for _, d := range ds {
		k := regionClass{d.Region, d.Class}
		b := c.m[k]
		if b == nil {
			b = map[string]int64{}
			c.m[k] = b
		}
		b[d.Bucket] += d.N
	}
}

// tallies sums each region's counters over the as-of ranges, all under
// one read lock: a batch's deltas are added under the write lock at once,
// so the tallies are one snapshot, every region's the sum of its
// children's where they cover it (hub.Store.Counts), however many batches
// commit meanwhile.
func (c *counterSet) tallies(regions []string, rs [3]stats.Range) map[string]hub.Tally {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]hub.Tally, len(regions))
	for _, region := range regions {
		out[region] = c.tally(region, rs)
	}
	return out
}

// tally sums a region's counters over the as-of ranges. Callers hold c.mu.
func (c *counterSet) tally(region string, rs [3]stats.Range) hub.Tally {
	sum := func(cl stats.Class) int64 {
		var n int64
		for bucket, v := range c.m[regionClass{region, cl}] {
			if stats.In(bucket, rs) {
				n += v
			}
		}
		return n
	}
	return hub.Tally{Urban: sum(stats.Urban), Rural: sum(stats.Rural), Permits: sum(stats.Permit)}
}

// VerifyCounters recomputes every counter from the persons' states and
// returns the counters that differ: N is the stored value minus the
// recomputed one. It holds the write lock while it scans.
func (s *Store) VerifyCounters(ctx context.Context) ([]stats.Delta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := stats.Acc{}
	txn := s.db.Txn(false)
	it, err := txn.Get("persons", "id")
	if err != nil {
		return nil, fmt.Errorf("verifying counters: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		acc.Person(nil, raw.(*person).State, s.cfg.Classify)
	}
	s.counters.mu.RLock()
	for rc, buckets := range s.counters.m {
		for b, n := range buckets {
			acc[stats.Key{Region: rc.region, Class: rc.class, Bucket: b}] -= n
		}
	}
	s.counters.mu.RUnlock()
	diffs := acc.Deltas()
	for i := range diffs {
		diffs[i].N = -diffs[i].N
	}
	return diffs, ctx.Err()
}

// RebuildCounters recomputes every counter from the persons' states and
// replaces the kept ones (after an official region table changed the
// classes of addresses). It holds the write lock while it scans.
func (s *Store) RebuildCounters(ctx context.Context) (persons int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := stats.Acc{}
	it, err := s.db.Txn(false).Get("persons", "id")
	if err != nil {
		return 0, fmt.Errorf("rebuilding counters: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		acc.Person(nil, raw.(*person).State, s.cfg.Classify)
		persons++
	}
	// The recount replaces the counters at once, so that no reader sees
	// them emptied and half added again.
	var fresh counterSet
	fresh.add(acc.Deltas())
	s.counters.mu.Lock()
	s.counters.m = fresh.m
	s.counters.mu.Unlock()
	return persons, ctx.Err()
}
