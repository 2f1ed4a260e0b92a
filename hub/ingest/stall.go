package ingest

import (
	"sync"
	"time"
)

// stall tracks an operation that ingest waits behind, retrying without
// skipping a record (writing rejects to the DLQ, applying a batch to the
// store): since when it has been failing, zero while it succeeds, and its
// last error. A failure shorter than the grace (a broker's leader
// election, a database restart) passes unreported; a longer one is a hub
// whose ingest has stopped, which readiness must say although every
// dependency still answers a ping (a DLQ that refuses the hub's writes, a
// database that refuses them as read-only or cancels them at its
// statement_timeout).
type stall struct {
	grace time.Duration

	mu    sync.Mutex
	since time.Time
	err   error
}

// note records the outcome of an attempt.
func (s *stall) note(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	switch {
	case err == nil:
		s.since = time.Time{}
	case s.since.IsZero():
		s.since = time.Now()
	}
}

// stalled returns how long the operation has been failing and its last
// error once that is longer than the grace; ok is false otherwise.
func (s *stall) stalled() (d time.Duration, err error, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() {
		return 0, nil, false
	}
	if d = time.Since(s.since); d > s.grace {
		return d, s.err, true
	}
	return 0, nil, false
}
