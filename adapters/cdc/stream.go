package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
)

// Publisher sends events to the hub's Kafka topics. *publisher.Publisher
// is the one used in production. Publish returns one result per event, in
// order, once the broker acknowledged them (or gave up); the stream
// confirms a WAL position only after every event before it has a result
// without error or with a *schemas.RejectError (a bad row, never sent).
type Publisher interface {
	Publish(ctx context.Context, events ...schemas.Event) ([]publisher.Result, error)
}

// Config configures a Stream. Source, Postgres, Table, Mapping and
// Publisher are required.
type Config struct {
	// Source is the department the table belongs to.
	Source schemas.Source
	// Postgres is the department database's connection URL or DSN. Its
	// user needs the REPLICATION attribute, SELECT on the table, and the
	// ownership of the table's publication, whose comment records the
	// initial copy: on first start it creates the publication, for which
	// it must own the table and have CREATE on the database; or the
	// table's owner creates it beforehand and hands it over (see the
	// package documentation).
	Postgres string
	// Table is the table to stream, optionally schema-qualified
	// ("housing.rentals"); unquoted names are folded to lower case as in
	// SQL.
	Table string
	// Mapping says how rows become events.
	Mapping Mapping
	// Publisher sends the events.
	Publisher Publisher
	// Slot is the replication slot (default pophub_<source>_<table>, see
	// defaultName); it holds the stream's position.
	Slot string
	// Publication is the publication of the table (default
	// pophub_<table>, see defaultName).
	Publication string
	// BatchSize bounds the events published at once (default 1000).
	BatchSize int
	// FlushInterval is how long changes wait for more before they are
	// published (default 50ms).
	FlushInterval time.Duration
	// StatusInterval is how often the stream tells PostgreSQL its
	// position when nothing else made it do so (default 10s); it must be
	// well under the server's wal_sender_timeout (default 60s). It is
	// also how often, at most, the stream checks that the table's name
	// still names the table it streams (see checkTable): a position is
	// confirmed only once a check made after it was received passed.
	StatusInterval time.Duration
	// ReceiveTimeout is how long a session may hear nothing from
	// PostgreSQL, although every status update asks the server to answer
	// at once, before the connection is presumed cut and the session is
	// started again (default 60s). A network path that drops every
	// packet, or a firewall that forgot the connection, otherwise leaves
	// the session waiting for changes that never come until the
	// operating system gives up on the connection, a quarter of an hour
	// or more.
	ReceiveTimeout time.Duration
	// SlotWait is how long to wait for the slot to be released by a
	// previous connection that is still going away (default 30s).
	SlotWait time.Duration
	// ProgressInterval is how often the stream, while streaming, logs its
	// counters (see Stats) when they changed since it last did (default
	// 1m). It logs them too when it stops.
	ProgressInterval time.Duration
	// Logger receives progress and bad rows (default: discard). It never
	// sees a citizen ID (one in a bad row's record key is masked) or a
	// row's values other than that key.
	Logger *slog.Logger

	// earlierSlot is the default slot of versions before hashed names
	// (see defaultName) when Slot was defaulted to another name, and
	// earlierPublication theirs whenever Publication was defaulted: a
	// table streamed under them keeps them (see keepEarlierNames).
	earlierSlot, earlierPublication string
	// findSlot: Slot was defaulted, and a slot of the table under
	// another spelling of Table is continued when Slot does not exist
	// (see continueSlot); defaultPublication: so was Publication.
	findSlot, defaultPublication bool
}

