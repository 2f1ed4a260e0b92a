// Package notify publishes the hub's change notifications to NATS
// JetStream. Notifications are written to the store's outbox in the same
// transaction as the change; the relay here is the only publisher, so a
// notification leaves only after its change committed, and one that was
// committed but not yet published when the hub died leaves after the
// restart. Each message carries Nats-Msg-Id = change id, so a re-publish
// within the stream's duplicate window is dropped by JetStream.
//
// JetStream's file store fsyncs every two minutes by default, so a server
// that stops hard can lose messages it has acknowledged. The embedded
// server can sync every write; for a server that does not, set
// Config.RepublishWindow above its sync interval: the store keeps
// acknowledged entries that long, and the relay publishes them again when
// it starts (the hub may have gone down with the server, as in a power
// loss), whenever its connection was re-established, and when it had to
// create the stream again.
//
// A stream that is gone (a lost volume, a deletion by mistake) is created
// again, with Config.Stream, as soon as publishing finds it missing, and
// by an idle relay within a few seconds: on a quiet system the next
// publish may be hours away, and until the stream is back readiness fails
// and subscribers cannot attach.
//
// Several hub instances sharing one store run one relay each, but only
// the one holding the store's lease (Config.Lease) publishes; the others
// stand by and take over within a couple of seconds when the leader stops
// or its lease is lost. Two relays publishing the whole outbox would
// multiply NATS traffic and contend on the same rows for nothing.
//
// Telemetry: pophub_notifications_published_total{kind} (kind is the
// subject's second token: changed, migration, death, eligibility; other
// for anything else) counts the notifications the stream stored, so that
// its sum over instances is what the stream gained;
// pophub_notifications_republished_total those of the republish window
// it stored again (it had lost them); pophub_notifications_duplicate_total
// the acknowledgements of notifications the stream already held, which it
// dropped; pophub_notifications_lost_total the notifications the stream
// had stored and no longer holds though its limits did not remove them
// (see Relay; all four present from the start, at zero); the gauges
// pophub_relay_leader (1 while this instance's relay publishes, 0 while it
// stands by), pophub_nats_connected (1 while this instance is connected to
// NATS, 0 while not), pophub_outbox_backlog (the store's count of entries
// not yet acknowledged) and pophub_outbox_age_seconds (the age of the
// oldest of them, 0 when none waits), both read from the store at each
// scrape, so that every instance reports them whether or not its relay
// leads; the histogram pophub_relay_publish_duration_seconds, and one
// "outbox relay" span per round.
//
// Each message carries W3C trace context in its headers. An entry whose
// trace context (the one its change was committed with) is sampled gets a
// producer span "publish pop.<kind>" in that trace, a child of the
// context in the entry and linked to the round's span, lasting until
// JetStream acknowledged the message; the message carries that span's
// context, so the subscriber's span is its child. An entry with an
// unsampled trace context costs no span and carries its context
// unchanged. Span names use the subject's kind, not the subject, whose
// region tokens would make one name per region; the subject itself is the
// messaging.destination.name attribute. Citizen IDs never appear: the
// message id is the change id, a hash.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// StreamConfig configures the notification stream.
type StreamConfig struct {
	// Name and Subjects default to POP and pop.>; tests may override them.
	Name     string
	Subjects []string
	// Replicas is the stream's replica count; 0 keeps an existing
	// stream's count (an operator may have scaled it) and creates the
	// stream with 1.
	Replicas int
	// MaxAge bounds retention; 0 keeps an existing stream's limit and
	// creates the stream without one (keep everything).
	MaxAge time.Duration
	// DuplicateWindow must cover the longest time a notification may be
	// re-published after its first publish (default 10 minutes).
	DuplicateWindow time.Duration
	// Logger is told when the stream's age limit shortens the duplicate
	// window (default: discard).
	Logger *slog.Logger

	// lastSeen is the stream's configuration as a relay last saw it, for
	// creating a stream that went missing again with the limits an
	// operator had set with the NATS tools (restoreStream).
	lastSeen *jetstream.StreamConfig
}

// operatorLimits copies onto sc the settings of seen that an operator
// tunes with the NATS tools and the hub does not set.
func operatorLimits(sc *jetstream.StreamConfig, seen *jetstream.StreamConfig) {
	sc.Replicas, sc.Placement = seen.Replicas, seen.Placement
	sc.MaxAge, sc.MaxBytes, sc.MaxMsgs, sc.MaxMsgsPerSubject = seen.MaxAge, seen.MaxBytes, seen.MaxMsgs, seen.MaxMsgsPerSubject
	sc.MaxMsgSize, sc.MaxConsumers, sc.Compression = seen.MaxMsgSize, seen.MaxConsumers, seen.Compression
	sc.DenyDelete, sc.DenyPurge = seen.DenyDelete, seen.DenyPurge
}

func (c *StreamConfig) setDefaults() {
	if c.Name == "" {
		c.Name = schemas.StreamName
	}
	if len(c.Subjects) == 0 {
		c.Subjects = []string{schemas.StreamSubjects}
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
}

// EnsureStream creates the notification stream, or updates it to cfg. An
// existing stream keeps the limits the hub does not set (size and message
// limits, placement, and replicas and age unless cfg sets them), so that
// an operator's tuning survives a restart of the hub; the hub sets what
// its guarantees rest on: subjects, file storage, the duplicate window,
// limits retention.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) error {
	cfg.setDefaults()
	sc := jetstream.StreamConfig{Name: cfg.Name, Replicas: 1}
	switch st, err := js.Stream(ctx, cfg.Name); {
	case err == nil:
		sc = st.CachedInfo().Config
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("looking up stream %s: %w", cfg.Name, err)
	case cfg.lastSeen != nil:
		operatorLimits(&sc, cfg.lastSeen)
	}
	sc.Description = "pophub golden-record change notifications"
	sc.Subjects = cfg.Subjects
	sc.Storage = jetstream.FileStorage
	sc.Retention = jetstream.LimitsPolicy
	sc.Discard = jetstream.DiscardOld // a full stream never refuses the relay
	if cfg.Replicas > 0 {
		sc.Replicas = cfg.Replicas
	}
	if cfg.MaxAge > 0 {
		sc.MaxAge = cfg.MaxAge
	}
	sc.Duplicates = cfg.DuplicateWindow
	if sc.MaxAge > 0 && sc.Duplicates > sc.MaxAge {
		// JetStream requires it. Nothing is lost, but a notification
		// re-published after the shorter window is stored twice (under
		// the same Nats-Msg-Id), so the operator should hear of it.
		sc.Duplicates = sc.MaxAge
		if cfg.Logger != nil {
			cfg.Logger.WarnContext(ctx, "the stream's age limit shortens its duplicate window: a notification re-published after it is stored twice",
				"stream", cfg.Name, "max_age", sc.MaxAge, "duplicate_window", sc.Duplicates, "needed", cfg.DuplicateWindow)
		}
	}
	if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("creating or updating stream %s: %w", cfg.Name, err)
	}
	return nil
}

