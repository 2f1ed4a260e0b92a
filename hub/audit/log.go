package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Appender stores chained batches. Both stores implement it.
type Appender interface {
	// Append takes the chain's write lock (other writers, in this process
	// or others, wait), reads the chain head, calls link(head) which sets
	// Seq, Prev, Hash and Seal of every entry of batch in place, and stores
	// the batch atomically: all entries or none. On error nothing was
	// stored, except when the error hid a commit that succeeded; a retry
	// then stores the batch again under new numbers (at least once).
	Append(ctx context.Context, batch []Entry, link func(head Link) Link) error
}

// ErrClosed is returned by Log.Append after Close.
var ErrClosed = errors.New("audit log closed")

// LogConfig configures a Log. The zero value is usable.
type LogConfig struct {
	// Buffer is how many entries may wait for the writer (default 8192);
	// Append blocks while it is full.
	Buffer int
	// MaxBatch bounds the entries stored in one Append (default 1000).
	MaxBatch int
	// Interval is the least time between the starts of two stores
	// (default 5ms; negative for none): a group commit. Under steady
	// reads the writer waits out the rest of the interval, so entries
	// arriving meanwhile share one write and one fsync instead of each
	// few costing their own; an entry after a quiet spell is stored at
	// once, and Flush cuts the wait short.
	Interval time.Duration
	// Logger receives write failures (default: discarded). Entries hold no
	// citizen ID, and the logger is never given one.
	Logger *slog.Logger
	// Now stamps entries with a zero Time (default time.Now).
	Now func() time.Time
}

func (c *LogConfig) setDefaults() {
	if c.Buffer <= 0 {
		c.Buffer = 8192
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.Interval == 0 {
		c.Interval = 5 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Log appends entries asynchronously: Append queues an entry in a bounded
// buffer and returns; one writer goroutine takes whatever is queued (up to
// MaxBatch), chains it and stores it in one Appender call, so the HTTP read
// path waits for a channel send, not for the database.
//
// Durability: an entry is durable once the batch holding it is stored
// (committed in PostgreSQL, written and fsynced in a File). Flush waits
// for that for every entry appended before it; Close does so for all. An
// entry queued when the process dies is lost, so a caller that must not
// answer before its audit entry is durable calls Flush. A failing store is
// retried with backoff (the writer keeps the batch, in order) while Append
// goes on queueing until the buffer is full, then blocks until ctx ends.
//
// The writer goroutine starts in NewLog rather than in a Run method bound
// to a context: the log must outlive the HTTP server it audits and be
// flushed after it has drained, which Close(ctx) does. Log is safe for
// concurrent use.
type Log struct {
	cfg   LogConfig
	store Appender
	c     *chainer
	in    chan Entry

	mu     sync.RWMutex // guards closed against sends on a closed in
	closed bool

	queued  atomic.Int64 // entries accepted by Append
	written atomic.Int64 // entries stored
	wmu     sync.Mutex
	wake    chan struct{} // closed and replaced after each stored batch
	hurry   chan struct{} // a Flush is waiting: store without waiting out Interval

	abort     chan struct{} // closed when Close gives up
	done      chan struct{} // closed when the writer returns
	closeOnce sync.Once
	abortOnce sync.Once
	head      atomic.Pointer[Link]
	failing   atomic.Pointer[failure] // nil while the store takes entries
}

// failure is the store's error since the first of a run of failed writes.
type failure struct {
	err   error
	since time.Time
}

// NewLog starts a Log writing to store. The key seals every entry; it is
// required.
func NewLog(store Appender, key Key, cfg LogConfig) (*Log, error) {
	if key.IsZero() {
		return nil, errors.New("audit log: a key is required")
	}
	cfg.setDefaults()
	l := &Log{cfg: cfg, store: store, c: newChainer(key), in: make(chan Entry, cfg.Buffer),
		wake: make(chan struct{}), hurry: make(chan struct{}, 1), abort: make(chan struct{}), done: make(chan struct{})}
	go l.write()
	return l, nil
}

// Append queues e. It sets e.Time when zero; Seq, Prev, Hash and Seal are
// overwritten by the writer. It blocks only while the buffer is full, and
// returns ctx's error if ctx ends first, or ErrClosed after Close.
func (l *Log) Append(ctx context.Context, e Entry) error {
	if e.Time.IsZero() {
		e.Time = l.cfg.Now()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	select {
	case l.in <- e:
		l.queued.Add(1)
		return nil
	default:
	}
	select {
	case l.in <- e:
		l.queued.Add(1)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("queueing audit entry: %w", ctx.Err())
	case <-l.abort:
		return ErrClosed
	}
}

// TryAppend queues e when the buffer has room, without waiting: false
// when it is full (Append then waits for room). It sets e.Time when zero.
func (l *Log) TryAppend(e Entry) (bool, error) {
	if e.Time.IsZero() {
		e.Time = l.cfg.Now()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false, ErrClosed
	}
	select {
	case l.in <- e:
		l.queued.Add(1)
		return true, nil
	default:
		return false, nil
	}
}

// Flush waits until every entry appended before the call is durable, or
// until ctx ends.
func (l *Log) Flush(ctx context.Context) error {
	target := l.queued.Load()
	if l.written.Load() < target {
		select {
		case l.hurry <- struct{}{}:
		default:
		}
	}
	for {
		l.wmu.Lock()
		wake := l.wake
		l.wmu.Unlock()
		if l.written.Load() >= target {
			return nil
		}
		select {
		case <-wake:
		case <-l.done:
			if l.written.Load() >= target {
				return nil
			}
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("flushing audit log: %w", ctx.Err())
		}
	}
}

// Err is nil while the store takes entries, and otherwise the store's
// last error and since when writes have failed. Reads go on while the
// trail cannot be written (the queue holds them, then reads wait for it),
// so a hub reports this through readiness: an operator must know that
// accesses are not being recorded.
func (l *Log) Err() error {
	f := l.failing.Load()
	if f == nil {
		return nil
	}
	return fmt.Errorf("the audit trail cannot be written (failing since %s): %w", f.since.UTC().Format(time.RFC3339), f.err)
}

// Head is the last position this Log stored (zero before its first batch).
func (l *Log) Head() Link {
	if h := l.head.Load(); h != nil {
		return *h
	}
	return Link{}
}

// Close stops accepting entries and waits until every queued entry is
// durable. If ctx ends first, the writer gives up (what is still queued is
// lost) and Close returns ctx's error. Safe to call twice.
func (l *Log) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		go func() {
			// Wait for blocked Appends to get their entry in (the writer
			// keeps draining) before closing the channel.
			l.mu.Lock()
			l.closed = true
			close(l.in)
			l.mu.Unlock()
		}()
	})
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		l.abortOnce.Do(func() { close(l.abort) })
		return fmt.Errorf("closing audit log: %w (%d entries not stored)", ctx.Err(), l.queued.Load()-l.written.Load())
	}
}