func (c *Config) setDefaults() {
	if c.Slot == "" {
		prefix := "pophub_" + string(c.Source) + "_"
		c.Slot = defaultName(prefix, c.Table)
		c.findSlot = true
		if earlier := earlierDefaultName(prefix, c.Table); earlier != c.Slot {
			c.earlierSlot = earlier
		}
	}
	if c.Publication == "" {
		c.Publication = defaultName("pophub_", c.Table)
		c.defaultPublication = true
		c.earlierPublication = earlierDefaultName("pophub_", c.Table)
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 50 * time.Millisecond
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.ReceiveTimeout <= 0 {
		c.ReceiveTimeout = 60 * time.Second
	}
	if c.SlotWait <= 0 {
		c.SlotWait = 30 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Validate reports whether the configuration can work. It is called
// after setDefaults, so Slot and Publication are set.
func (c *Config) Validate() error {
	switch {
	case !c.Source.Valid():
		return fmt.Errorf("source %q is not a department source", c.Source)
	case c.Postgres == "":
		return errors.New("the PostgreSQL connection URL is required")
	case c.Table == "":
		return errors.New("the table is required")
	case c.Publisher == nil:
		return errors.New("a publisher is required")
	case !slotName.MatchString(c.Slot):
		return fmt.Errorf("slot %q: a replication slot name has 1 to 63 lower-case letters, digits and _", c.Slot)
	case !slotName.MatchString(c.Publication):
		return fmt.Errorf("publication %q: use 1 to 63 lower-case letters, digits and _", c.Publication)
	}
	return nil
}

// Stream streams one table's changes into events. Create it with New and
// call Run once.
type Stream struct {
	cfg Config
	// names guards cfg.Slot and cfg.Publication, which Run's goroutine
	// alone writes (see keepEarlierNames), for Slot and Publication.
	names sync.Mutex
	plan  *plan
	log   *slog.Logger
	stats struct {
		snapshot, published, rejected, ignored, skipped, upgraded, truncated atomic.Int64
		confirmed                                                            atomic.Uint64
		retained                                                             atomic.Int64
	}
	// logged is what the last progress log said; only Run's goroutine
	// touches it, and warned (the inactive slots of the table were
	// reported).
	logged Stats
	warned bool
	// handled is how far the last session of this Run got (see
	// handledPosition); only Run's goroutine touches it.
	handled handledPosition
	// slotCreated, when set, runs once a copy's slot exists and before
	// the copy reads its rows: tests change rows there, in the window
	// whose changes reach the hub both from the slot and, as they were
	// before, from the copy.
	slotCreated func(context.Context)
}

// Stats counts what a stream did since New. It is safe to read while the
// stream runs.
type Stats struct {
	// Snapshot counts the rows of the initial snapshot read.
	Snapshot int64
	// Published counts events the broker acknowledged.
	Published int64
	// Rejected counts bad rows: an invalid citizen ID, a value that does
	// not convert, an event the schemas reject, or a delete whose row
	// PostgreSQL did not keep (see ErrTableChanged). They are logged, not
	// sent, and do not stop the stream.
	Rejected int64
	// Ignored counts changes of a kind the mapping leaves out.
	Ignored int64
	// Truncated counts truncates of the table: the rows they removed are
	// not ended in the hub (each is logged as an error saying how to send
	// their ends), and the stream goes on.
	Truncated int64
	// Skipped counts transactions PostgreSQL sent again that had been
	// confirmed already.
	Skipped int64
	// Upgraded counts the legacy 15-digit citizen IDs (subjects, and data
	// fields such as spouse_id) upgraded to 18 digits in published events.
	Upgraded int64
	// Confirmed is the WAL position last confirmed to PostgreSQL.
	Confirmed pglogrepl.LSN
	// RetainedWAL is the bytes of WAL the slot kept on the department's
	// server (from its restart position to the server's current one) when
	// the progress was last logged; -1 before then or when it could not
	// be read. The server keeps them until the stream confirms past
	// them, and keeps adding to them while the stream is stopped.
	RetainedWAL int64
}

// New checks the configuration and compiles the mapping; it does not
// connect.
func New(cfg Config) (*Stream, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring cdc: %w", err)
	}
	p, err := cfg.Mapping.compile(cfg.Source, cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("compiling mapping: %w", err)
	}
	log := cfg.Logger.With("source", string(cfg.Source), "table", cfg.Table, "slot", cfg.Slot)
	st := &Stream{cfg: cfg, plan: p, log: log}
	st.stats.retained.Store(-1)
	st.logged.RetainedWAL = -1
	return st, nil
}

// Stats returns the counters.
func (s *Stream) Stats() Stats {
	return Stats{
		Snapshot:  s.stats.snapshot.Load(),
		Published: s.stats.published.Load(),
		Rejected:  s.stats.rejected.Load(),
		Ignored:   s.stats.ignored.Load(),
		Truncated: s.stats.truncated.Load(),
		Skipped:   s.stats.skipped.Load(),
		Upgraded:  s.stats.upgraded.Load(),
		Confirmed: pglogrepl.LSN(s.stats.confirmed.Load()),

		RetainedWAL: s.stats.retained.Load(),
	}
}

// logProgress logs the counters and the WAL the slot retains (read on
// db, when not nil), unless they are what it logged last: retained WAL
// counts as changed once it moved by a WAL segment, as the server's
// other work moves it a little all the time.
func (s *Stream) logProgress(ctx context.Context, db *pgx.Conn, msg string) {
	if db != nil {
		s.stats.retained.Store(s.retainedWAL(ctx, db))
	}
	st := s.Stats()
	last := s.logged
	retainedMoved := st.RetainedWAL != last.RetainedWAL && (st.RetainedWAL < 0 || last.RetainedWAL < 0 ||
		max(st.RetainedWAL-last.RetainedWAL, last.RetainedWAL-st.RetainedWAL) >= walSegment)
	last.RetainedWAL = st.RetainedWAL
	if st == last && !retainedMoved && msg == progressMsg {
		return
	}
	s.logged = st
	s.log.InfoContext(ctx, msg, "snapshot_rows", st.Snapshot, "published", st.Published, "bad_rows", st.Rejected,
		"ignored", st.Ignored, "truncates", st.Truncated, "skipped_transactions", st.Skipped, "upgraded_ids", st.Upgraded, "confirmed_lsn", st.Confirmed.String(),
		"retained_wal_bytes", st.RetainedWAL)
}

// walSegment is PostgreSQL's default WAL segment size.
const walSegment = 16 << 20

const progressMsg = "cdc: progress"

// Slot and Publication name what the stream uses in the database. Until
// Run set up the stream they are the configured or default names, which
// it may replace by the ones an earlier version used for the table (see
// keepEarlierNames).
func (s *Stream) Slot() string {
	s.names.Lock()
	defer s.names.Unlock()
	return s.cfg.Slot
}

func (s *Stream) Publication() string {
	s.names.Lock()
	defer s.names.Unlock()
	return s.cfg.Publication
}

// Run sets up the publication and slot when they are missing (taking the
// initial snapshot with a new slot), then streams changes until ctx ends.
// It then publishes the changes of complete transactions received so far,
// confirms their position, closes its connections and returns ctx's
// error. A failure while streaming (the database restarting, Kafka
// unreachable) is retried from the slot's confirmed position, after a
// wait that starts at half a second and doubles, up to 30s, while
// sessions keep failing; a session that streamed for a minute, or
// confirmed events it published, starts the waits over (see nextBackoff).
// A failure before the first successful start (a missing table,
// wal_level not logical, no REPLICATION privilege) is returned, and so
// are ErrTableChanged, ErrPublicationChanged and ErrSlotLost, which no
// retry can cure.
func (s *Stream) Run(ctx context.Context) error {
	var backoff time.Duration
	started := false
	for {
		var sess sessionRecord
		err := s.session(ctx, &started, &sess)
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				return err // the final flush failed
			}
			return ctx.Err()
		}
		if !started || errors.Is(err, ErrTableChanged) || errors.Is(err, ErrPublicationChanged) || errors.Is(err, ErrSlotLost) {
			return err
		}
		backoff = nextBackoff(backoff, sess.healthy())
		s.log.WarnContext(ctx, "cdc: streaming failed; reconnecting from the slot's position", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// replicationError is the server's error ending the replication stream.
// One that a publication it cannot find caused is final: the server
// decodes each change through the publication as it was when the change
// was made, so a change made while the publication did not exist fails
// on every session, even once it exists again, and retrying would keep
// the slot, and the WAL it holds, where it is for ever.
func (s *Stream) replicationError(st *streamState, err *pgconn.PgError) error {
	if err.Code != "42704" || !strings.Contains(err.Message, "publication") { // undefined_object
		return fmt.Errorf("replicating: %w", err)
	}
	return fmt.Errorf("streaming %s: %w: the server cannot decode the slot's changes past LSN %s (%s): publication %s was dropped "+
		"while changes of the table were made, and the server reads each change through the publication as it was then. "+
		"Drop the slot (SELECT pg_drop_replication_slot('%s')) and start again: the next start creates the publication if it is "+
		"missing and copies the table again; rows deleted meanwhile are not ended in the hub, so end those by hand. "+
		"Nothing past LSN %s is confirmed",
		st.tbl.qualified, ErrPublicationChanged, st.verified, err.Message, s.cfg.Publication, s.cfg.Slot, st.verified)
}

// Reconnecting: the first wait, the longest, and how long a session must
// stream for its failure to count as a new outage rather than more of
// the same.
const (
	minBackoff    = 500 * time.Millisecond
	maxBackoff    = 30 * time.Second
	healthyStream = time.Minute
)

// nextBackoff is the wait before reconnecting after a failed session,
// given the wait before it (0 before the first) and whether the session
// was healthy: a healthy one starts the waits over, so that a brief blip
// after a long outage costs half a second, not the longest wait; a
// session failing again and again doubles them up to maxBackoff.
func nextBackoff(prev time.Duration, healthy bool) time.Duration {
	if prev == 0 || healthy {
		return minBackoff
	}
	return min(prev*2, maxBackoff)
}

// sessionRecord is what Run learns of a session for its backoff.
type sessionRecord struct {
	// streamedAt is when it started streaming (zero: it did not).
	streamedAt time.Time
	// from is the position it streamed from, and published
	// Stats.Published then.
	from      pglogrepl.LSN
	published int64
	// progressed: Kafka took events of the session, and the stream
	// confirmed a position past from. Neither alone says the stream
	// works: a transaction too large to hold publishes events it cannot
	// confirm yet, and with Kafka down, the position still moves past
	// other tables' changes.
	progressed bool
}

// healthy reports whether the session streamed for healthyStream or
// confirmed events it published.
func (r *sessionRecord) healthy() bool {
	return !r.streamedAt.IsZero() && (time.Since(r.streamedAt) >= healthyStream || r.progressed)
}

// session connects, sets up and streams until ctx ends or an error,
// recording in rec how far it got.
func (s *Stream) session(ctx context.Context, started *bool, rec *sessionRecord) error {
	db, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer db.Close(context.WithoutCancel(ctx))
	tbl, err := s.inspect(ctx, db)
	if err != nil {
		return err
	}
	if err := s.keepEarlierNames(ctx, db, tbl); err != nil {
		return err
	}
	if err := s.continueSlot(ctx, db, tbl); err != nil {
		return err
	}
	if err := s.checkMissing(ctx, db, tbl); err != nil {
		return err
	}
	if !s.warned {
		// Once a Run: the slots do not change while it streams.
		s.warnInactiveSlots(ctx, db, tbl)
		s.warned = true
	}
	if err := s.ensurePublication(ctx, db, tbl); err != nil {
		return err
	}
	if tbl.publication, err = s.readPublication(ctx, db, tbl); err != nil {
		return err
	}
	repl, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))

	server, err := pglogrepl.IdentifySystem(ctx, repl)
	if err != nil {
		return fmt.Errorf("identifying the PostgreSQL server: %w", err)
	}
	start, err := s.ensureSlot(ctx, db, repl, tbl)
	if err != nil {
		return err
	}
	// db stays open: the stream checks the table's name on it.
	if err := s.startReplication(ctx, repl, start); err != nil {
		// The slot may have been invalidated since it was checked (or
		// while the copy was taken): say so rather than PostgreSQL's
		// bare "cannot read from logical replication slot".
		var walStatus, lsn *string
		if db.QueryRow(ctx, `SELECT to_jsonb(s)->>'wal_status', confirmed_flush_lsn::text FROM pg_replication_slots s WHERE slot_name = $1`,
			s.cfg.Slot).Scan(&walStatus, &lsn) == nil && deref(walStatus) == "lost" {
			return slotLost(s.cfg.Slot, deref(lsn))
		}
		return err
	}
	*started = true
	s.stats.confirmed.Store(uint64(start))
	s.log.InfoContext(ctx, "cdc: streaming", "from_lsn", start.String())
	now := time.Now()
	*rec = sessionRecord{streamedAt: now, from: start, published: s.stats.published.Load()}
	here := handledPosition{system: server.SystemID, timeline: server.Timeline, slot: s.cfg.Slot}
	st := &streamState{conn: repl, tbl: tbl, rec: rec, catalog: db, verified: start,
		acked: start, skipBefore: max(start, s.handled.on(here)), nextStatus: now.Add(s.cfg.StatusInterval), nextProgress: now.Add(s.cfg.ProgressInterval)}
	err = s.stream(ctx, st)
	here.lsn = max(st.acked, st.skipBefore) // a session ended before the resends keeps the earlier one's
	s.handled = here
	return err
}

// handledPosition is the position before which a session handled every
// transaction (published its events, or found them none of the table's),
// on one server's timeline through one slot. The slot's position lags
// it: a confirmation waits for the next check of the table, and one in
// flight when the connection is cut is lost with it. PostgreSQL then
// sends those transactions again to the next session, which skips them
// rather than publish their events twice.
type handledPosition struct {
	system   string
	timeline int32
	slot     string
	lsn      pglogrepl.LSN
}

// on is the position handled on the server, timeline and slot of here;
// 0 on any other: a standby promoted since may have written other
// transactions at the positions the old primary had reached.
func (h handledPosition) on(here handledPosition) pglogrepl.LSN {
	if h.system != here.system || h.timeline != here.timeline || h.slot != here.slot {
		return 0
	}
	return h.lsn
}

// connect opens a plain connection to the department's database.
func (s *Stream) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.cfg.Postgres)
	if err != nil {
		return nil, fmt.Errorf("parsing PostgreSQL URL: %w", err)
	}
	setSessionParams(cfg.RuntimeParams)
	db, err := pgx.ConnectConfig(ctx, cfg)
	if insufficientPrivilege(err) {
		return nil, connectDenied(&cfg.Config, false, err)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	return db, nil
}