// Outbox is the part of the store the relay reads and acknowledges
// (hub.Store implements it; see its methods for the full contract).
type Outbox interface {
	// PendingOutbox returns up to limit entries not yet marked published
	// with Seq > after, in Seq order. The relay always asks from after = 0,
	// so an entry committed late with a lower Seq is not passed over.
	PendingOutbox(ctx context.Context, after int64, limit int) ([]hub.OutboxEntry, error)
	// CountPendingOutbox counts the entries not yet marked published; it
	// is read at every metrics scrape.
	CountPendingOutbox(ctx context.Context) (int64, error)
	// MarkPublished records that JetStream acknowledged these entries;
	// PendingOutbox does not return them again, PublishedOutbox does
	// until DeletePublished removes them. Marking twice is harmless.
	MarkPublished(ctx context.Context, seqs []int64) error
	// PublishedOutbox returns up to limit entries marked published and
	// not deleted yet with Seq > after, in Seq order.
	PublishedOutbox(ctx context.Context, after int64, limit int) ([]hub.OutboxEntry, error)
	// DeletePublished deletes the entries marked published at least
	// olderThan ago.
	DeletePublished(ctx context.Context, olderThan time.Duration) error
}

// OutboxAge is an Outbox that tells when its oldest pending entry was
// created without reading the entry (hub/postgres and hub/memdb do). The
// relay asks at every metrics scrape for pophub_outbox_age_seconds; of an
// Outbox without it, it reads the first pending entry instead.
type OutboxAge interface {
	// OldestPendingOutbox returns the CreatedAt of the first entry
	// PendingOutbox would return from after = 0, or the zero time when
	// none is pending. It must be cheap (an index lookup, not a count)
	// and safe for concurrent use.
	OldestPendingOutbox(ctx context.Context) (time.Time, error)
}

// StreamMarks is an Outbox that keeps the relay's last look at the
// notification stream (hub/postgres and hub/memdb do). What the relay saw
// of the stream otherwise lives in memory only, and a relay starting next
// to a NATS server that lost its store, or was given an older copy of it,
// could not tell that notifications subscribers had not read are gone.
type StreamMarks interface {
	// StreamMark returns the mark last saved for the stream, and false
	// when none was.
	StreamMark(ctx context.Context, stream string) (hub.StreamMark, bool, error)
	// SaveStreamMark replaces the stream's mark.
	SaveStreamMark(ctx context.Context, stream string, m hub.StreamMark) error
}

// Lease elects the relay that publishes when several hub instances share
// one store: the relay publishes only while it holds the lease. A Lease is
// used by one relay, from one goroutine at a time.
type Lease interface {
	// TryAcquire takes the lease if no one else holds it, without
	// waiting, and reports whether this Lease holds it (true again when
	// it already did).
	TryAcquire(ctx context.Context) (bool, error)
	// Check returns an error when the lease may have been lost (the
	// connection it is held on failed or does not answer in time); the
	// lease is then no longer held, and TryAcquire may take it again. It
	// must not report the lease held after another instance could have
	// taken it.
	Check(ctx context.Context) error
	// Release gives the lease up so that another instance takes it at its
	// next try. It is safe to call when the lease is not held.
	Release(ctx context.Context)
}

// Config configures a Relay.
type Config struct {
	// BatchSize is the most entries published per round, and so the most
	// publishes in flight (default 2000). It must not exceed the JetStream
	// context's async publish limit (jetstream.WithPublishAsyncMaxPending,
	// 4000 by default).
	BatchSize int
	// PollInterval is how often an idle relay looks for entries that no
	// Wake announced, e.g. from another hub instance (default 100ms).
	PollInterval time.Duration
	// AckTimeout bounds the wait for JetStream's acknowledgements (default 10s).
	AckTimeout time.Duration
	// RepublishWindow is how long the store keeps entries after JetStream
	// acknowledged them. The relay publishes the entries kept again when it
	// starts, whenever its connection to NATS was re-established, and
	// after it created a missing stream again; it deletes them once they
	// are older than the window, but never while the server may be down,
	// so a window cut short by an outage is still there when the server is
	// back. Set it above the server's fsync interval (sync_interval, two
	// minutes by default) when the server does not sync every write: an
	// acknowledged message the server had not synced is lost if the server
	// stops hard, and this publishes it again, even when the hub went down
	// with the server. Repeats of messages the server kept are dropped by
	// Nats-Msg-Id, so the stream's duplicate window must be longer than
	// this window plus the longest outage (of the server or of the hub).
	// Zero (the default) keeps nothing: right for a server that syncs
	// every write, such as the embedded one.
	RepublishWindow time.Duration
	// Stream is the stream's configuration, as given to EnsureStream at
	// start: the relay creates the stream again with it when publishing
	// finds the stream missing, or when it looks for the stream while idle
	// (every few seconds) and finds it gone. Its Logger defaults to Logger.
	Stream StreamConfig
	// Lease makes this relay one of several on a shared store (PostgreSQL)
	// that publish one at a time: it publishes only while it holds the
	// lease. Nil (a store only one process opens, such as memdb): the
	// relay always publishes.
	Lease Lease
	// LeaseInterval is how often a standing-by relay tries to take the
	// lease, and how often the leading one checks that it still holds it
	// (default 1s).
	LeaseInterval time.Duration

	Logger *slog.Logger
	Meter  metric.Meter
	Tracer trace.Tracer
}

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 2000
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	if c.LeaseInterval <= 0 {
		c.LeaseInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Meter == nil {
		c.Meter = metricnoop.NewMeterProvider().Meter("")
	}
	if c.Tracer == nil {
		c.Tracer = tracenoop.NewTracerProvider().Tracer("")
	}
	if c.Stream.Logger == nil {
		c.Stream.Logger = c.Logger
	}
	c.Stream.setDefaults()
}

