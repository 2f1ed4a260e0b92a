package postgres

import (
	"sync"

	"github.com/pophub/pophub/hub/merge"
)

// stateCache keeps recently written merge states by person key, so that a
// batch need not read and decode the states this process wrote itself.
// Entries pair a state with its version and the write that stored it
// (persons.write_id): the store uses one only when both equal those of the
// row it has just locked, so a state another instance changed since is
// read again, never served stale. The version alone would not do: after a
// failover to a standby that lacks the last transactions, another
// instance's writes take the versions of the lost ones. States are
// immutable (merge works on clones), so entries are shared without copying.
//
// Eviction is two-generational: entries go into the young map; when it is
// full it becomes the old one and the previous old one is dropped; a hit
// in the old map moves the entry back to the young one. It bounds memory
// to 2×size entries and keeps what is used, at O(1) per operation.
type stateCache struct {
	mu         sync.Mutex
	size       int
	young, old map[string]cached
}

type cached struct {
	version int64
	writeID int64
	state   *merge.State
}

func newStateCache(size int) *stateCache {
	return &stateCache{size: size, young: make(map[string]cached)}
}

// get returns the cached state of key, if any.
func (c *stateCache) get(key string) (cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.young[key]; ok {
		return e, true
	}
	if e, ok := c.old[key]; ok {
		delete(c.old, key)
		c.putLocked(key, e)
		return e, true
	}
	return cached{}, false
}

// put records the committed state of key at its version, as the write
// writeID stored it.
func (c *stateCache) put(key string, st *merge.State, writeID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, cached{version: st.Version(), writeID: writeID, state: st})
}

func (c *stateCache) putLocked(key string, e cached) {
	if _, ok := c.young[key]; !ok && len(c.young) >= c.size {
		c.old, c.young = c.young, make(map[string]cached, c.size)
	}
	c.young[key] = e
}

// clear drops every entry.
func (c *stateCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.young, c.old = make(map[string]cached, len(c.young)), nil
}

// forget drops key.
func (c *stateCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.young, key)
	delete(c.old, key)
}