// connectReplication opens a replication connection.
func (s *Stream) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(s.cfg.Postgres)
	if err != nil {
		return nil, fmt.Errorf("parsing PostgreSQL URL: %w", err)
	}
	setSessionParams(cfg.RuntimeParams)
	cfg.RuntimeParams["replication"] = "database"
	repl, err := pgconn.ConnectConfig(ctx, cfg)
	if insufficientPrivilege(err) {
		return nil, connectDenied(cfg, true, err)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL for replication: %w", err)
	}
	return repl, nil
}

// startReplication starts streaming the slot's changes from a position.
func (s *Stream) startReplication(ctx context.Context, repl *pgconn.PgConn, from pglogrepl.LSN) error {
	err := pglogrepl.StartReplication(ctx, repl, s.cfg.Slot, from, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + s.cfg.Publication + "'"},
	})
	if err != nil {
		return fmt.Errorf("starting replication from slot %s: %w", s.cfg.Slot, err)
	}
	return nil
}

// setSessionParams fixes how PostgreSQL prints values, on both
// connections, so that dates and timestamps read the same whether they
// come from the snapshot or from the WAL.
//
// It also asks for UTF-8, which is what the hub reads: without it
// PostgreSQL sends text, the copy's and the changes' alike, in the
// database's encoding (EUC_CN for many Chinese databases) or in a
// client_encoding that ALTER DATABASE or ALTER ROLE … SET gives its other
// clients (GBK, GB18030), and reads the table's name in it. A parameter
// sent at the connection's start wins over both, and over the URL's
// options (-c client_encoding=…).
func setSessionParams(p map[string]string) {
	p["client_encoding"] = "UTF8"
	p["DateStyle"] = "ISO, YMD"
	p["TimeZone"] = "UTC"
	p["IntervalStyle"] = "iso_8601"
	p["extra_float_digits"] = "3"
	if p["application_name"] == "" {
		p["application_name"] = "pophub-cdc"
	}
}