// Relay moves outbox entries to JetStream. It is the only publisher of
// notifications: one Relay per hub process, and with a Lease one
// publishing per store. Should two publish the same entry anyway (a
// leader cut off before it noticed, a crash before an entry was marked),
// JetStream drops the repeat by Nats-Msg-Id.
//
// The publishing relay notices notifications the stream lost. Whenever it
// looks for the stream (every few seconds unless every round is a full
// batch), it compares the stream's sequences with what it knew the stream
// held: what it saw at the previous look and the sequences JetStream
// acknowledged to it since. A first sequence past the last message known
// held (a purge, or messages deleted by hand), or a last sequence below
// it (the stream deleted and created again, a server that lost what it
// had stored), is logged at ERROR with the range of sequences lost and
// counted in pophub_notifications_lost_total, unless the stream's limits
// explain it (its age, message, byte or per-subject limit). A purge that
// keeps the newest messages, or of some subjects only (one city's), goes
// unnoticed, since it leaves the first and last sequence in place, and
// so does one made in a
// relay's turn before it first looked at the stream or stored a message
// in it. Nothing brings the lost ones back: a purged stream keeps its
// duplicate ids, so publishing them again within its duplicate window
// stores nothing.
type Relay struct {
	cfg Config
	js  jetstream.JetStream
	// pub is the JetStream context the relay publishes through: js's
	// connection, with publishes that wait longer than AckTimeout given
	// up (see New).
	pub    jetstream.JetStream
	outbox Outbox
	wake   chan struct{}
	// leading is whether Run publishes now (holds the lease, or needs none).
	leading atomic.Bool

	published   metric.Int64Counter
	byKind      [len(kinds)]metric.AddOption // published's attribute sets
	republished metric.Int64Counter
	duplicates  metric.Int64Counter
	lost        metric.Int64Counter
	duration    metric.Float64Histogram

	// streamCheckEvery is how often an idle relay looks for the stream
	// (streamCheckInterval; tests that need the stream left missing
	// lengthen it).
	streamCheckEvery time.Duration
	// stallAfter is how long rounds may fail before Ping says so
	// (stallGrace; tests shorten it).
	stallAfter time.Duration

	// failMu guards failingSince and lastFailure: since when every round
	// has failed to publish (zero while rounds succeed), and the last
	// round's error, which Ping reports once failures outlast
	// stallGrace.
	failMu       sync.Mutex
	failingSince time.Time
	lastFailure  error

	// Run's own state; Run is not called concurrently.
	reconnects      uint64    // the connection's reconnect count when last seen
	replay          bool      // the entries the store keeps must be published again
	deletedAt       time.Time // when deleteOld last ran
	streamCheckedAt time.Time // when checkStream last ran
	held            streamHeld
	// seen is the stream's configuration at the relay's last look, with
	// which a stream gone missing is created again (restoreStream).
	seen        jetstream.StreamConfig
	markSaved   hub.StreamMark // the stream mark last saved or recalled
	markSavedAt time.Time      // when it was saved, or a save last failed
	// mustLook is set while a mark recalled from the store has not been
	// compared with the stream: nothing is published until it is, as
	// new messages would take the sequences a stream restored from an
	// older copy lacks, and hide the loss.
	mustLook bool
	// startLoss is a loss found by that first look, (from, to), held
	// until the republish window has been published again into the
	// stream (replay), so that what it stored again is not counted lost.
	startLoss [2]uint64
	// lookingFirst is set during that first look, for lookedAt.
	lookingFirst bool
}

// markSaveEvery is how often a publishing relay saves what it knows of
// the stream (StreamMarks): a relay starting after a crash compares the
// stream with a mark at most this old, and does not notice the loss of
// notifications stored since.
const markSaveEvery = 5 * time.Second

// streamCheckInterval is how often an idle relay makes sure the stream is
// there: one stream info request per leader, short enough that readiness
// recovers before a readiness probe's usual failure threshold.
const streamCheckInterval = 2 * time.Second

// New creates a relay publishing through js.
func New(cfg Config, js jetstream.JetStream, outbox Outbox) *Relay {
	cfg.setDefaults()
	r := &Relay{cfg: cfg, js: js, pub: js, outbox: outbox, wake: make(chan struct{}, 1), streamCheckEvery: streamCheckInterval, stallAfter: stallGrace}
	if nc := js.Conn(); nc != nil {
		r.reconnects = nc.Stats().Reconnects
		// A round stops waiting for acknowledgements after AckTimeout,
		// but the publishes it gave up on keep their places among the
		// context's pending ones until answered, which a server that
		// lost them never does: two such rounds filled them (4,000),
		// and every later publish failed as stalled, for good. With
		// the timeout the context gives them up too.
		if pub, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.AckTimeout)); err == nil {
			r.pub = pub
		}
	}
	// The server may have lost what it acknowledged before this start
	// (the hub may have gone down with it).
	r.replay = cfg.RepublishWindow > 0
	// Instrument creation only fails on invalid names, which these are not.
	r.published, _ = cfg.Meter.Int64Counter("pophub.notifications.published", metric.WithUnit("{notification}"),
		metric.WithDescription("Notifications JetStream acknowledged and stored; repeats it dropped count as duplicates."))
	r.republished, _ = cfg.Meter.Int64Counter("pophub.notifications.republished", metric.WithUnit("{notification}"),
		metric.WithDescription("Notifications of the republish window JetStream stored again after a reconnect, a restart or a re-created stream: it had lost them."))
	r.duplicates, _ = cfg.Meter.Int64Counter("pophub.notifications.duplicate", metric.WithUnit("{notification}"),
		metric.WithDescription("Notifications JetStream acknowledged as repeats of ones it held (same Nats-Msg-Id within its duplicate window) and did not store again."))
	r.lost, _ = cfg.Meter.Int64Counter("pophub.notifications.lost", metric.WithUnit("{notification}"),
		metric.WithDescription("Notifications the stream had stored and no longer holds though its limits did not remove them (a purge, a deleted stream, a server that lost data), counted by stream sequence."))
	// The counters show on /metrics from the start, at zero.
	for i, k := range kinds {
		r.byKind[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", k)))
		r.published.Add(context.Background(), 0, r.byKind[i])
	}
	r.republished.Add(context.Background(), 0)
	r.duplicates.Add(context.Background(), 0)
	r.lost.Add(context.Background(), 0)
	// No unit: the exporter would name a unit of 1 pophub_relay_leader_ratio.
	_, _ = cfg.Meter.Int64ObservableGauge("pophub.relay.leader",
		metric.WithDescription("1 while this instance's relay publishes the outbox (it holds the store's relay lease, or needs none), 0 while it stands by."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if r.leading.Load() {
				o.Observe(1)
			} else {
				o.Observe(0)
			}
			return nil
		}))
	_, _ = cfg.Meter.Int64ObservableGauge("pophub.nats.connected",
		metric.WithDescription("1 while this instance is connected to NATS, 0 while it is not: its relay then publishes nothing, and with a lease stands by."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if r.connected() {
				o.Observe(1)
			} else {
				o.Observe(0)
			}
			return nil
		}))
	// The backlog and the age are the store's, read at each scrape: a
	// relay round sees at most one batch of the backlog, and a relay
	// standing by (with a lease, also while it is not connected to NATS)
	// runs no rounds at all.
	_, _ = cfg.Meter.Int64ObservableGauge("pophub.outbox.backlog", metric.WithUnit("{notification}"),
		metric.WithDescription("Outbox entries JetStream has not acknowledged yet, as the store counts them when scraped."),
		metric.WithInt64Callback(r.observeBacklog))
	_, _ = cfg.Meter.Float64ObservableGauge("pophub.outbox.age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest outbox entry JetStream has not acknowledged yet, as the store tells it when scraped (0 when none waits)."),
		metric.WithFloat64Callback(r.observeAge))
	r.duration, _ = cfg.Meter.Float64Histogram("pophub.relay.publish.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to publish one round of outbox entries and record them as published."))
	return r
}

