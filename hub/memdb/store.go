// Package memdb is the single-process golden-record store on go-memdb, for
// `pophub dev` and small deployments.
//
// Durability comes from a command log: every applied batch's events are
// appended to a write-ahead log and fsynced before Apply returns, and
// replaying the log through the same pure merge rules rebuilds the exact
// state (the merge is deterministic given the batch's timestamp). Periodic
// snapshots bound the replay. After kill -9 nothing that Apply acknowledged
// is lost, and a re-delivered event is a duplicate because its history
// survived (the set of applied event keys is rebuilt from it).
//
// With keys (Config.Keys) the log and snapshots are sealed and persons are
// keyed by a keyed hash of the ID; see sealed.go.
package memdb

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Config configures a Store. The zero value is an in-memory store.
type Config struct {
	// Dir holds the write-ahead log and snapshots; empty keeps everything
	// in memory only.
	Dir string
	// SnapshotEvery writes a snapshot after this many applied events
	// (default 500,000), so that a restart replays at most that many.
	SnapshotEvery int
	// Classify tells urban from rural addresses for the counters (default
	// stats.UrbanByRegionTable).
	Classify stats.Classify
	Logger   *slog.Logger
	// Keys seals what the store writes to Dir (see sealed.go); nil writes
	// it in clear. A directory opens only with the mode, and the keys, it
	// was first written with.
	Keys *sealing.Keyring
}

func (c *Config) setDefaults() {
	if c.SnapshotEvery <= 0 {
		c.SnapshotEvery = 500_000
	}
	if c.Classify == nil {
		c.Classify = stats.UrbanByRegionTable
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store implements hub.Store on go-memdb. Objects in the database are never
// modified after insert; each batch inserts new ones.
type Store struct {
	cfg       Config
	db        *memdb.MemDB
	wal       *wal       // nil when in memory
	lock      *os.File   // holds Dir's lock (lock.go); nil when in memory
	counters  counterSet // beside go-memdb: see counters.go
	events    eventSet   // beside go-memdb: see eventset.go
	mu        sync.Mutex
	sinceSnap int
	closed    bool
	// snapshotting is set while a background snapshot is written;
	// snapshotDone closes when it ends.
	snapshotting atomic.Bool
	snapshotDone chan struct{}
	closeOnce    sync.Once
	closeErr     error
	// marksMu guards the relay's stream marks (streammark.go): marks for
	// a store in memory, the file in Dir otherwise.
	marksMu sync.Mutex
	marks   map[string]hub.StreamMark
}

var _ hub.Store = (*Store)(nil)

// person, outboxRow, publishedRow and meta are the table objects.
type person struct {
	Key     string
	State   *merge.State
	History *changeList
	// Address and Household are the hukou address code and household id
	// of State, copied for the household index ("" when the state has
	// none); newPerson sets them.
	Address   string
	Household string
}

// newPerson is the table object of a person's state and history.
func newPerson(key string, st *merge.State, history *changeList) *person {
	p := &person{Key: key, State: st, History: history, Address: st.AddressCode()}
	if p.Address != "" && st.Household.V != nil {
		p.Household = *st.Household.V
	}
	return p
}

// changeList is a person's history, newest change first. A list is never
// modified: each new version of a person links its changes in front of
// the previous version's list, so a batch adds its history without copying
// or indexing older changes, and a read transaction's person keeps seeing
// the history as of that transaction. A history table with an index per
// person and per idempotency key cost three radix-tree inserts per event,
// about half of Apply.
type changeList struct {
	Change hub.Change
	Next   *changeList
}

// historyRow is one history line of a snapshot.
type historyRow struct {
	Key     string
	Source  string
	EventID string
	Change  hub.Change
}

// outboxRow holds the notifications of one batch, Seq being the first
// entry's sequence number: one object per batch instead of one per
// notification keeps the write path light. Entries are in Seq order.
type outboxRow struct {
	Seq     uint64
	Entries []hub.OutboxEntry
}

// publishedRow holds notifications JetStream acknowledged, the last of
// them at At (Unix nanoseconds), kept until DeletePublished removes them.
// Seq is the first entry's sequence number. Entries are in Seq order, and
// the spans from first to last entry of two rows never overlap: entries
// marked within a row's span are merged into it (keepPublished), so the
// rows read in key order give the entries in Seq order.
type publishedRow struct {
	Seq     uint64
	At      int64
	Entries []hub.OutboxEntry
}

type meta struct {
	ID            string
	NextSeq       uint64
	Persons       int64
	Changes       int64
	OutboxPending int64
}

const metaID = "meta"

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		"persons": {Name: "persons", Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			// A household's members, in key order, for
			// PersonQuery.Household: reading the whole table to find
			// a handful cost a decision milliseconds per hundred
			// thousand persons. A person without an address or a
			// household is not in it.
			"household": {Name: "household", Unique: true, AllowMissing: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "Address"}, &memdb.StringFieldIndex{Field: "Household"}, &memdb.StringFieldIndex{Field: "Key"},
			}}},
		}},
		"outbox": {Name: "outbox", Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "Seq"}},
		}},
		"published": {Name: "published", Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "Seq"}},
		}},
		"meta": {Name: "meta", Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		}},
	}}
}