// streamState is one replication session's position bookkeeping.
type streamState struct {
	conn *pgconn.PgConn
	tbl  *tableInfo
	// rel is PostgreSQL's latest description of the table, and relFit
	// what checkRelation found of it.
	rel    *pglogrepl.RelationMessage
	relFit relationFit

	// acked: every change before it is published (or bad, or not ours):
	// the position confirmed to PostgreSQL once verified reaches it.
	acked pglogrepl.LSN
	// catalog is a plain connection on which the table is checked (see
	// checkTable); nil in a catch-up, which confirms its position
	// unchecked: the copy after it reads the table by name.
	catalog *pgx.Conn
	// verified: a check that the configured name still names the table
	// passed after every position before it was received. nextCheck is
	// the earliest time of the next check; zero: at the next
	// confirmation.
	verified  pglogrepl.LSN
	nextCheck time.Time
	// skipBefore: a transaction whose commit record lies before it was
	// confirmed in an earlier session; PostgreSQL may send it again.
	skipBefore pglogrepl.LSN
	// lastCommitEnd is the end of the last transaction fully received.
	lastCommitEnd pglogrepl.LSN

	inTx       bool
	skipTx     bool
	commitTime time.Time
	// commitLSN is the position of the current transaction's commit.
	commitLSN pglogrepl.LSN

	pending []queued
	// committed counts the pending events of complete transactions.
	committed    int
	pendingSince time.Time
	nextStatus   time.Time
	nextProgress time.Time // the next progress log (streaming only)

	// rec is Run's record of a streaming session; nil in a catch-up.
	rec *sessionRecord
	// silent is how long the session has waited on the connection since
	// the server last sent anything (see ReceiveTimeout). Time spent
	// converting and publishing does not count: the server may well have
	// written meanwhile.
	silent time.Duration

	// catchUp, when set, makes this a session that only sends the ends a
	// failed initial copy owes, up to a new copy's position (see resend).
	catchUp *catchUp
}