// backlogTimeout bounds the store's count at a scrape.
const backlogTimeout = 2 * time.Second

// observeBacklog reports the store's pending count; a store that does not
// answer in time reports nothing, and the scrape goes on without it.
func (r *Relay) observeBacklog(ctx context.Context, o metric.Int64Observer) error {
	ctx, cancel := context.WithTimeout(ctx, backlogTimeout)
	defer cancel()
	n, err := r.outbox.CountPendingOutbox(ctx)
	if err != nil {
		r.cfg.Logger.Debug("counting the outbox backlog", "err", err)
		return nil
	}
	o.Observe(n)
	return nil
}

// observeAge reports the age of the store's oldest pending entry; a store
// that does not answer in time reports nothing.
func (r *Relay) observeAge(ctx context.Context, o metric.Float64Observer) error {
	ctx, cancel := context.WithTimeout(ctx, backlogTimeout)
	defer cancel()
	oldest, err := r.oldestPending(ctx)
	if err != nil {
		r.cfg.Logger.Debug("reading the age of the oldest pending notification", "err", err)
		return nil
	}
	if oldest.IsZero() {
		o.Observe(0)
		return nil
	}
	o.Observe(max(time.Since(oldest).Seconds(), 0))
	return nil
}

// oldestPending returns when the oldest pending entry was created, the
// zero time when none is pending.
func (r *Relay) oldestPending(ctx context.Context) (time.Time, error) {
	if a, ok := r.outbox.(OutboxAge); ok {
		return a.OldestPendingOutbox(ctx)
	}
	entries, err := r.outbox.PendingOutbox(ctx, 0, 1)
	if err != nil || len(entries) == 0 {
		return time.Time{}, err
	}
	return entries[0].CreatedAt, nil
}

// stallGrace is how long publishing may fail, round after round, before
// Ping reports it: a server that answers for the stream yet stores
// nothing (its disk full, or out of its storage limit) must fail
// readiness too, and a moment's failures must not.
const stallGrace = 30 * time.Second

// noteRound records whether a round published: the relay's failures
// that Ping reports.
func (r *Relay) noteRound(err error) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	if err == nil {
		r.failingSince, r.lastFailure = time.Time{}, nil
		return
	}
	if r.failingSince.IsZero() {
		r.failingSince = time.Now()
	}
	r.lastFailure = err
}

// outboxError is a round's failure to read or mark the outbox: the
// store's, which Ping must not put down to NATS (a memdb log on a full
// disk fails the marks while NATS is well).
type outboxError struct{ err error }

func (e *outboxError) Error() string { return e.err.Error() }
func (e *outboxError) Unwrap() error { return e.err }

// pingTimeout bounds Ping's question to the server.
const pingTimeout = 2 * time.Second

// Ping reports whether the relay can publish: it is connected to NATS, the
// server answers for the stream within a couple of seconds, and its
// rounds have not all failed for stallGrace or longer (a server that
// answers yet stores nothing). It is
// safe for concurrent use (readiness checks).
func (r *Relay) Ping(ctx context.Context) error {
	if !r.connected() {
		return errors.New("not connected to NATS")
	}
	r.failMu.Lock()
	since, last := r.failingSince, r.lastFailure
	r.failMu.Unlock()
	if !since.IsZero() && time.Since(since) >= r.stallAfter {
		var store *outboxError
		if errors.As(last, &store) {
			return fmt.Errorf("notifications have been held up for %s by the store, not by NATS; the outbox keeps them: %w", time.Since(since).Round(time.Second), last)
		}
		return fmt.Errorf("publishing notifications has failed for %s; the outbox keeps them: %w", time.Since(since).Round(time.Second), last)
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := r.js.Stream(ctx, r.cfg.Stream.Name); err != nil {
		return fmt.Errorf("looking up stream %s: %w", r.cfg.Stream.Name, err)
	}
	return nil
}

// connected reports whether the relay's NATS connection is up (a
// JetStream context without a connection counts as connected).
func (r *Relay) connected() bool {
	nc := r.js.Conn()
	return nc == nil || nc.IsConnected()
}

// Leading reports whether the relay publishes now: it runs and holds the
// store's lease, or needs none. It is safe for concurrent use.
func (r *Relay) Leading() bool { return r.leading.Load() }

// Wake makes an idle relay look at the outbox now. It never blocks and is
// safe for concurrent use.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends, and returns ctx's error. Errors (NATS
// down, store down) are retried with backoff: an outage delays
// notifications but never loses one. With a Lease, Run publishes only
// while it holds the lease: it tries to take it every LeaseInterval,
// checks it as often while leading, stops publishing as soon as a check
// fails, and releases it when ctx ends. Call Run once.
func (r *Relay) Run(ctx context.Context) error {
	if r.cfg.Lease == nil {
		r.leading.Store(true)
		defer r.leading.Store(false)
		r.recallStream(ctx)
		err := r.publishLoop(ctx)
		r.rememberStream(ctx, true)
		return err
	}
	defer r.releaseLease()
	var state string // what was last logged of the lease
	logState := func(next string, level slog.Level, msg string, args ...any) {
		if next != state {
			state = next
			r.cfg.Logger.Log(ctx, level, msg, args...)
		}
	}
	for {
		if !r.connected() {
			// Leading without NATS would hold the notifications back
			// from an instance that has it.
			logState("cut off", slog.LevelWarn, "not connected to NATS: standing by for the outbox relay lease", "every", r.cfg.LeaseInterval)
			if !sleep(ctx, r.cfg.LeaseInterval) {
				return ctx.Err()
			}
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, leaseTimeout)
		held, err := r.cfg.Lease.TryAcquire(tctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil:
			logState("failing", slog.LevelWarn, "taking the outbox relay lease failed: standing by, trying again", "err", err, "every", r.cfg.LeaseInterval)
		case !held:
			logState("standby", slog.LevelInfo, "another hub instance leads the outbox relay: standing by", "every", r.cfg.LeaseInterval)
		default:
			r.cfg.Logger.Info("took the outbox relay lease: this instance publishes the notifications")
			lost := r.lead(ctx)
			if ctx.Err() != nil {
				r.cfg.Logger.Info("released the outbox relay lease: stopping")
				return ctx.Err()
			}
			state = "lost"
			// No notification goes out until a relay takes the lease
			// again: an outage operators must see, not routine.
			r.cfg.Logger.Warn("lost the outbox relay lease: stopped publishing, standing by", "err", lost)
		}
		if !sleep(ctx, r.cfg.LeaseInterval) {
			return ctx.Err()
		}
	}
}

// leaseTimeout bounds each question to the lease. A check that takes
// longer counts as a lost lease, well before a server that lost the
// leader's connection would release it to another instance.
const leaseTimeout = 3 * time.Second

// lead publishes while the lease is held: until ctx ends, or a check of
// the lease fails, whose error it returns. It then releases the lease.
func (r *Relay) lead(ctx context.Context) error {
	leadCtx, lose := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		r.watchLease(leadCtx, lose)
	}()
	// The previous leader may have gone down with the NATS server: publish
	// the window the store keeps again, as at a start.
	r.replay = r.cfg.RepublishWindow > 0
	// What the stream holds is learnt afresh: other instances published
	// into it meanwhile.
	r.held = streamHeld{}
	r.recallStream(leadCtx)
	r.leading.Store(true)
	_ = r.publishLoop(leadCtx)
	r.leading.Store(false)
	if ctx.Err() != nil {
		// Stopping while still holding the lease: the next leader starts
		// from what this one saw last. A relay that lost the lease does
		// not save, over what the new leader may have saved.
		r.rememberStream(ctx, true)
	}
	lose(nil)
	<-watched
	r.releaseLease()
	return context.Cause(leadCtx)
}