// Open creates the store, recovering from Dir when it holds a snapshot or
// log.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.setDefaults()
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("creating memdb: %w", err)
	}
	s := &Store{cfg: cfg, db: db, events: newEventSet()}
	txn := db.Txn(true)
	if err := txn.Insert("meta", &meta{ID: metaID, NextSeq: 1}); err != nil {
		txn.Abort()
		return nil, fmt.Errorf("initialising meta: %w", err)
	}
	txn.Commit()
	if cfg.Dir == "" {
		return s, nil
	}
	start := time.Now()
	replayed, err := s.recover(ctx)
	if err != nil {
		return nil, errors.Join(err, unlockDir(s.lock))
	}
	cfg.Logger.Info("memdb store recovered", "dir", cfg.Dir, "replayed_batches", replayed, "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}

func getMeta(txn *memdb.Txn) (meta, error) {
	raw, err := txn.First("meta", "id", metaID)
	if err != nil || raw == nil {
		return meta{}, fmt.Errorf("reading meta: %v", err)
	}
	return *raw.(*meta), nil
}

// Apply implements hub.Store.
func (s *Store) Apply(ctx context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	// Batches handed turns (hub.WithTurn) take s.mu in turn order, so that
	// one partition's records take effect in offset order. A batch passes
	// its turn only once it is committed: one that fails, its log write
	// on a full disk for one, keeps it for the caller's retry
	// (hub.Store), so the next batch cannot overtake it once the log
	// takes writes again. Holding s.mu throughout, the store loses no
	// concurrency by it.
	if err := ctx.Err(); err != nil {
		return hub.ApplyResult{}, err
	}
	if err := hub.AwaitTurn(ctx); err != nil {
		return hub.ApplyResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return hub.ApplyResult{}, fmt.Errorf("applying batch: store closed: %w", hub.ErrUnavailable)
	}
	// Applied-at is UTC to the microsecond, as PostgreSQL keeps it, so that
	// both stores answer with the same text.
	now := time.Now().UTC().Truncate(time.Microsecond)
	txn := s.db.Txn(true)
	defer txn.Abort()
	l, err := s.lookup(txn, batch)
	if err != nil {
		return hub.ApplyResult{}, err
	}
	// The log holds the batch's new events, not their merged result, so
	// it is written and fsynced while they merge: the fsync's wait
	// overlaps the batch's CPU work. Nothing becomes visible before both
	// are done.
	var logged chan error
	if s.wal != nil && len(l.fresh) > 0 {
		logged = make(chan error, 1)
		go func(w *wal) { logged <- w.appendBatch(now, l.fresh) }(s.wal)
	}
	res, err := s.write(txn, l, now)
	if logged != nil {
		if lerr := <-logged; lerr != nil {
			return hub.ApplyResult{}, fmt.Errorf("writing the memdb store's log: %w", lerr)
		}
	}
	if err != nil {
		return hub.ApplyResult{}, err
	}
	// Before commit, which adds the batch's keys to s.events.
	res.DuplicateAt = hub.DuplicateIndexes(batch, res.Duplicates, s.events.hasLocked)
	s.commit(txn, res)
	hub.PassTurn(ctx)
	if s.wal != nil && s.sinceSnap >= s.cfg.SnapshotEvery {
		if err := s.startSnapshotLocked(); err != nil {
			s.cfg.Logger.Error("starting snapshot", "err", err)
		}
	}
	return res.ApplyResult, nil
}

// commit makes an applied batch visible: the transaction, its events'
// idempotency keys and its counter deltas. Callers hold s.mu.
func (s *Store) commit(txn *memdb.Txn, res applied) {
	s.events.commit(txn, res.keys)
	s.counters.add(res.counters)
	s.sinceSnap += res.Applied
}

// applyTxn applies a batch inside a write transaction; replay uses it too,
// so that recovery takes the same path as Apply.
func (s *Store) applyTxn(txn *memdb.Txn, batch []hub.Input, now time.Time) (applied, error) {
	l, err := s.lookup(txn, batch)
	if err != nil {
		return applied{}, err
	}
	return s.write(txn, l, now)
}

// looked is a batch split into events applied before and new ones, with
// the stored persons the new ones name.
type looked struct {
	fresh      []hub.Input
	duplicates int
	loaded     map[citizenid.ID]*merge.State // nil state: a new person
	prev       map[citizenid.ID]*person
}

// lookup finds the batch's events applied before and loads the persons of
// the others. Callers hold s.mu, which keeps s.events still while it is
// read here without its lock.
func (s *Store) lookup(txn *memdb.Txn, batch []hub.Input) (looked, error) {
	l := looked{fresh: make([]hub.Input, 0, len(batch)), loaded: make(map[citizenid.ID]*merge.State), prev: make(map[citizenid.ID]*person)}
	for _, in := range batch {
		if s.events.hasLocked(in.Event.Key()) {
			l.duplicates++
			continue
		}
		l.fresh = append(l.fresh, in)
		if _, ok := l.loaded[in.Event.Subject]; !ok {
			p, err := txn.First("persons", "id", s.personKey(in.Event.Subject))
			if err != nil {
				return l, fmt.Errorf("loading person: %w", err)
			}
			if p != nil {
				l.prev[in.Event.Subject] = p.(*person)
				l.loaded[in.Event.Subject] = p.(*person).State
			} else {
				l.loaded[in.Event.Subject] = nil
			}
		}
	}
	return l, nil
}

// write merges the new events of a batch and writes the result into txn.
func (s *Store) write(txn *memdb.Txn, l looked, now time.Time) (applied, error) {
	res := applied{ApplyResult: hub.ApplyResult{Duplicates: l.duplicates}}
	if len(l.fresh) == 0 {
		return res, nil
	}
	loaded, prev := l.loaded, l.prev
	out := merge.Batch(loaded, l.fresh, now)
	// The counter deltas are pure and take a while: they are worked out
	// beside the inserts.
	counted := make(chan []stats.Delta, 1)
	go func() {
		acc := stats.Acc{}
		for id, st := range out.States {
			var before stats.Timeline
			if old := loaded[id]; old != nil {
				before = old
			}
			acc.Person(before, st, s.cfg.Classify)
		}
		counted <- acc.Deltas()
	}()
	received := false
	defer func() {
		if !received {
			<-counted // an error: do not leave it running
		}
	}()
	m, err := getMeta(txn)
	if err != nil {
		return res, err
	}
	history := make(map[citizenid.ID]*changeList, len(out.States))
	for id := range out.States {
		if p := prev[id]; p != nil {
			history[id] = p.History
		}
	}
	res.keys = make([]schemas.EventKey, 0, len(out.History))
	for _, h := range out.History {
		history[h.CitizenID] = &changeList{Change: h.Change, Next: history[h.CitizenID]}
		res.keys = append(res.keys, schemas.EventKey{Source: h.Change.Source, ID: h.Change.EventID})
	}
	for id, st := range out.States {
		if loaded[id] == nil {
			m.Persons++
		}
		if err := txn.Insert("persons", newPerson(s.personKey(id), st, history[id])); err != nil {
			return res, fmt.Errorf("writing person: %w", err)
		}
	}
	if len(out.Outbox) > 0 {
		row := &outboxRow{Seq: m.NextSeq, Entries: out.Outbox}
		for i := range row.Entries {
			row.Entries[i].Seq = int64(m.NextSeq)
			m.NextSeq++
		}
		if err := txn.Insert("outbox", row); err != nil {
			return res, fmt.Errorf("writing outbox: %w", err)
		}
	}
	m.Changes += int64(len(out.History))
	m.OutboxPending += int64(len(out.Outbox))
	if err := txn.Insert("meta", &m); err != nil {
		return res, fmt.Errorf("writing meta: %w", err)
	}
	res.counters, received = <-counted, true
	res.Applied = out.Applied
	res.Duplicates += out.Duplicates
	res.Notifications = len(out.Outbox)
	return res, nil
}

// applied is what applyTxn did: the counts, and the idempotency keys and
// counter deltas to add once the transaction has committed.
type applied struct {
	hub.ApplyResult
	keys     []schemas.EventKey
	counters []stats.Delta
}

// oldestFirst returns the list's changes in version order.
func (l *changeList) oldestFirst() []hub.Change {
	n := 0
	for c := l; c != nil; c = c.Next {
		n++
	}
	out := make([]hub.Change, n)
	for c := l; c != nil; c = c.Next {
		n--
		out[n] = c.Change
	}
	return out
}

// Person implements hub.Store.
func (s *Store) Person(ctx context.Context, id citizenid.ID) (hub.Record, error) {
	txn := s.db.Txn(false)
	raw, err := txn.First("persons", "id", s.personKey(id))
	if err != nil {
		return hub.Record{}, fmt.Errorf("reading person: %w", err)
	}
	if raw == nil {
		return hub.Record{}, fmt.Errorf("person %v: %w", id, hub.ErrNotFound)
	}
	return raw.(*person).State.Record(), nil
}

// History implements hub.Store.
func (s *Store) History(ctx context.Context, id citizenid.ID) ([]hub.Change, error) {
	raw, err := s.db.Txn(false).First("persons", "id", s.personKey(id))
	if err != nil {
		return nil, fmt.Errorf("reading history: %w", err)
	}
	if raw == nil || raw.(*person).History == nil {
		return nil, fmt.Errorf("person %v: %w", id, hub.ErrNotFound)
	}
	return raw.(*person).History.oldestFirst(), nil
}

// PendingOutbox implements hub.Store.
func (s *Store) PendingOutbox(ctx context.Context, after int64, limit int) ([]hub.OutboxEntry, error) {
	return readEntries(s.db.Txn(false), "outbox", after, limit)
}

// entryRow is a row of the outbox or published table: entries in Seq
// order, keyed by a sequence number not above the first one's.
type entryRow interface {
	list() []hub.OutboxEntry
}

func (r *outboxRow) list() []hub.OutboxEntry    { return r.Entries }
func (r *publishedRow) list() []hub.OutboxEntry { return r.Entries }

// readEntries returns up to limit entries with Seq > after from table
// ("outbox" or "published"), in Seq order.
func readEntries(txn *memdb.Txn, table string, after int64, limit int) ([]hub.OutboxEntry, error) {
	after = max(after, 0)
	// From the row whose key is the largest not above after+1: it may
	// hold entries above after.
	it, err := txn.ReverseLowerBound(table, "id", uint64(after+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	var out []hub.OutboxEntry
	take := func(raw any) {
		for _, e := range raw.(entryRow).list() {
			if e.Seq > after && len(out) < limit {
				out = append(out, e)
			}
		}
	}
	if raw := it.Next(); raw != nil {
		take(raw)
	}
	if it, err = txn.LowerBound(table, "id", uint64(after+2)); err != nil {
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	for raw := it.Next(); raw != nil && len(out) < limit; raw = it.Next() {
		take(raw)
	}
	return out, nil
}

// chunkOf returns the outbox row whose first sequence number is the
// largest one not above seq, or nil.
func chunkOf(txn *memdb.Txn, seq uint64) (*outboxRow, error) {
	it, err := txn.ReverseLowerBound("outbox", "id", seq)
	if err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	if raw := it.Next(); raw != nil {
		return raw.(*outboxRow), nil
	}
	return nil, nil
}

// CountPendingOutbox implements hub.Store.
func (s *Store) CountPendingOutbox(ctx context.Context) (int64, error) {
	m, err := getMeta(s.db.Txn(false))
	if err != nil {
		return 0, err
	}
	return m.OutboxPending, nil
}

// MarkPublished implements hub.Store. Published entries move to the
// published table with the time of the call; the log records both
// without waiting for fsync: after a crash that loses the record, the
// entries are pending again and are published again, which JetStream
// drops by Nats-Msg-Id.
func (s *Store) MarkPublished(ctx context.Context, seqs []int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("marking published: store closed: %w", hub.ErrUnavailable)
	}
	at := time.Now()
	txn := s.db.Txn(true)
	defer txn.Abort()
	if err := markTxn(txn, seqs, at); err != nil {
		return err
	}
	if s.wal != nil {
		if err := s.wal.appendPublished(at, seqs); err != nil {
			return fmt.Errorf("writing the memdb store's log: %w", err)
		}
	}
	txn.Commit()
	return nil
}

// markTxn takes the entries seqs name out of the outbox and keeps them
// as published at at; a zero at drops them (a log written before
// published entries were kept).
func markTxn(txn *memdb.Txn, seqs []int64, at time.Time) error {
	m, err := getMeta(txn)
	if err != nil {
		return err
	}
	byChunk := map[uint64]map[int64]bool{}
	rows := map[uint64]*outboxRow{}
	for _, seq := range seqs {
		row, err := chunkOf(txn, uint64(seq))
		if err != nil {
			return err
		}
		if row == nil {
			continue
		}
		if byChunk[row.Seq] == nil {
			byChunk[row.Seq] = map[int64]bool{}
			rows[row.Seq] = row
		}
		byChunk[row.Seq][seq] = true
	}
	for first, done := range byChunk {
		row := rows[first]
		left := make([]hub.OutboxEntry, 0, len(row.Entries))
		for _, e := range row.Entries {
			if !done[e.Seq] {
				left = append(left, e)
			}
		}
		if len(left) == len(row.Entries) {
			continue // marked before
		}
		m.OutboxPending -= int64(len(row.Entries) - len(left))
		if len(left) == 0 {
			err = txn.Delete("outbox", row)
		} else {
			err = txn.Insert("outbox", &outboxRow{Seq: row.Seq, Entries: left})
		}
		if err != nil {
			return fmt.Errorf("updating outbox: %w", err)
		}
		if at.IsZero() {
			continue
		}
		moved := make([]hub.OutboxEntry, 0, len(row.Entries)-len(left))
		for _, e := range row.Entries {
			if done[e.Seq] {
				moved = append(moved, e)
			}
		}
		if err := keepPublished(txn, moved, at); err != nil {
			return err
		}
	}
	if err := txn.Insert("meta", &m); err != nil {
		return fmt.Errorf("writing meta: %w", err)
	}
	return nil
}

// keepPublished adds entries (in Seq order) to the published table as
// acknowledged at at, merged with the rows whose spans they overlap.
func keepPublished(txn *memdb.Txn, entries []hub.OutboxEntry, at time.Time) error {
	lo, hi := entries[0].Seq, entries[len(entries)-1].Seq
	it, err := txn.ReverseLowerBound("published", "id", uint64(hi))
	if err != nil {
		return fmt.Errorf("keeping published notifications: %w", err)
	}
	var overlapping []*publishedRow
	for raw := it.Next(); raw != nil; raw = it.Next() {
		row := raw.(*publishedRow)
		if row.Entries[len(row.Entries)-1].Seq < lo {
			break // spans do not overlap: neither do the rows before
		}
		overlapping = append(overlapping, row)
	}
	if len(overlapping) > 0 {
		merged := slices.Clone(entries)
		for _, row := range overlapping {
			merged = append(merged, row.Entries...)
			if err := txn.Delete("published", row); err != nil {
				return fmt.Errorf("keeping published notifications: %w", err)
			}
		}
		slices.SortFunc(merged, func(a, b hub.OutboxEntry) int { return cmp.Compare(a.Seq, b.Seq) })
		entries = merged
	}
	if err := txn.Insert("published", &publishedRow{Seq: uint64(entries[0].Seq), At: at.UnixNano(), Entries: entries}); err != nil {
		return fmt.Errorf("keeping published notifications: %w", err)
	}
	return nil
}

// PublishedOutbox implements hub.Store.
func (s *Store) PublishedOutbox(ctx context.Context, after int64, limit int) ([]hub.OutboxEntry, error) {
	return readEntries(s.db.Txn(false), "published", after, limit)
}

// DeletePublished implements hub.Store. The log records the cut without
// waiting for fsync: entries a crash brings back are deleted by the next
// call.
func (s *Store) DeletePublished(ctx context.Context, olderThan time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("deleting published notifications: store closed: %w", hub.ErrUnavailable)
	}
	cut := time.Now().Add(-max(olderThan, 0))
	txn := s.db.Txn(true)
	defer txn.Abort()
	n, err := deletePublishedTxn(txn, cut)
	if err != nil || n == 0 {
		return err
	}
	if s.wal != nil {
		if err := s.wal.appendDeletedPublished(cut); err != nil {
			return fmt.Errorf("writing the memdb store's log: %w", err)
		}
	}
	txn.Commit()
	return nil
}

// deletePublishedTxn deletes the published rows acknowledged at or before
// cut and returns how many. The table holds what was acknowledged within
// the relay's republish window, so it is walked whole.
func deletePublishedTxn(txn *memdb.Txn, cut time.Time) (int, error) {
	it, err := txn.Get("published", "id")
	if err != nil {
		return 0, fmt.Errorf("reading published notifications: %w", err)
	}
	var old []*publishedRow
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if row := raw.(*publishedRow); row.At <= cut.UnixNano() {
			old = append(old, row)
		}
	}
	for _, row := range old {
		if err := txn.Delete("published", row); err != nil {
			return 0, fmt.Errorf("deleting published notifications: %w", err)
		}
	}
	return len(old), nil
}

// Stats implements hub.Store.
func (s *Store) Stats(ctx context.Context) (hub.StoreStats, error) {
	m, err := getMeta(s.db.Txn(false))
	if err != nil {
		return hub.StoreStats{}, err
	}
	return hub.StoreStats{Persons: m.Persons, Changes: m.Changes, OutboxPending: m.OutboxPending}, nil
}

// Ping implements hub.Store.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("store closed")
	}
	if s.wal != nil {
		return s.wal.stuck()
	}
	return nil
}