// stream receives, converts and publishes changes until ctx ends.
func (s *Stream) stream(ctx context.Context, st *streamState) error {
	// failed ends the session on err, unless the error is ctx ending in
	// the middle of a step (the table check or the status update of a
	// flush): then it stops as on any cancellation, confirming what Kafka
	// took, which would otherwise be sent again by the next start.
	failed := func(err error) error {
		if ctx.Err() != nil {
			return s.stop(ctx, st)
		}
		return err
	}
	for {
		now := time.Now()
		if st.committed > 0 && now.Sub(st.pendingSince) >= s.cfg.FlushInterval {
			if err := s.flush(ctx, st, st.committed); err != nil {
				return failed(err)
			}
		}
		if !now.Before(st.nextStatus) {
			if err := s.sendStatusDetached(ctx, st); err != nil {
				return failed(err)
			}
		}
		if st.rec != nil && !now.Before(st.nextProgress) {
			// Checked at least every StatusInterval, which is precise
			// enough for a log.
			s.logProgress(ctx, st.catalog, progressMsg)
			st.nextProgress = now.Add(s.cfg.ProgressInterval)
		}
		if st.silent >= s.cfg.ReceiveTimeout {
			return fmt.Errorf("receiving replication messages: nothing from PostgreSQL for %s although asked to answer every %s: the connection is presumed cut",
				st.silent.Round(time.Millisecond), s.cfg.StatusInterval)
		}
		deadline := minTime(st.nextStatus, now.Add(s.cfg.ReceiveTimeout-st.silent))
		if st.committed > 0 {
			deadline = minTime(deadline, st.pendingSince.Add(s.cfg.FlushInterval))
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := st.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return s.stop(ctx, st)
			}
			if pgconn.Timeout(err) {
				st.silent += time.Since(now)
				continue
			}
			return fmt.Errorf("receiving replication message: %w", err)
		}
		st.silent = 0
		switch msg := msg.(type) {
		case *pgproto3.ErrorResponse:
			return s.replicationError(st, pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, st, msg.Data); err != nil {
				return failed(err)
			}
			if st.catchUp != nil && st.catchUp.done {
				return s.finishCatchUp(ctx, st)
			}
		}
	}
}

// stopTimeout bounds the publishing a stop waits for.
const stopTimeout = 30 * time.Second

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// finishCatchUp ends a catch-up session once every transaction before
// its position was received: it publishes their ends and confirms the
// position, past which the new copy holds every change.
func (s *Stream) finishCatchUp(ctx context.Context, st *streamState) error {
	if err := s.flush(ctx, st, len(st.pending)); err != nil {
		return err
	}
	st.acked = max(st.acked, st.catchUp.until)
	return s.sendStatus(ctx, st)
}

// stop ends a session on cancellation: it publishes the events of
// complete transactions, confirms their position and leaves the events of
// a transaction still being received for PostgreSQL to send again.
func (s *Stream) stop(ctx context.Context, st *streamState) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	st.nextCheck = time.Time{} // confirm all that was handled, checked
	if err := s.flush(sctx, st, st.committed); err != nil {
		return fmt.Errorf("publishing on stop: %w", err)
	}
	if err := s.sendStatus(sctx, st); err != nil {
		return fmt.Errorf("confirming position on stop: %w", err)
	}
	s.logProgress(sctx, st.catalog, "cdc: stopped")
	return ctx.Err()
}

