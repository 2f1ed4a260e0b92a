package audit

import (
	"context"
	"errors"
	"time"
)

// ErrNoLog is what OpenFileExisting and OpenPostgresExisting return,
// wrapped, when there is no log where they were pointed: most often a
// mistyped path or schema.
var ErrNoLog = errors.New("no audit log")

// Store is an audit log's storage: Postgres and File implement it, and
// one test suite runs on both.
type Store interface {
	Appender
	Scanner
	// SeqRange returns the first and last sequence numbers of the entries
	// with from <= Time < to, for export; ok is false when there is none.
	SeqRange(ctx context.Context, from, to time.Time) (first, last int64, ok bool, err error)
	// WhoRead returns the entries about subject (Key.Subject of a citizen
	// ID) with from <= Time < to, in log order.
	WhoRead(ctx context.Context, subject string, from, to time.Time) ([]Entry, error)
	// Purge removes the personal data of every entry past its class's
	// retention at now. It deletes the longest prefix of the log whose
	// every entry is expired, keeping the last deleted entry as the
	// anchor, and redacts each expired entry after it in place (a stub,
	// see Retention in the package documentation), so that an entry still
	// retained (a policy change kept three years) does not keep the reads
	// after it, and the rest still verifies. It refuses a retention below
	// the legal floors (ErrBelowFloor) and says how many entries of each
	// class it deleted and redacted. On a file, writers wait while it
	// runs. On PostgreSQL it works in short transactions of 10,000
	// positions and writers go on meanwhile; stopped part-way (ctx
	// cancelled, a connection lost) it keeps what it did, returns it with
	// the error, and leaves a log that verifies: run it again to finish.
	Purge(ctx context.Context, now time.Time, r Retention) (PurgeResult, error)
	// Head is the last entry's position, or the anchor when every entry
	// was purged, or the zero Link for an empty log: what CheckKey
	// compares a key with.
	Head(ctx context.Context) (Link, error)
	// LastPolicyChange returns the newest entry of ActionPolicyChange, false
	// when there is none, without reading the whole log (a hub checks it on
	// every start).
	LastPolicyChange(ctx context.Context) (Entry, bool, error)
	// PolicyChangesBefore returns up to n entries of ActionPolicyChange
	// older than the one of seq, newest first: the parts a policy change
	// too large for one entry was written in (a hub reads them on start).
	PolicyChangesBefore(ctx context.Context, seq int64, n int) ([]Entry, error)
	// Close releases the store. Safe to call twice.
	Close() error
}

var (
	_ Store = (*Postgres)(nil)
	_ Store = (*File)(nil)
)