// cutOffGrace is how long a leading relay may stay disconnected from NATS
// before it leaves the lease to an instance that may be connected: a
// leader cut off from NATS alone (a partition, its host's route) would
// otherwise hold every notification back while its PostgreSQL session
// keeps the lease.
const cutOffGrace = 5 * time.Second

// watchLease checks the lease every LeaseInterval until ctx ends, and
// calls lose with the error of the first check that fails, or once the
// relay has been disconnected from NATS for cutOffGrace.
func (r *Relay) watchLease(ctx context.Context, lose context.CancelCauseFunc) {
	tick := time.NewTicker(r.cfg.LeaseInterval)
	defer tick.Stop()
	var cutOff time.Time // since when NATS is unreachable
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		switch {
		case r.connected():
			cutOff = time.Time{}
		case cutOff.IsZero():
			cutOff = time.Now()
		case time.Since(cutOff) >= cutOffGrace:
			lose(fmt.Errorf("not connected to NATS for %s: leaving the lease to an instance that is", time.Since(cutOff).Round(time.Second)))
			return
		}
		cctx, cancel := context.WithTimeout(ctx, leaseTimeout)
		err := r.cfg.Lease.Check(cctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			lose(err)
			return
		}
	}
}

// releaseLease gives the lease up, even when Run's context has ended.
func (r *Relay) releaseLease() {
	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	r.cfg.Lease.Release(ctx)
}

