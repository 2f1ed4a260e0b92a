package memdb

import (
	"sync"

	"github.com/hashicorp/go-memdb"

	"github.com/pophub/pophub/schemas"
)

// eventSet holds the idempotency key (source, id) of every applied event.
// It lives beside go-memdb because nothing but membership is ever asked of
// it: a unique radix-tree index cost every event an insert that copies
// tree nodes and allocates a watch channel, where a map costs one hash.
// The keys share their strings with the history entries.
//
// Writers hold the store's mutex; the map changes only in commit, under
// mu together with the go-memdb commit, so KnownEvents (under mu's read
// lock) never sees a batch's keys without its history or the reverse.
type eventSet struct {
	mu   sync.RWMutex
	keys map[schemas.EventKey]struct{}
}

func newEventSet() eventSet {
	return eventSet{keys: make(map[schemas.EventKey]struct{})}
}

// hasLocked reports whether k was applied; the caller holds the store's
// mutex, so no commit runs meanwhile.
func (e *eventSet) hasLocked(k schemas.EventKey) bool {
	_, ok := e.keys[k]
	return ok
}

// has reports whether each key was applied, as of one commit.
func (e *eventSet) has(keys []schemas.EventKey) []bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]bool, len(keys))
	for i, k := range keys {
		_, out[i] = e.keys[k]
	}
	return out
}

// commit commits txn and adds the batch's keys as one step.
func (e *eventSet) commit(txn *memdb.Txn, keys []schemas.EventKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	txn.Commit()
	for _, k := range keys {
		e.keys[k] = struct{}{}
	}
}

// addLocked adds a key while the store loads, before it is shared.
func (e *eventSet) addLocked(k schemas.EventKey) { e.keys[k] = struct{}{} }