// Close writes a final snapshot and closes the log. Safe to call twice.
// If the snapshot cannot be written (a full disk), Close returns why; no
// acknowledged batch is lost, the log still holds them and the next Open
// replays it.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closed = true
		if s.wal == nil {
			return
		}
		// Wait for a background snapshot, then write a final one so that
		// the next start replays nothing.
		if s.snapshotDone != nil {
			<-s.snapshotDone
		}
		s.closeErr = errors.Join(s.finalSnapshotLocked(), unlockDir(s.lock))
	})
	return s.closeErr
}

// decodeLogged turns a logged event back into an event without validating
// it again: it was valid when it was applied, and validation rules may have
// been tightened since, which must not keep the store from opening.
//
// The log holds the record's raw bytes, whose time may have a finer
// fraction than the event that was applied: schemas.Decode keeps
// microseconds (PostgreSQL's resolution). The time is truncated the same
// way here, or two events of the same microsecond could be ordered
// differently after a restart, and provenance and history would change.
// It is moved into China Standard Time (schemas.CST) as schemas.Decode
// moves it: the log holds the offset the department wrote.
//
// The time is read as a JSON string and parsed as schemas.Decode parses
// it (loggedTime), not as a time.Time: its UnmarshalJSON neither unescapes
// the string nor takes every form the live path takes, so an event applied
// live would keep the store from opening after a crash.
func decodeLogged(value []byte, _ time.Time) (schemas.Event, error) {
	var env struct {
		ID      string          `json:"id"`
		Source  schemas.Source  `json:"source"`
		Type    schemas.Type    `json:"type"`
		Subject string          `json:"subject"`
		Time    string          `json:"time"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(value, &env); err != nil {
		return schemas.Event{}, fmt.Errorf("decoding logged event: %w", err)
	}
	at, err := loggedTime(env.Time)
	if err != nil {
		return schemas.Event{}, fmt.Errorf("decoding logged event: %w", err)
	}
	data := schemas.NewData(env.Type)
	if data == nil {
		return schemas.Event{}, fmt.Errorf("decoding logged event: type %q left the catalogue", env.Type)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		return schemas.Event{}, fmt.Errorf("decoding logged event data: %w", err)
	}
	return schemas.Event{SpecVersion: schemas.SpecVersion, ID: env.ID, Source: env.Source, Type: env.Type,
		Subject: citizenid.ID(env.Subject), Time: at.Truncate(time.Microsecond).In(schemas.CST()), DataContentType: "application/json", Data: env.Data, Payload: data}, nil
}

// loggedTime parses a logged event's time, already unescaped, with the
// layout schemas.Decode parses it with (its parseTime, which is not
// exported): time.Parse with RFC3339Nano, which is more lenient than
// time.Time.UnmarshalJSON (it takes a one-digit hour, for one). The rules
// parseTime adds only refuse times and are not applied again: the event
// was accepted when it was applied, and rules tightened since must not
// keep the store from opening.
func loggedTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time: %w", err)
	}
	return t, nil
}

// Persons implements hub.Store. It walks persons in key order and filters
// on the address: the in-memory store keeps no address index, which would
// cost every write a radix-tree insert to serve an occasional walk; a
// page scans at most the whole table, which in memory takes milliseconds
// per hundred thousand persons. The cursor is the last key returned, in
// every walk, so it holds no address, and a region walk is in key order
// whether or not q.KeyOrder asks for it; a cursor of another shape than
// the store's keys (cursorShape) wraps hub.ErrInvalid, as in the
// PostgreSQL store, rather than start the walk wherever it sorts. A
// household (q.Household) is read from the household index instead, which
// eligibility asks for on every decision that lists a family.
func (s *Store) Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	if q.After != "" && !s.cursorShape(q.After) {
		return nil, "", errCursor
	}
	txn := s.db.Txn(false)
	if q.Household != "" {
		return s.household(txn, q)
	}
	it, err := txn.LowerBound("persons", "id", q.After)
	if err != nil {
		return nil, "", fmt.Errorf("listing persons: %w", err)
	}
	var out []hub.Record
	scanned := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		p := raw.(*person)
		if p.Key == q.After {
			continue
		}
		if scanned++; scanned%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, "", fmt.Errorf("listing persons: %w", err)
			}
		}
		if q.Region != "" && !strings.HasPrefix(p.State.AddressCode(), q.Region) {
			continue
		}
		out = append(out, p.State.Record())
		if len(out) == q.Limit {
			return out, p.Key, nil
		}
	}
	return out, "", nil
}

// household is Persons for q.Household: the members of one household, in
// key order from the household index.
func (s *Store) household(txn *memdb.Txn, q hub.PersonQuery) ([]hub.Record, string, error) {
	it, err := txn.LowerBound("persons", "household", q.Region, q.Household, q.After)
	if err != nil {
		return nil, "", fmt.Errorf("listing a household: %w", err)
	}
	var out []hub.Record
	for raw := it.Next(); raw != nil; raw = it.Next() {
		p := raw.(*person)
		if p.Address != q.Region || p.Household != q.Household {
			break
		}
		if p.Key == q.After {
			continue
		}
		out = append(out, p.State.Record())
		if len(out) == q.Limit {
			return out, p.Key, nil
		}
	}
	return out, "", nil
}

// errCursor refuses a cursor this store did not make. It does not repeat
// the cursor, which is the caller's to know.
var errCursor = fmt.Errorf("listing persons: the cursor was not made by this store: %w", hub.ErrInvalid)

// cursorShape reports whether c has the shape of the keys personKey makes,
// which a walk's cursor is.
func (s *Store) cursorShape(c string) bool { return sealing.IsPersonKey(c, s.cfg.Keys != nil) }

// Counts implements hub.Store.
func (s *Store) Counts(ctx context.Context, q hub.CountQuery) (map[string]hub.Tally, error) {
	rs, err := stats.AsOf(q.AsOf)
	if err != nil {
		return nil, err
	}
	return s.counters.tallies(q.Regions, rs), ctx.Err()
}
