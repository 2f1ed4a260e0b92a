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
	// Purge deletes the longest prefix of the log whose every entry is past
	// its class's retention at now, and keeps the last deleted entry as the
	// anchor, so that the rest still verifies. An entry still retained
	// holds back every later one (the chain is one line): a policy change
	// keeps the access entries after it for as long as it is kept itself.
	// It refuses a retention below the legal floors (ErrBelowFloor) and
	// returns how many entries it deleted.
	Purge(ctx context.Context, now time.Time, r Retention) (int64, error)
	// Head is the last entry's position, or the anchor when every entry
	// was purged, or the zero Link for an empty log: what CheckKey
	// compares a key with.
	Head(ctx context.Context) (Link, error)
	// LastPolicyChange returns the newest entry of ActionPolicyChange, false
	// when there is none, without reading the whole log (a hub checks it on
	// every start).
	LastPolicyChange(ctx context.Context) (Entry, bool, error)
	// Close releases the store. Safe to call twice.
	Close() error
}

var (
	_ Store = (*Postgres)(nil)
	_ Store = (*File)(nil)
)