// write is the writer goroutine.
func (l *Log) write() {
	defer close(l.done)
	// The store calls are cancelled only when Close gives up.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.abort:
			cancel()
		case <-ctx.Done():
		}
	}()
	batch := make([]Entry, 0, l.cfg.MaxBatch)
	var last time.Time // when the previous store started
	for {
		e, ok := <-l.in
		if !ok {
			return
		}
		if wait := l.cfg.Interval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-l.hurry:
			case <-l.abort:
			}
			t.Stop()
		}
		last = time.Now()
		batch = append(batch[:0], e)
		open := true
	fill:
		for len(batch) < l.cfg.MaxBatch {
			select {
			case e, ok := <-l.in:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, e)
			default:
				break fill
			}
		}
		if !l.store1(ctx, batch) {
			return
		}
		if !open {
			return
		}
	}
}

// store1 stores one batch, retrying with backoff; false when aborted.
func (l *Log) store1(ctx context.Context, batch []Entry) bool {
	backoff := 50 * time.Millisecond
	for {
		var head Link
		err := l.store.Append(ctx, batch, func(h Link) Link {
			head = l.c.link(h, batch)
			return head
		})
		if err == nil {
			l.failing.Store(nil)
			l.head.Store(&head)
			l.written.Add(int64(len(batch)))
			l.wmu.Lock()
			close(l.wake)
			l.wake = make(chan struct{})
			l.wmu.Unlock()
			return true
		}
		since := time.Now()
		if f := l.failing.Load(); f != nil {
			since = f.since
		}
		l.failing.Store(&failure{err: err, since: since})
		l.cfg.Logger.Error("storing audit entries; retrying", "entries", len(batch), "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-l.abort:
			return false
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