// publishLoop publishes rounds until ctx ends, and returns ctx's error.
func (r *Relay) publishLoop(ctx context.Context) error {
	defer r.noteRound(nil) // a relay that stops publishing has no failures to report
	backoff := 50 * time.Millisecond
	var partlyWarned time.Time
	for {
		if !r.firstLook(ctx) {
			nc := r.js.Conn()
			if !sleepUntilConnected(ctx, nc, backoff) {
				return ctx.Err()
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		n, err := r.round(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n > 0 {
			r.noteRound(nil) // notifications go out, if not all of them
			r.rememberStream(ctx, false)
		} else {
			r.noteRound(err)
		}
		switch {
		case err != nil && n > 0:
			// Some went out: the poll interval's pause, not a growing
			// backoff, which would hold back the rest of the backlog
			// behind the ones refused (each round sends them again),
			// and a warning at most every few seconds.
			if time.Since(partlyWarned) >= 5*time.Second {
				r.cfg.Logger.Warn("publishing notifications: some were refused; the outbox keeps them and the relay goes on", "published", n, "err", err)
				partlyWarned = time.Now()
			}
			backoff = 50 * time.Millisecond
			if !sleep(ctx, r.cfg.PollInterval) {
				return ctx.Err()
			}
			continue
		case err != nil:
			nc := r.js.Conn()
			disconnected := nc != nil && !nc.IsConnected()
			if disconnected {
				// Say so: a connection never established (the server was
				// down when the hub started) fails publishes with
				// "headers not supported by this server", which misleads.
				err = fmt.Errorf("not connected to NATS: %w", err)
			} else if streamMissing(err) {
				if _, serr := r.restoreStream(ctx); serr != nil {
					err = errors.Join(err, serr)
				}
			}
			r.cfg.Logger.Warn("publishing notifications", "err", err, "backoff", backoff)
			wait := sleep
			if disconnected {
				wait = func(ctx context.Context, d time.Duration) bool { return sleepUntilConnected(ctx, nc, d) }
			}
			if !wait(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		case n == r.cfg.BatchSize:
			backoff = 50 * time.Millisecond
			continue // more waiting
		}
		backoff = 50 * time.Millisecond
		r.rememberStream(ctx, false)
		if time.Since(r.streamCheckedAt) >= r.streamCheckEvery {
			r.streamCheckedAt = time.Now()
			if r.checkStream(ctx) {
				continue // publish the republish window into it now
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		case <-time.After(min(r.cfg.PollInterval, time.Until(r.streamCheckedAt.Add(r.streamCheckEvery)))):
		}
	}
}

// checkStream creates the stream again when it is missing, and reports
// whether it did. An idle relay calls it: without it a stream deleted on
// a quiet system would stay missing until the next notification.
func (r *Relay) checkStream(ctx context.Context) bool {
	if nc := r.js.Conn(); nc != nil && !nc.IsConnected() {
		return false // the stream is looked at again once connected
	}
	created, err := r.restoreStream(ctx)
	if err != nil && ctx.Err() == nil {
		r.cfg.Logger.Warn("checking the notification stream", "err", err, "every", r.streamCheckEvery)
	}
	return created
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connectedPoll is how often a relay waiting out its backoff while
// disconnected looks whether the connection is back.
const connectedPoll = 50 * time.Millisecond

// sleepUntilConnected is sleep, cut short once nc is connected again: a
// backoff grown while NATS was down (up to 5 s) would otherwise hold the
// backlog that long after it came back.
func sleepUntilConnected(ctx context.Context, nc *nats.Conn, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 || nc.IsConnected() {
			return true
		}
		if !sleep(ctx, min(left, connectedPoll)) {
			return false
		}
	}
}

// round publishes one batch of pending entries and marks the acknowledged
// ones. It reads the oldest pending entries every time, so an entry whose
// publish failed, or that another instance committed with a lower
// sequence number later, is picked up by a following round.
func (r *Relay) round(ctx context.Context) (int, error) {
	entries, err := r.outbox.PendingOutbox(ctx, 0, r.cfg.BatchSize)
	if err != nil {
		return 0, &outboxError{fmt.Errorf("reading outbox: %w", err)}
	}
	if err := r.republish(ctx); err != nil {
		return 0, err
	}
	if len(entries) == 0 {
		return 0, r.deleteOld(ctx)
	}
	start := time.Now()
	ctx, span := r.cfg.Tracer.Start(ctx, "outbox relay",
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(entries)), attribute.String("messaging.system", "nats")))
	defer span.End()

	acked, duplicate, pubErr := r.publish(ctx, entries)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if len(acked) > 0 {
		seqs := make([]int64, len(acked))
		for i, e := range acked {
			seqs[i] = e.Seq
		}
		if err := r.outbox.MarkPublished(ctx, seqs); err != nil {
			// Published but not marked: the next round publishes them
			// again and JetStream drops the repeats.
			return 0, &outboxError{fmt.Errorf("recording published notifications: %w", err)}
		}
		// Only what the stream stored counts as published: summed over
		// instances, the counter is what the stream gained.
		var n [len(kinds)]int64
		dups := int64(0)
		for i, e := range acked {
			if duplicate[i] {
				dups++
			} else {
				n[kindOf(e.Subject)]++
			}
		}
		for i, c := range n {
			if c > 0 {
				r.published.Add(ctx, c, r.byKind[i])
			}
		}
		if dups > 0 {
			r.duplicates.Add(ctx, dups)
		}
	}
	r.duration.Record(ctx, time.Since(start).Seconds())
	if pubErr != nil {
		span.RecordError(pubErr)
		if len(acked) > 0 {
			// Rounds go on while some are refused: published rows
			// must still go, or the outbox grows for as long.
			return len(acked), errors.Join(pubErr, r.deleteOld(ctx))
		}
		return len(acked), pubErr
	}
	return len(entries), r.deleteOld(ctx)
}

// publish sends entries asynchronously, all at once, and waits for their
// acknowledgements. It returns the acknowledged entries, whether JetStream
// acknowledged each as a duplicate (it held the message already and did
// not store it again), and an error for the others.
func (r *Relay) publish(ctx context.Context, entries []hub.OutboxEntry) (acked []hub.OutboxEntry, duplicate []bool, _ error) {
	futures := make([]jetstream.PubAckFuture, len(entries))
	var spans []trace.Span // per entry, made when the first sampled one comes
	var pubErr error
	for i, e := range entries {
		msg := nats.NewMsg(e.Subject)
		msg.Data = e.Body
		if span := r.startSpan(ctx, e, msg.Header); span != nil {
			if spans == nil {
				spans = make([]trace.Span, len(entries))
			}
			spans[i] = span
		} else {
			for k, v := range e.Trace {
				msg.Header.Set(k, v)
			}
		}
		f, err := r.pub.PublishMsgAsync(msg, jetstream.WithMsgID(e.MsgID))
		if err != nil {
			pubErr = fmt.Errorf("publishing to %s: %w", e.Subject, err)
			break
		}
		futures[i] = f
	}
	// end ends entry i's span, if it has one.
	end := func(i int, err error) {
		if spans == nil || spans[i] == nil {
			return
		}
		if err != nil {
			spans[i].RecordError(err)
			spans[i].SetStatus(codes.Error, "publishing")
		}
		spans[i].End()
		spans[i] = nil
	}
	defer func() {
		for i := range spans {
			end(i, pubErr)
		}
	}()
	timeout := time.NewTimer(r.cfg.AckTimeout)
	defer timeout.Stop()
	acked = make([]hub.OutboxEntry, 0, len(entries))
	duplicate = make([]bool, 0, len(entries))
	// A missing stream refuses every entry: one error says so, with the
	// first refusal, not one per entry.
	refused, firstRefusal := 0, error(nil)
wait:
	for i, f := range futures {
		if f == nil {
			break
		}
		select {
		case ack := <-f.Ok():
			acked = append(acked, entries[i])
			duplicate = append(duplicate, ack.Duplicate)
			r.held.stored(ack, r.cfg.Stream.Name)
			end(i, nil)
		case err := <-f.Err():
			if refused++; firstRefusal == nil {
				firstRefusal = fmt.Errorf("publishing to %s: %w", entries[i].Subject, err)
			}
			end(i, err)
		case <-timeout.C:
			pubErr = errors.Join(pubErr, errors.New("timed out waiting for JetStream acknowledgements"))
			break wait
		case <-ctx.Done():
			pubErr = ctx.Err()
			return nil, nil, pubErr
		}
	}
	if refused > 0 {
		pubErr = errors.Join(pubErr, fmt.Errorf("%d of %d notifications refused, the first: %w", refused, len(entries), firstRefusal))
	}
	return acked, duplicate, pubErr
}

// startSpan starts the producer span of an entry whose trace context is
// sampled, and writes the span's context into h. It returns nil, and
// leaves h alone, for an entry without a sampled trace context.
func (r *Relay) startSpan(ctx context.Context, e hub.OutboxEntry, h nats.Header) trace.Span {
	if !sampled(e.Trace[traceparent]) {
		return nil
	}
	parent := propagator.Extract(context.Background(), propagation.MapCarrier(e.Trace))
	if !trace.SpanContextFromContext(parent).IsValid() {
		return nil
	}
	kind := kinds[kindOf(e.Subject)]
	pctx, span := r.cfg.Tracer.Start(parent, "publish pop."+kind, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithLinks(trace.LinkFromContext(ctx)))
	if !span.IsRecording() {
		span.End()
		return nil
	}
	span.SetAttributes(
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.operation.name", "publish"),
		attribute.String("messaging.destination.name", e.Subject),
		attribute.String("messaging.message.id", e.MsgID),
		attribute.String("pophub.notification.kind", kind),
		attribute.Int64("pophub.outbox.seq", e.Seq),
	)
	propagator.Inject(pctx, headerCarrier(h))
	return span
}

// W3C trace context.
const traceparent = "traceparent"

var propagator = propagation.TraceContext{}

// sampled reports whether a traceparent's flags have the sampled bit,
// without parsing the rest: most entries of a busy hub are unsampled.
func sampled(tp string) bool {
	if len(tp) < 2 {
		return false
	}
	c := tp[len(tp)-1]
	switch {
	case c >= '0' && c <= '9':
		return (c-'0')&1 == 1
	case c >= 'a' && c <= 'f':
		return (c-'a'+10)&1 == 1
	}
	return false
}

// headerCarrier writes trace context into NATS headers with the exact,
// lower-case W3C keys (nats.Header.Set keeps keys as given).
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Notification kinds, the second token of their subjects; kindOf maps a
// subject to its index here, other last.
var kinds = [...]string{"changed", "migration", "death", "eligibility", "other"}

func kindOf(subject string) int {
	_, rest, _ := strings.Cut(subject, ".")
	tok, _, _ := strings.Cut(rest, ".")
	for i, k := range kinds[:len(kinds)-1] {
		if tok == k {
			return i
		}
	}
	return len(kinds) - 1
}

// republish publishes the entries the store keeps again when the server
// may have lost them: at the relay's start, when the connection was
// re-established since the last round, and after the stream was created
// again.
func (r *Relay) republish(ctx context.Context) error {
	if r.cfg.RepublishWindow <= 0 {
		return nil
	}
	if nc := r.js.Conn(); nc != nil {
		if n := nc.Stats().Reconnects; n != r.reconnects {
			r.reconnects = n
			r.replay = true
		}
	}
	if !r.replay {
		return nil
	}
	total, restored := 0, 0
	for after := int64(0); ; {
		entries, err := r.outbox.PublishedOutbox(ctx, after, r.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("reading published notifications: %w", err)
		}
		if len(entries) == 0 {
			break
		}
		acked, duplicate, err := r.publish(ctx, entries)
		dups := 0
		for _, d := range duplicate {
			if d {
				dups++
			}
		}
		r.republished.Add(ctx, int64(len(acked)-dups))
		r.duplicates.Add(ctx, int64(dups))
		total += len(acked)
		restored += len(acked) - dups
		if err != nil {
			return fmt.Errorf("publishing recent notifications again: %w", err)
		}
		after = entries[len(entries)-1].Seq
	}
	if total > 0 {
		r.cfg.Logger.Info("published recent notifications again: the server may have lost them", "count", total, "stored_again", restored, "window", r.cfg.RepublishWindow)
	}
	r.replay = false
	r.reportStartLoss(ctx, restored)
	return nil
}

// deleteEvery is how often the relay deletes published entries older
// than the republish window.
func (r *Relay) deleteEvery() time.Duration {
	return min(max(r.cfg.RepublishWindow/10, time.Second), 15*time.Second)
}

// deleteOld deletes the published entries older than the republish
// window, now and then. With a window it first makes sure the server is
// there and was not restarted since the last republish: entries kept
// while the server is down must survive until it is back and they were
// published again, however long the outage.
func (r *Relay) deleteOld(ctx context.Context) error {
	if time.Since(r.deletedAt) < r.deleteEvery() {
		return nil
	}
	r.deletedAt = time.Now()
	if r.cfg.RepublishWindow > 0 {
		nc := r.js.Conn()
		if nc == nil || !nc.IsConnected() || nc.FlushTimeout(pingTimeout) != nil || nc.Stats().Reconnects != r.reconnects || r.replay {
			return nil // a later round republishes first, or tries again
		}
	}
	if err := r.outbox.DeletePublished(ctx, r.cfg.RepublishWindow); err != nil {
		return fmt.Errorf("deleting published notifications: %w", err)
	}
	return nil
}

// streamMissing reports whether a publish failed because no stream took
// the message: the stream is gone, or JetStream did not answer.
func streamMissing(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrStreamNotFound)
}

// restoreStream creates the stream again, with the configured settings,
// when it is missing, and reports whether it did; the entries kept for
// the republish window are then published into it again. A stream that
// is there (JetStream was only slow to answer) is left alone.
func (r *Relay) restoreStream(ctx context.Context) (created bool, _ error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.AckTimeout)
	defer cancel()
	name := r.cfg.Stream.Name
	switch st, err := r.js.Stream(ctx, name); {
	case err == nil:
		if info := st.CachedInfo(); info != nil {
			r.lookedAt(ctx, info)
		}
		return false, nil
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return false, fmt.Errorf("looking up stream %s: %w", name, err)
	}
	stream := r.cfg.Stream
	if r.seen.Name != "" {
		seen := r.seen
		stream.lastSeen = &seen
		r.cfg.Logger.Warn("the notification stream is missing: creating it again with the limits it had", "stream", name,
			"max_bytes", seen.MaxBytes, "max_age", seen.MaxAge, "max_msgs", seen.MaxMsgs, "replicas", seen.Replicas)
	} else {
		r.cfg.Logger.Warn("the notification stream is missing: creating it again; limits set on it with the NATS tools were not seen by this relay and must be set again", "stream", name)
	}
	r.lookedAt(ctx, &jetstream.StreamInfo{}) // what it held is gone; the new one starts empty
	if err := EnsureStream(ctx, r.js, stream); err != nil {
		return false, err
	}
	r.replay = r.cfg.RepublishWindow > 0
	return true, nil
}

// lookedAt compares the stream, just looked up, with what the relay knew
// it held; it reports the notifications the stream lost, and remembers
// the stream's state for the next look.
func (r *Relay) lookedAt(ctx context.Context, info *jetstream.StreamInfo) {
	if info.Config.Name != "" {
		r.seen = info.Config
	}
	st := info.State
	from, to := r.held.lost(info, time.Now())
	r.held = streamHeld{looked: true, created: info.Created, first: st.FirstSeq, last: st.LastSeq, msgs: st.Msgs, lastAt: st.LastTime}
	if to == 0 {
		return
	}
	if r.lookingFirst && r.replay {
		// The republish window is about to go into the stream again:
		// what it stores again is not lost (republish reports).
		r.startLoss = [2]uint64{from, to}
		return
	}
	n := to - from + 1
	r.lost.Add(ctx, int64(n))
	r.cfg.Logger.Error("notifications lost from the stream: it no longer holds notifications it had stored, and its limits did not remove them (a purge, a deletion, or a server that lost its data); after a deletion the relay publishes its republish window again, but a purged stream keeps the ids and stores none of them: subscribers that had not read them must bootstrap again",
		"stream", r.cfg.Stream.Name, "first_seq", from, "last_seq", to, "count", n, "stream_first_seq", st.FirstSeq, "stream_last_seq", st.LastSeq)
}

// reportStartLoss reports the loss the first look at the stream found
// (startLoss), once the republish window went into the stream again and
// storedAgain of its notifications were stored anew: those reach the
// subscribers (under new sequences), the rest of the range is lost.
func (r *Relay) reportStartLoss(ctx context.Context, storedAgain int) {
	from, to := r.startLoss[0], r.startLoss[1]
	r.startLoss = [2]uint64{}
	if to == 0 {
		return
	}
	n := to - from + 1
	if uint64(storedAgain) >= n {
		r.cfg.Logger.Warn("the stream no longer held notifications it had stored when this relay started, and every one was published again from the store's republish window: subscribers get them under new sequences",
			"stream", r.cfg.Stream.Name, "first_seq", from, "last_seq", to, "count", n, "stored_again", storedAgain)
		return
	}
	lost := n - uint64(storedAgain)
	r.lost.Add(ctx, int64(lost))
	r.cfg.Logger.Error("notifications lost from the stream: when this relay started, the stream no longer held notifications it had stored (NATS started on an empty store, or on a copy older than them); those within the republish window were published again, the rest are lost: subscribers that had not read them must bootstrap again",
		"stream", r.cfg.Stream.Name, "first_seq", from, "last_seq", to, "count", lost, "stored_again", storedAgain)
}

// recallStream starts what the relay knows of the stream from the mark
// the store keeps (StreamMarks), to be compared with the stream before
// anything is published into it (firstLook): notifications the stream no
// longer holds, while no relay watched it, are reported as lost at the
// start (lookedAt, or reportStartLoss after the republish window),
// instead of passing unnoticed. A relay whose store keeps no mark learns
// the stream afresh.
func (r *Relay) recallStream(ctx context.Context) {
	marks, ok := r.outbox.(StreamMarks)
	if !ok {
		return
	}
	m, found, err := marks.StreamMark(ctx, r.cfg.Stream.Name)
	if err != nil {
		r.cfg.Logger.Warn("reading the relay's last look at the notification stream: notifications the stream lost before this start go unnoticed",
			"stream", r.cfg.Stream.Name, "err", err)
		return
	}
	r.markSaved, r.markSavedAt = m, time.Now()
	if !found || m.Last == 0 {
		return
	}
	r.held = heldFromMark(m)
	r.mustLook = true
}

// firstLook compares the stream with the mark recallStream recalled, once,
// before anything is published, and reports whether the relay may
// publish: false while it cannot look (not connected, JetStream not
// answering).
func (r *Relay) firstLook(ctx context.Context) bool {
	if !r.mustLook {
		return true
	}
	if nc := r.js.Conn(); nc != nil && !nc.IsConnected() {
		return false
	}
	r.streamCheckedAt = time.Now()
	r.lookingFirst = true
	_, err := r.restoreStream(ctx)
	r.lookingFirst = false
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.Warn("looking at the notification stream before publishing", "err", err)
		}
		return false
	}
	r.mustLook = false
	return true
}

