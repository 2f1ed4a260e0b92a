package sdk

import (
	"sync"
	"time"
)

// gatherWait bounds how long a message can wait in a sleeping worker's
// queue for company (see queue).
const gatherWait = 5 * time.Millisecond

// queue holds one worker's messages in arrival order, between the fetch
// side, which pushes, and the worker, which takes everything queued at
// once.
//
// Waking a sleeping goroutine costs more than handling a notification with
// a cheap handler, so while the consumer has a backlog the fetch side
// wakes a sleeping worker only once gather messages are queued; when the
// consumer is caught up (nothing more pending on the server, so nothing
// else will come soon) it flushes every queue at once. A message waits at
// most gatherWait otherwise, when Run's ticker flushes. A worker that is
// awake takes what was queued meanwhile without being woken.
//
// Invariants, under mu: items is in stream order for the worker's
// citizens, after the busy ones the worker took last; sleeping means the
// worker waits on wake (cap 1), and whoever clears sleeping sends exactly
// one wake-up; len(items)+busy ≤ limit, so a worker holds at most limit
// messages, queued or being handled. Run sets limit where the server
// stops delivering first (see queueLimit): a full queue blocks the fetch
// side, which feeds every worker.
type queue struct {
	mu       sync.Mutex
	notFull  sync.Cond // the fetch side (a pull loop per consumer) waits here while the queue is full
	items    []item
	busy     int // messages the worker took and may not have handled yet
	limit    int
	sleeping bool
	closed   bool
	wake     chan struct{}
}

// queueCap is the capacity a queue's slices start with; they grow up to
// the limit only for a worker that falls behind (a retry holds it).
const queueCap = 256

func newQueue(limit int) *queue {
	q := &queue{limit: limit, items: make([]item, 0, min(limit, queueCap)), wake: make(chan struct{}, 1)}
	q.notFull.L = &q.mu
	return q
}

// push appends it, blocking while the queue is full, and wakes a sleeping
// worker when gather messages are queued.
func (q *queue) push(it item, gather int) {
	q.mu.Lock()
	for len(q.items)+q.busy >= q.limit && !q.closed {
		q.notFull.Wait()
	}
	q.items = append(q.items, it)
	if q.sleeping && len(q.items) >= gather {
		q.sleeping = false
		q.wake <- struct{}{}
	}
	q.mu.Unlock()
}

// flush wakes the worker if it sleeps on queued messages.
func (q *queue) flush() {
	q.mu.Lock()
	if q.sleeping && len(q.items) > 0 {
		q.sleeping = false
		q.wake <- struct{}{}
	}
	q.mu.Unlock()
}

// flushAll flushes every queue.
func flushAll(queues []*queue) {
	for _, q := range queues {
		q.flush()
	}
}

// close lets the worker finish what is queued and stop.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	if q.sleeping {
		q.sleeping = false
		q.wake <- struct{}{}
	}
	q.notFull.Broadcast()
	q.mu.Unlock()
}

// take returns everything queued, waiting while there is nothing, and
// gives done (the previous batch, handled) back to the queue for reuse.
// It returns false when the queue is closed and empty.
func (q *queue) take(done []item) ([]item, bool) {
	clear(done) // the messages handled are garbage now
	q.mu.Lock()
	if q.busy > 0 {
		q.busy = 0
		// Every consumer's pull loop may be waiting (one per filter with
		// Config.ConsumerPerFilter): a Signal would wake one, and the others
		// would wait on for a take that, with the queue no longer full,
		// may never come.
		q.notFull.Broadcast()
	}
	for len(q.items) == 0 {
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		q.sleeping = true
		q.mu.Unlock()
		<-q.wake
		q.mu.Lock()
	}
	batch := q.items
	if done == nil {
		done = make([]item, 0, min(q.limit, queueCap))
	}
	q.items = done[:0]
	q.busy = len(batch)
	q.mu.Unlock()
	return batch, true
}