func (s *Stream) handleCopyData(ctx context.Context, st *streamState, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("parsing keepalive: %w", err)
		}
		// Between transactions, everything the server sent up to its WAL
		// end was received. With nothing pending it is handled: confirming
		// it lets the server recycle WAL that other tables' changes fill.
		// A catch-up is done once that reaches its position, and must not
		// confirm past it: the changes after it are the stream's.
		switch {
		case st.inTx:
		case st.catchUp != nil:
			st.catchUp.done = ka.ServerWALEnd >= st.catchUp.until
			if st.catchUp.done {
				return nil
			}
		case len(st.pending) == 0 && ka.ServerWALEnd > st.acked:
			st.acked = ka.ServerWALEnd
		}
		if ka.ReplyRequested {
			return s.sendStatus(ctx, st)
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("parsing XLogData: %w", err)
		}
		return s.handleWAL(ctx, st, xld)
	}
	return nil
}

func (s *Stream) handleWAL(ctx context.Context, st *streamState, xld pglogrepl.XLogData) error {
	m, err := pglogrepl.Parse(xld.WALData)
	if err != nil {
		return fmt.Errorf("decoding pgoutput message: %w", err)
	}
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		// The table is known by its OID, which a rename keeps. PostgreSQL
		// describes it before its first change of a session and again
		// after its definition changed; the description is checked at the
		// first change it describes.
		if m.RelationID == st.tbl.oid {
			st.rel, st.relFit = m, relationUnchecked
		}
	case *pglogrepl.BeginMessage:
		if st.catchUp != nil && m.FinalLSN >= st.catchUp.until {
			// Sent in commit order: every transaction before it came.
			st.catchUp.done = true
			return nil
		}
		st.inTx, st.commitTime, st.commitLSN = true, m.CommitTime, m.FinalLSN
		// pgoutput sends transactions in commit order; one committed
		// before the confirmed position was handled by an earlier session.
		st.skipTx = m.FinalLSN < st.skipBefore
		if st.skipTx {
			s.stats.skipped.Add(1)
		}
	case *pglogrepl.CommitMessage:
		st.inTx, st.skipTx = false, false
		st.lastCommitEnd = max(st.lastCommitEnd, m.TransactionEndLSN)
		if len(st.pending) == 0 {
			st.acked = max(st.acked, m.TransactionEndLSN)
			return nil
		}
		if st.committed == 0 {
			st.pendingSince = time.Now()
		}
		st.committed = len(st.pending)
		if st.committed >= s.cfg.BatchSize {
			return s.flush(ctx, st, st.committed)
		}
	case *pglogrepl.InsertMessage:
		return s.handleChange(ctx, st, rowChange{kind: opInsert, relID: m.RelationID, lsn: xld.WALStart, newTuple: m.Tuple})
	case *pglogrepl.UpdateMessage:
		return s.handleChange(ctx, st, rowChange{kind: opUpdate, relID: m.RelationID, lsn: xld.WALStart,
			oldTuple: m.OldTuple, oldKeyOnly: m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey, newTuple: m.NewTuple})
	case *pglogrepl.DeleteMessage:
		return s.handleChange(ctx, st, rowChange{kind: opDelete, relID: m.RelationID, lsn: xld.WALStart,
			oldTuple: m.OldTuple, oldKeyOnly: m.OldTupleType == pglogrepl.DeleteMessageTupleTypeKey})
	case *pglogrepl.TruncateMessage:
		if !st.skipTx && slices.Contains(m.RelationIDs, st.tbl.oid) {
			s.truncated(ctx, st, xld.WALStart)
		}
	}
	return nil
}

// truncated reports a truncate of the table. It carries no rows, so the
// rows it removed cannot be ended in the hub, which keeps them registered
// until the department sends their ends. Stopping would not help: the
// next start meets the same truncate.
func (s *Stream) truncated(ctx context.Context, st *streamState, lsn pglogrepl.LSN) {
	s.stats.truncated.Add(1)
	how := "the mapping does not map deletes, so the hub is not told of removed rows anyway"
	if s.plan.ops[opDelete] != nil {
		how = "to end them, insert the removed rows again (from a backup, say) and delete them while the stream runs, " +
			"or send their ends another way (pophub import or pophub publish)"
	}
	s.log.ErrorContext(ctx, "cdc: the table was truncated; the rows it removed are not ended in the hub, which keeps them registered: "+how,
		"lsn", lsn.String())
}

// rowChange is one row change as pgoutput sends it.
type rowChange struct {
	kind               string // opInsert, opUpdate or opDelete
	relID              uint32
	lsn                pglogrepl.LSN
	oldTuple, newTuple *pglogrepl.TupleData
	// oldKeyOnly: oldTuple holds only the replica identity's columns; the
	// others come as NULL, though they were simply not kept.
	oldKeyOnly bool
}