// rememberStream saves what the relay knows of the stream (StreamMarks)
// when it changed, at most every markSaveEvery unless final.
func (r *Relay) rememberStream(ctx context.Context, final bool) {
	marks, ok := r.outbox.(StreamMarks)
	if !ok {
		return
	}
	m := r.held.mark()
	if sameMark(m, r.markSaved) || (!final && time.Since(r.markSavedAt) < markSaveEvery) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.AckTimeout)
	defer cancel()
	if err := marks.SaveStreamMark(ctx, r.cfg.Stream.Name, m); err != nil {
		r.markSavedAt = time.Now() // tried again in markSaveEvery
		r.cfg.Logger.Warn("saving the relay's look at the notification stream", "stream", r.cfg.Stream.Name, "err", err, "every", markSaveEvery)
		return
	}
	r.markSaved, r.markSavedAt = m, time.Now()
}

// streamHeld is what the publishing relay knows its stream held, for
// noticing notifications the stream lost; the zero value knows nothing (a
// relay that has just started leading).
type streamHeld struct {
	// From the last look at the stream, if any: when it was created (zero:
	// not known, as after the relay created it), its first and last
	// sequence and message count, and when its last message was stored
	// (by the server's clock).
	looked            bool
	created           time.Time
	first, last, msgs uint64
	lastAt            time.Time
	// Of the messages JetStream stored for the relay since (not the
	// repeats it dropped): the lowest and highest sequence (0: none), and
	// when the lowest was acknowledged.
	ackedLow, ackedHigh     uint64
	ackedLowAt, ackedHighAt time.Time
}

// stored notes a message JetStream acknowledged.
func (h *streamHeld) stored(ack *jetstream.PubAck, stream string) {
	if ack == nil || ack.Duplicate || ack.Stream != stream || ack.Sequence == 0 {
		return
	}
	if h.ackedLow == 0 || ack.Sequence < h.ackedLow {
		h.ackedLow, h.ackedLowAt = ack.Sequence, time.Now()
	}
	if ack.Sequence > h.ackedHigh {
		h.ackedHigh, h.ackedHighAt = ack.Sequence, time.Now()
	}
}

// mark is what h knows the stream holds, to be saved (StreamMarks): the
// lowest and the highest sequence known held, and when the highest was
// stored; with Last 0 when nothing is known held (a stream just created,
// whose mark replaces the one of the stream before it).
func (h *streamHeld) mark() hub.StreamMark {
	m := hub.StreamMark{Created: h.created}
	if h.looked && h.msgs > 0 {
		m.First, m.Last, m.LastAt = h.first, h.last, h.lastAt
	}
	if h.ackedHigh > 0 {
		if m.First == 0 {
			m.First = h.ackedLow
		}
		if h.ackedHigh > m.Last {
			m.Last, m.LastAt = h.ackedHigh, h.ackedHighAt
		}
	}
	if m.Last == 0 {
		return hub.StreamMark{Created: h.created}
	}
	return m
}

func sameMark(a, b hub.StreamMark) bool {
	return a.Created.Equal(b.Created) && a.First == b.First && a.Last == b.Last && a.LastAt.Equal(b.LastAt)
}

// heldFromMark is what a relay knows of the stream from a saved mark, as
// if it had looked at the stream then.
func heldFromMark(m hub.StreamMark) streamHeld {
	return streamHeld{looked: true, created: m.Created, first: m.First, last: m.Last, msgs: m.Last - m.First + 1, lastAt: m.LastAt}
}

// lost returns the range of sequences from the ones h knew held that
// the stream, as info shows it, no longer holds though its limits did not
// remove them; to is 0 when none.
//
// Another stream (created at another time than the one seen, or with
// sequences that went back below the first seen) holds none of them. A
// stream whose last sequence is below the last known held lost its tail
// (a server that lost data; or another stream, created again before
// this relay looked at the stream for the first time). Otherwise, the
// stream's first sequence past mark, the last message seen held at the
// last look (or, if the stream was empty then, the first stored since),
// means a purge removed everything up to it, unless the limits explain
// it: mark old enough for the age limit, enough messages after it for
// the message limit, the stream half full for the byte limit, or any
// message after it under a per-subject limit.
func (h *streamHeld) lost(info *jetstream.StreamInfo, now time.Time) (from, to uint64) {
	st, cfg := info.State, info.Config
	var low, high, mark uint64
	var markAt time.Time
	if h.looked && h.msgs > 0 {
		low, high, mark, markAt = h.first, h.last, h.last, h.lastAt
	}
	if h.ackedLow > 0 {
		if low == 0 {
			low, mark, markAt = h.ackedLow, h.ackedLow, h.ackedLowAt
		}
		high = max(high, h.ackedHigh)
	}
	switch {
	case high == 0:
		return 0, 0 // nothing known held
	case h.looked && !h.created.IsZero() && !info.Created.Equal(h.created),
		h.looked && h.created.IsZero() && st.FirstSeq < h.first:
		return low, high // another stream
	// The same stream with its first sequence back below the one seen:
	// a copy of it from before its limits removed those (a restore). It
	// lacks what it had stored after the copy, below.
	case st.LastSeq < high:
		return max(st.LastSeq+1, low), high
	case st.FirstSeq <= mark:
		return 0, 0
	case cfg.MaxAge > 0 && now.Sub(markAt)+ageSlack >= cfg.MaxAge,
		cfg.MaxMsgs > 0 && st.LastSeq-mark >= uint64(cfg.MaxMsgs),
		cfg.MaxBytes > 0 && st.Bytes >= uint64(cfg.MaxBytes)/2,
		cfg.MaxMsgsPerSubject > 0 && st.LastSeq > mark:
		return 0, 0
	}
	return low, st.FirstSeq - 1
}

// ageSlack allows for the difference between the server's clock, by
// which the stream's messages are dated, and the hub's.
const ageSlack = 30 * time.Second