// handleChange converts one row change into its events and queues them:
// the mapping's event, and, for an update that moved the row to another
// citizen or record key with deletes mapped, the end of the row where it
// was (see plan.movedAway). A change that shows the table no longer fits
// the mapping stops the stream before its position is confirmed.
func (s *Stream) handleChange(ctx context.Context, st *streamState, c rowChange) error {
	if st.skipTx || c.relID != st.tbl.oid {
		// Confirmed already, or another table of a shared publication. A
		// partitioned table's changes arrive under its own OID: its
		// publication publishes via the partition root (see
		// ensurePublication).
		return nil
	}
	if st.rel == nil {
		return fmt.Errorf("decoding %s at %s: relation %d was not described", c.kind, c.lsn, c.relID)
	}
	if err := s.checkRelation(ctx, st, c.lsn); err != nil {
		return s.stopOnTableChange(ctx, st, err)
	}
	// A partitioned table's old rows are marked by the root's replica
	// identity, yet hold what the partition's kept: the mark says nothing.
	oldKeyOnly := c.oldKeyOnly && !st.tbl.partitioned
	old := tupleRow(st.tbl, st.rel, c.oldTuple, oldKeyOnly)
	r := tupleRow(st.tbl, st.rel, c.newTuple, false)
	if r == nil {
		r = old
	} else if old != nil {
		for name, cl := range r {
			if o, ok := old[name]; cl.unchanged && ok && !o.unchanged {
				r[name] = o
			}
		}
	}
	if c.kind == opUpdate && s.plan.ops[opDelete] != nil && s.plan.movedAway(old, r) {
		end := change{kind: opDelete, row: old, version: int64(c.lsn), commit: st.commitTime, oldSide: true}
		if err := s.queue(ctx, st, c, end); err != nil {
			return err
		}
	}
	if st.catchUp != nil && c.kind != opDelete {
		return nil // the new copy holds the row as it is now
	}
	if s.plan.ops[c.kind] == nil {
		s.stats.ignored.Add(1)
		return nil
	}
	return s.queue(ctx, st, c, change{kind: c.kind, row: r, version: int64(c.lsn), commit: st.commitTime})
}

// queue converts a row change into its event and queues it. In a
// catch-up, only the ends a failed copy owes are queued.
func (s *Stream) queue(ctx context.Context, st *streamState, c rowChange, ch change) error {
	if st.catchUp != nil && !st.catchUp.owes(s.plan, ch.row) {
		return nil
	}
	ev, upgraded, err := s.plan.event(ch)
	if err != nil {
		if ch.kind == opDelete && st.tbl.partitioned {
			// Which partition held the row, and what it kept of it, the
			// change does not say: the partitions' settings now do.
			switch err := s.checkPartitions(ctx, st, c.lsn); {
			case errors.Is(err, ErrTableChanged):
				return s.stopOnTableChange(ctx, st, err)
			case err != nil:
				return err
			}
		}
		s.reject(ctx, c.kind, c.lsn, ev.ID, ch.row, err)
		return nil
	}
	q := queued{ev: ev, kind: c.kind, lsn: c.lsn, row: ch.row, upgraded: upgraded}
	st.pending = append(st.pending, q)
	if len(st.pending) >= 2*s.cfg.BatchSize {
		// A transaction too large to hold: publish what there is. Its
		// position is confirmed only at its commit, so after a crash its
		// first events are sent again with the same ids.
		return s.flush(ctx, st, len(st.pending))
	}
	return nil
}

// tupleRow reads a tuple by column name; nil for no tuple. With keyOnly,
// only the replica identity's columns are read: the others are absent,
// not NULL. Values are read as tbl.cell reads them.
func tupleRow(tbl *tableInfo, rel *pglogrepl.RelationMessage, t *pglogrepl.TupleData, keyOnly bool) row {
	if t == nil {
		return nil
	}
	r := make(row, len(t.Columns))
	for i, c := range t.Columns {
		if i >= len(rel.Columns) {
			break
		}
		if keyOnly && !isKeyColumn(rel.Columns[i]) {
			continue
		}
		name := rel.Columns[i].Name
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			r[name] = cell{null: true}
		case pglogrepl.TupleDataTypeToast:
			r[name] = cell{unchanged: true}
		default:
			r[name] = tbl.cell(name, rel.Columns[i].DataType, string(c.Data))
		}
	}
	return r
}

// reject logs and counts a bad row (Stats.Rejected, the progress log's
// bad_rows). The log names the change by its WAL position, its event id
// (a hash) and its record key (see plan.keyAttr): the event is not sent
// and the WAL cannot be read again, so the key is how the department
// finds the row to fix it. It never shows the row's other values.
func (s *Stream) reject(ctx context.Context, kind string, lsn pglogrepl.LSN, eventID string, r row, err error) {
	s.stats.rejected.Add(1)
	reason := schemas.ReasonOf(err)
	var re *rowError
	if errors.As(err, &re) {
		reason = re.reason
	}
	attrs := []any{"change", kind, "lsn", lsn.String(), s.plan.keyAttr(r), "reason", reason, "error", err}
	if eventID != "" {
		attrs = append(attrs, "event_id", eventID)
	}
	s.log.WarnContext(ctx, "cdc: skipping bad row", attrs...)
}

// flush publishes the first n pending events, n being at least the
// events of complete transactions, and, once they are acknowledged,
// confirms the end of the last complete transaction.
func (s *Stream) flush(ctx context.Context, st *streamState, n int) error {
	// A publish under way, and the confirmation after it, finish even if
	// ctx ends meanwhile, so a stop confirms what Kafka took instead of
	// leaving it to be sent again (and a query cancelled half way would
	// close the connection the stop confirms on).
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if n > 0 {
		batch := st.pending[:n]
		if st.catchUp != nil {
			var err error
			if batch, err = s.dropRecopied(pctx, st, batch); err != nil {
				return err
			}
			st.catchUp.resent += len(batch)
		}
		if len(batch) > 0 {
			if err := s.publish(pctx, batch); err != nil {
				return err
			}
		}
		st.pending = append(st.pending[:0], st.pending[n:]...)
	}
	st.committed = 0
	st.acked = max(st.acked, st.lastCommitEnd)
	return s.sendStatus(pctx, st)
}

// sendStatusDetached is sendStatus, finishing even if ctx ends meanwhile:
// a table check or a status update cancelled half way closes its
// connection, which the stop that follows confirms on.
func (s *Stream) sendStatusDetached(ctx context.Context, st *streamState) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	return s.sendStatus(sctx, st)
}

// queued is an event waiting to be published, with the change it comes
// from for the log.
type queued struct {
	ev   schemas.Event
	kind string
	lsn  pglogrepl.LSN
	// row is the change's row: its key names the row in the log should
	// the schemas refuse the event (see reject), and in a catch-up it is
	// the ended row (see dropRecopied). Only a reference to the map the
	// event was made from.
	row row
	// upgraded counts the legacy citizen IDs the event's were.
	upgraded int
}

// publish sends events; bad ones are logged and counted. Any other failure
// is returned: nothing after the first failed event may be confirmed.
func (s *Stream) publish(ctx context.Context, batch []queued) error {
	events := make([]schemas.Event, len(batch))
	for i, q := range batch {
		events[i] = q.ev
	}
	results, err := s.cfg.Publisher.Publish(ctx, events...)
	if err != nil {
		return fmt.Errorf("publishing %d events: %w", len(events), err)
	}
	var failed error
	delivered, refused, upgraded := 0, 0, 0
	for i, r := range results {
		switch {
		case r.Err == nil:
			delivered++
			upgraded += batch[i].upgraded
		case schemas.ReasonOf(r.Err) != "":
			s.reject(ctx, batch[i].kind, batch[i].lsn, r.ID, batch[i].row, r.Err)
		default:
			refused++
			if failed == nil {
				failed = r.Err
			}
		}
	}
	s.stats.published.Add(int64(delivered))
	s.stats.upgraded.Add(int64(upgraded))
	if failed != nil {
		return fmt.Errorf("publishing events: %d delivered, %d not taken by the broker: %w", delivered, refused, failed)
	}
	return nil
}

// sendStatus tells PostgreSQL the confirmed position: the slot keeps it,
// so that the next session starts there. It confirms what was handled
// (see confirmable).
func (s *Stream) sendStatus(ctx context.Context, st *streamState) error {
	pos, err := s.confirmable(ctx, st)
	if err != nil {
		return err
	}
	// The server answers a requested reply at once, which tells a quiet
	// session from a cut one (see ReceiveTimeout).
	err = pglogrepl.SendStandbyStatusUpdate(ctx, st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos, ReplyRequested: true,
	})
	if err != nil {
		return fmt.Errorf("sending standby status: %w", err)
	}
	s.stats.confirmed.Store(uint64(pos))
	st.nextStatus = time.Now().Add(s.cfg.StatusInterval)
	if pos < st.acked {
		// The rest waits for the next check, not for another interval.
		st.nextStatus = minTime(st.nextStatus, st.nextCheck)
	}
	if st.rec != nil && !st.rec.progressed {
		st.rec.progressed = pos > st.rec.from && s.stats.published.Load() > st.rec.published
	}
	return nil
}

// confirmable is the position the stream may confirm: what it handled
// (acked), once a check of the table made after it was received passed.
// Positions move past changes the stream does not take for its table's:
// a keepalive's, another table's commit. Had the table been renamed and
// another created under its name, the new table's changes would be among
// them, under another OID (or in no slot, until the new table is added
// to the publication), and the stream would go on, unaware; confirming
// past them would leave them out of the next start too. So until the
// next check, made at most once a StatusInterval, the position last
// checked is confirmed, and a check that fails stops the stream with
// ErrTableChanged.
func (s *Stream) confirmable(ctx context.Context, st *streamState) (pglogrepl.LSN, error) {
	if st.catalog == nil || st.acked <= st.verified {
		return st.acked, nil
	}
	now := time.Now()
	if now.Before(st.nextCheck) {
		return st.verified, nil
	}
	pos := st.acked // received before the check
	st.nextCheck = now.Add(s.cfg.StatusInterval)
	if err := s.checkTable(ctx, st); err != nil {
		switch {
		case errors.Is(err, ErrTableChanged):
			s.log.ErrorContext(ctx, "cdc: stopping: the table no longer fits the mapping", "confirmed_lsn", st.verified.String(), "error", err)
		case errors.Is(err, ErrPublicationChanged):
			s.log.ErrorContext(ctx, "cdc: stopping: the publication was altered while streaming", "confirmed_lsn", st.verified.String(), "error", err)
		}
		return st.verified, err
	}
	st.verified = pos
	return pos, nil
}

// eventID is the event id of a change: the record key and the change's
// version (see change.version), which PostgreSQL sends unchanged when it
// sends the change again.
func eventID(source schemas.Source, recordKey string, version int64) string {
	return publisher.EventID(source, recordKey, version)
}
