// Package sdk is the library a department system uses to subscribe to the
// hub's change notifications on NATS JetStream.
//
// A Subscriber owns one durable pull consumer, named after the subscribing
// system, on the hub's stream, or with Config.ConsumerPerFilter one per
// filter (for a subscriber that may read only its own subjects, as under
// the hub's access policy). It turns region filters into the hub's
// subject filters, decodes each message into a schemas.Notification,
// continues the hub's trace, and calls the Handler. It acks a message
// after the Handler returned nil, retries it with growing delays when the
// Handler fails, and after Config.MaxAttempts failures moves it to a
// dead-letter subject with the error in a header. A notification the server
// delivered more than Config.MaxDeliveries times without an ack (its
// handling kills the process) is dead-lettered too.
//
// Guarantees:
//   - At least once, and in practice exactly once: a message is acked only
//     after its Handler returned nil, and a message already in flight in
//     this process is never handed to a second worker. After a crash, the
//     messages in flight are delivered again (after Config.AckWait), so a
//     Handler must be idempotent; keying its writes on ChangeID is enough.
//   - Per-citizen order: the notifications of one citizen are handled one
//     at a time in stream order (the hub publishes them in version order);
//     different citizens run on Config.Concurrency workers. A failing
//     notification is retried in place and holds back the later ones of the
//     same worker, so order survives retries. The other workers go on
//     meanwhile, until the held-back worker holds as many messages as the
//     consumer lets the server deliver unacked (its MaxAckPending: the
//     larger of 1000 and 4×Config.FetchBatch for the consumers the SDK
//     creates); then nothing more arrives until the retry ends. Only a
//     crash can reorder:
//     messages redelivered after AckWait may arrive after later ones of the
//     same citizen, which the Version in every notification reveals. With
//     Config.ConsumerPerFilter the order holds within each filter; see
//     there for what that mode trades.
//   - Bootstrap: a new subscriber can start from a snapshot of the golden
//     records (the hub's /v1/persons) and continue with the notifications
//     after the stream sequence the snapshot reflects: nothing is missed.
//     The hub keeps applying changes while the snapshot is walked, so some
//     of those notifications are already in it (Version ≤ the citizen's
//     version in the snapshot). The process that walked the snapshot acks
//     them without calling the Handler or, with Bootstrap.DeliverCovered,
//     hands them over marked Delivery.InSnapshot. Only that process knows
//     the snapshot's versions (they can be millions, one per person of the
//     regions), and only until its consumer is past the walk: once every
//     notification up to the stream's last sequence when the walk finished
//     was acked, it drops them (within five seconds), so that they do not
//     stay in memory for the life of the process. After a restart the
//     covered notifications it had not reached yet arrive like any
//     notification, and so does one the hub published only after the walk
//     finished (its outbox was behind) although the snapshot reflects it.
//     A Handler that copies records therefore ignores a notification whose
//     Version is not above the version it stored (from Person.Version or
//     an earlier notification), which the idempotence asked above gives
//     anyway.
//   - Shutdown: when Run's context ends, no new message is started; the
//     ones being handled finish (within Config.ShutdownTimeout) and are
//     acked; the ones fetched but not started, and one waiting for its
//     retry, are returned to the server with a nak, in stream order, so
//     the next instance gets them at once and in order. The nak counts as
//     a delivery on the server, which is why Config.MaxDeliveries is far
//     above Config.MaxAttempts: restarts alone do not dead-letter.
//   - Reconnection: the connection reconnects forever; the durable
//     consumer keeps the position on the server, so a NATS restart or a
//     subscriber restart resumes where the acks left off. A consumer that
//     disappears while Run runs (deleted by mistake, or lost with the
//     stream, which the hub creates again) is created again where this
//     process left off, not at Config.Start: after the last message the
//     server reported acked, or from the first message of a stream
//     created since. That is logged at ERROR and counted in
//     pophub_sdk_consumers_recreated_total; the notifications acked in
//     the last five seconds or so before the loss come again.
//   - Expiry: a notification the stream deletes (its age or size limits)
//     before the subscriber took it is lost to the subscriber. When it
//     binds its consumers, and every five seconds while it runs, the
//     subscriber compares the stream's first sequence with how far each
//     consumer got, and logs a gap at ERROR with the stream sequences
//     deleted unseen and counts it in pophub_sdk_gaps_total. The stream
//     does not say which of them matched the filter: after a restart, a
//     filter that matched nothing for longer than the stream keeps
//     messages reports a gap that lost nothing. See Bootstrap for
//     starting over from a snapshot.
//
// Run one instance per subscriber name: instances sharing a durable share
// its messages, and per-citizen order then holds only within an instance.
package sdk

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/internal/tlshttp"
	"github.com/pophub/pophub/schemas"
)

// Delivery is one notification handed to a Handler.
type Delivery struct {
	schemas.Notification
	// Subject is the NATS subject it was published on; its region tokens
	// give the person's region (e.g. the address of a death).
	Subject string
	// StreamSequence is its sequence in the hub's stream.
	StreamSequence uint64
	// Attempt counts the Handler's tries of this notification in this
	// process, from 1; it starts again at 1 after a restart.
	Attempt int
	// Deliveries counts the server's deliveries of this notification,
	// from 1: a redelivery after a crash or a graceful shutdown (which
	// gives back what it fetched but did not start) counts, whether or not
	// the Handler ran.
	Deliveries int
	// SnapshotVersion is the citizen's version in the bootstrap snapshot
	// the consumer was created from, when this process walked it, still
	// held it (see the package doc's Bootstrap) and the citizen was in it;
	// 0 otherwise (no bootstrap, another process, a notification after
	// the snapshot was dropped, or a citizen the snapshot did not list).
	SnapshotVersion int64
	// InSnapshot reports that the snapshot already reflects this
	// notification (0 < Version ≤ SnapshotVersion). Only with
	// Bootstrap.DeliverCovered does a Handler see it true: without, such
	// notifications are acked without calling it.
	InSnapshot bool
}

// Handler handles one notification. It is called concurrently for
// different citizens and one at a time, in stream order, for one citizen.
// Returning nil acks the notification; an error retries it after a delay
// and, after Config.MaxAttempts errors, dead-letters it. An error marked
// with Transient (the handler's database or a service it calls is
// unreachable) is retried until the Handler succeeds or Run's context
// ends, and does not count against MaxAttempts. A panic is not
// recovered: it kills the process, and Config.MaxDeliveries bounds how
// often that can happen. The error text travels in the dead-letter
// header: it must not contain citizen IDs. ctx carries the hub's trace and
// is cancelled only Config.ShutdownTimeout after Run's context ended.
type Handler func(ctx context.Context, d *Delivery) error

// StartPolicy says where a new durable consumer starts. It applies only
// when the consumer is created; an existing one keeps its position, and
// one this process bound and lost, or one whose position Config.Positions
// saved, is created again where it left off.
type StartPolicy int

// Start policies.
const (
	// StartNew delivers only notifications published after the consumer
	// was created (the zero value).
	StartNew StartPolicy = iota
	// StartAll delivers everything the stream retains.
	StartAll
	// StartTime delivers from Start.Time: a subscriber that starts late
	// catches up on what it missed.
	StartTime
	// StartSequence delivers from stream sequence Start.Sequence.
	StartSequence
)

// Start is where a new durable consumer starts.
type Start struct {
	Policy   StartPolicy
	Time     time.Time // for StartTime
	Sequence uint64    // for StartSequence, from 1
}

// Config configures a Subscriber. Name, Filters and Handler are required.
type Config struct {
	// Name names the durable consumer and the dead-letter subject: one
	// per subscribing system (letters, digits, '-' and '_').
	Name string
	// URL is the NATS server (default nats.DefaultURL); ignored when Conn
	// is set. The SDK's own connection reconnects forever.
	URL string
	// Conn is an existing connection to use; the caller owns and closes it
	// and should configure reconnection (see ConnectOptions). Its
	// asynchronous errors stay with its own error handler, which with
	// ConsumerPerFilter under an access policy also sees the server refuse
	// to list the stream's consumers ($JS.API.CONSUMER.LIST.<Stream>);
	// the SDK warns about that itself and goes on.
	Conn *nats.Conn
	// TLS, when set, is the client configuration of the SDK's own NATS
	// connection and of the bootstrap's default HTTP client, for a hub
	// that speaks TLS; its RootCAs hold the hub's CA when that is not in
	// the system's trust store. Nil connects in plaintext, or with the
	// system's roots where the server asks for TLS.
	TLS *tls.Config
	// Stream is the hub's notification stream (default schemas.StreamName).
	Stream string
	// SubjectPrefix is the first subject token (default "pop", the hub's);
	// tests running next to a real hub on one server use their own.
	SubjectPrefix string
	// Filters select the notifications; see filterSet for how several
	// filters are served by one consumer, and ConsumerPerFilter for the
	// alternative.
	Filters []Filter
	// Handler handles each notification.
	Handler Handler

	// ConsumerPerFilter makes the subscriber create one durable pull
	// consumer per distinct filter subject, filtered to exactly that
	// subject and named schemas.FilterConsumerName(Name, subject), and
	// consume them all into the same workers, instead of one consumer
	// named Name on the narrowest subject covering every filter. The
	// default (false) reads the cover and drops what no filter wants;
	// that needs permission to read the cover, which a subscriber under
	// the hub's access policy lacks: it may create consumers only on its
	// own subjects (hub/access NATSPermissions), and a 2.9 server takes
	// one filter subject per consumer. What the mode trades:
	//
	//   - A notification matching two filters (a move between two places
	//     of the region matches migrations out and in) is on two
	//     consumers. Both copies go to the citizen's worker, and a copy of
	//     a stream message the worker already handled or dead-lettered is
	//     acked without calling the Handler again, as long as the process
	//     remembers it: until every filter's copy arrived, and for at
	//     least the 16,384 newer such messages of the worker. After a
	//     restart in between, or when one consumer lags further behind
	//     than that, the second copy is handled again: at least once per
	//     filter, like any redelivery, which the idempotent Handler the
	//     SDK asks for absorbs. (Keyed on the stream sequence, which both
	//     copies share, and kept until the copies are in rather than for a
	//     time: a window of time would not cover a consumer lagging
	//     further behind than it, and costs the same.)
	//   - Per-citizen order holds within each filter's consumer; across
	//     filters the consumers advance independently, so while they catch
	//     up a citizen's death may be handled before their earlier
	//     migration. Version reveals it.
	//   - The pending gauges add the consumers up: a notification on two
	//     counts twice.
	//   - Switching the mode of an existing subscriber creates the other
	//     mode's consumers at Start (or from Bootstrap) and leaves the old
	//     ones on the server, where they hold messages back from nobody
	//     but cost the server their state: delete them.
	//   - Changed filters give other consumer names, which the subscriber
	//     would not meet when it binds; instead it lists the stream's
	//     consumers when it sets up and stops with ErrFilterChanged on one
	//     named FilterConsumerName(Name, S) for a subject S it no longer
	//     filters. A NATS user that may not list them (the hub's access
	//     policy grants no $JS.API.CONSUMER.LIST) skips that check, with a
	//     warning: the new filters' consumers then start at Start (or from
	//     Bootstrap) next to the old ones. Give new filters a new Name
	//     there, and have the old consumers deleted.
	ConsumerPerFilter bool
	// User and Password authenticate the SDK's own connection (ignored
	// when Conn is set), for a server with users, such as the hub's under
	// an access policy, where User is the subscriber's identity and Name
	// must be it too (the policy lets an identity create only consumers
	// named after itself).
	User, Password string
	// InboxPrefix replaces "_INBOX" in the reply subjects of the SDK's own
	// connection (nats.CustomInboxPrefix). Under the hub's access policy a
	// subscriber may subscribe only to its private inbox prefix,
	// "_INBOX_<identity>" unless the policy names another; pull requests
	// and API replies arrive there.
	InboxPrefix string

	// Concurrency is the number of workers (default 8). A citizen always
	// goes to the same worker, chosen by a hash of the citizen ID.
	Concurrency int
	// FetchBatch is how many messages are pulled and buffered at once
	// (default 512).
	FetchBatch int
	// MaxAttempts is how many times the Handler may fail (return an
	// error) at a notification before it is dead-lettered (default 5).
	// Failures marked Transient do not count. Only the Handler's failures
	// count, not the server's deliveries: a
	// graceful shutdown naks the notifications fetched but not started,
	// and that is a delivery on the server although the Handler never
	// ran. The count is kept in the process, so it starts again after a
	// restart: across restarts a failing Handler is bounded by
	// MaxDeliveries instead.
	MaxAttempts int
	// MaxDeliveries is how many times the server may deliver a
	// notification without an ack before it is dead-lettered without
	// calling the Handler again (default max(10×MaxAttempts, 50)): the
	// bound on a notification whose handling kills the process, or keeps
	// failing across restarts. Graceful shutdowns
	// add a delivery to each notification fetched but not started, so
	// keep it well above the restarts a backlog may see.
	MaxDeliveries int
	// Backoff are the delays before the second, third, … attempt; the
	// last repeats (default 100ms, 1s, 5s, 15s).
	Backoff []time.Duration
	// AckWait is how long the server waits for an ack before it delivers
	// a message again (default 30s). The SDK keeps messages it holds alive
	// with in-progress acks, so this bounds only the redelivery delay
	// after a crash.
	AckWait time.Duration
	// DeadLetterPrefix is the first token of the dead-letter subject
	// <prefix>.<Name> (default "popdlq"). It must not fall under the
	// notification stream's subjects ("pop.>"), or dead letters would be
	// captured as notifications. If no stream captures <prefix>.>, the
	// SDK creates DeadLetterStream for it.
	DeadLetterPrefix string
	// DeadLetterStream is the stream created for dead letters when none
	// exists (default "POPDLQ").
	DeadLetterStream string
	// Start is where a new consumer starts when Bootstrap is nil.
	Start Start
	// Bootstrap, when set, makes a new consumer start from a snapshot.
	Bootstrap *Bootstrap
	// Positions, when set, keeps where each durable consumer had got to
	// in the subscriber's own storage, so that a consumer found missing at
	// start (deleted while the subscriber was stopped, or lost with the
	// server's store) is created again where it left off, as one this
	// process bound and lost is, instead of at Start or from a Bootstrap,
	// which would skip or re-walk what it missed without a word. The SDK
	// saves a consumer's position whenever it reads the backlog (every
	// 5 s) and when Run ends. To start over from a Bootstrap, delete the
	// saved positions along with the consumers.
	Positions Positions
	// ShutdownTimeout bounds how long in-flight handlers may run after
	// Run's context ended before their context is cancelled (default 30s).
	ShutdownTimeout time.Duration

	// TracerProvider starts one consumer span per notification (default
	// otel's global provider, a no-op unless the program installed one).
	// While it records nothing, the SDK skips starting spans and checks
	// again every second; the handler's context carries the hub's span
	// context either way.
	TracerProvider trace.TracerProvider
	// MeterProvider records pophub_sdk_notifications_total{subscriber,
	// outcome}; the gauges pophub_sdk_pending{subscriber} (notifications
	// the durable consumer has not delivered yet: the subscriber's lag) and
	// pophub_sdk_ack_pending{subscriber} (delivered, not yet acked), which
	// are refreshed from each message's metadata and from the stream's and
	// consumers' info every five seconds, and are absent from the first
	// refresh that fails (the server unreachable or refusing) until one
	// succeeds, logged at WARN when that starts and at INFO when it ends;
	// the gauge pophub_sdk_pending_timestamp_seconds{subscriber}, when a
	// refresh last succeeded, which stops advancing while they fail; and
	// the counters pophub_sdk_consumers_recreated_total{subscriber} and
	// pophub_sdk_gaps_total{subscriber} (see the package doc's Reconnection
	// and Expiry), which should stay at 0 (default the global provider).
	MeterProvider metric.MeterProvider
	// Propagator extracts the hub's trace context from message headers
	// (default W3C TraceContext).
	Propagator propagation.TextMapPropagator
	// Logger receives warnings, and the asynchronous errors of the SDK's
	// own connection at error level (default: discard, the connection's
	// errors then going to standard error, as nats.go writes them). It
	// never sees citizen IDs.
	Logger *slog.Logger
}

// ErrBootstrapRefused is wrapped by Run's error when the hub refuses the
// bootstrap's requests (401 or 403: a wrong token, or a purpose or region
// the identity may not use). Retrying cannot help, so Run returns it
// rather than retrying for ever.
var ErrBootstrapRefused = errors.New("the hub refused the bootstrap")

// ErrFilterChanged is wrapped by Run's error when the filters changed
// under the same Config.Name: the durable consumer of the name filters
// another subject than the configuration's, or, with
// Config.ConsumerPerFilter, the stream holds a consumer the name made for
// a subject the configuration no longer filters (one named
// schemas.FilterConsumerName(Name, S) filtering S; a NATS user that may
// not list the stream's consumers cannot find those, see
// ConsumerPerFilter). The SDK does not change the filter of an existing
// consumer, nor start new filters' consumers next to old ones, which
// would silently skip or repeat notifications; retrying cannot help, so
// Run returns it, naming the consumers. Delete the old consumers (their
// position is lost: start the new ones with Start or Bootstrap) or use
// another name.
var ErrFilterChanged = errors.New("the durable consumer filters other subjects than the configuration")

// Position is where a durable consumer had got to: the server reported
// every one of its messages up to stream sequence AckFloor acked, on the
// stream created at Stream (zero when the subscriber may not read the
// stream's info), filtering Filter. A position saved under another filter
// (the subscriber's filters changed under the same name) is not resumed
// from: the consumer starts as a new one.
type Position struct {
	Stream   time.Time
	AckFloor uint64
	Filter   string
}

// Positions stores the subscriber's consumers' positions outside NATS,
// keyed by consumer name (Subscriber.Durables). What was acked after a
// saved position comes again after a restart from it, which the
// idempotent Handler absorbs.
type Positions interface {
	// Load returns the consumer's last saved position; ok is false when
	// none was saved.
	Load(ctx context.Context, consumer string) (p Position, ok bool, err error)
	// Save replaces the consumer's saved position.
	Save(ctx context.Context, consumer string, p Position) error
}

// Bootstrap configures the snapshot a new subscriber starts from: it
// applies when the subscriber creates a consumer that this process has not
// bound before. A subscriber that missed notifications the stream deleted
// (a gap, see the package doc) starts over from a snapshot this way: stop
// it, delete its durable consumers (Subscriber.Durables; under the hub's
// access policy the subscriber's identity may) and its saved Positions,
// and start it again.
type Bootstrap struct {
	// HubURL is the hub's HTTP API, e.g. http://hub:8080 (required).
	HubURL string
	// Regions are walked with GET /v1/persons?region=…; default: the
	// distinct regions of the filters ("" is the whole country).
	Regions []string
	// Purpose is sent as X-Purpose, which the hub requires (required).
	Purpose string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// PageSize is the limit of one page (default 1000).
	PageSize int
	// Client does the requests (default: a client with a 60s timeout
	// that trusts Config.TLS's roots).
	Client *http.Client
	// Handle receives every person of the snapshot, once per region walk
	// that lists it; it must be idempotent. An error aborts the bootstrap,
	// which runs again from the start when Run is retried.
	Handle func(ctx context.Context, p Person) error
	// DeliverCovered hands the Handler the notifications the snapshot
	// already reflects, marked Delivery.InSnapshot, instead of acking them
	// unseen. For a Handler whose notifications are work rather than
	// copies (a death published during the walk must still stop the
	// person's benefits, though the snapshot shows them deceased). Off by
	// default: a Handler that copies records gains nothing from them.
	DeliverCovered bool
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (c *Config) setDefaults() {
	if c.URL == "" {
		c.URL = nats.DefaultURL
	}
	if c.Stream == "" {
		c.Stream = schemas.StreamName
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "pop"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.FetchBatch <= 0 {
		c.FetchBatch = 512
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.MaxDeliveries <= 0 {
		c.MaxDeliveries = max(10*c.MaxAttempts, 50)
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second, 15 * time.Second}
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.DeadLetterPrefix == "" {
		c.DeadLetterPrefix = "popdlq"
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = "POPDLQ"
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if b := c.Bootstrap; b != nil {
		if b.PageSize <= 0 {
			b.PageSize = 1000
		}
		if b.Client == nil {
			b.Client = &http.Client{Timeout: 60 * time.Second}
			if c.TLS != nil {
				b.Client.Transport = tlshttp.Transport(c.TLS)
			}
		}
		if len(b.Regions) == 0 {
			for _, f := range c.Filters {
				b.Regions = append(b.Regions, f.Region)
			}
		}
		b.Regions = outermost(b.Regions)
	}
}

// Validate reports whether the configuration can work.
func (c *Config) Validate() error {
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("subscriber name %q: want letters, digits, '-' or '_'", c.Name)
	}
	if len(c.Filters) == 0 {
		return errors.New("at least one filter is required")
	}
	for _, f := range c.Filters {
		if err := f.validate(); err != nil {
			return err
		}
	}
	if c.Handler == nil {
		return errors.New("a handler is required")
	}
	if c.Password != "" && c.User == "" {
		return errors.New("a NATS password needs a user")
	}
	prefix, dlq := c.SubjectPrefix, c.DeadLetterPrefix
	if prefix == "" {
		prefix = "pop"
	}
	if dlq == "" {
		dlq = "popdlq"
	}
	if prefix == dlq || !nameRE.MatchString(prefix) || !nameRE.MatchString(dlq) {
		return fmt.Errorf("subject prefix %q and dead-letter prefix %q must be distinct single tokens", prefix, dlq)
	}
	if c.ConsumerPerFilter {
		if err := checkFilterConsumers(c.Name, newFilterSet(prefix, c.Filters)); err != nil {
			return err
		}
	}
	switch c.Start.Policy {
	case StartNew, StartAll:
	case StartTime:
		if c.Start.Time.IsZero() {
			return errors.New("start at a time needs Start.Time")
		}
	case StartSequence:
		if c.Start.Sequence == 0 {
			return errors.New("start at a sequence needs Start.Sequence ≥ 1")
		}
	default:
		return fmt.Errorf("unknown start policy %d", c.Start.Policy)
	}
	if b := c.Bootstrap; b != nil {
		if b.HubURL == "" || b.Purpose == "" || b.Handle == nil {
			return errors.New("bootstrap needs HubURL, Purpose and Handle")
		}
	}
	return nil
}

// ConnectOptions are the options the SDK connects with: reconnect forever,
// and buffer what is published (acks) while disconnected. Use them for a
// Conn passed in Config.
func ConnectOptions(name string) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(32 << 20),
	}
}

// maxFilterConsumers bounds the consumers of one subscriber in the
// per-filter mode: the copies of a stream message are tracked in a 64-bit
// mask (see copies).
const maxFilterConsumers = 64

// checkFilterConsumers reports whether every distinct filter subject gets
// a consumer name of its own, and not too many of them.
func checkFilterConsumers(name string, fs filterSet) error {
	if len(fs.subjects) > maxFilterConsumers {
		return fmt.Errorf("%d distinct filters: one consumer per filter allows at most %d", len(fs.subjects), maxFilterConsumers)
	}
	names := make(map[string]string, len(fs.subjects))
	for _, subj := range fs.subjects {
		n := schemas.FilterConsumerName(name, subj)
		if other, dup := names[n]; dup {
			return fmt.Errorf("filters %q and %q get the same consumer name %s: rename the subscriber", other, subj, n)
		}
		names[n] = subj
	}
	return nil
}

// outermost drops duplicate regions and those inside another listed one;
// "" (everything) swallows the rest. Regions are compared, and returned,
// as RegionCode reads them: 230100 is the city 2301, so its counties are
// inside it and a person of one of them is walked, and handed to
// Bootstrap.Handle, once.
func outermost(codes []string) []string {
	read := make([]string, len(codes))
	for i, c := range codes {
		read[i] = RegionCode(c)
	}
	codes = read
	var out []string
	for i, c := range codes {
		inner := false
		for j, o := range codes {
			if j != i && len(o) < len(c) && c[:len(o)] == o || j < i && o == c {
				inner = true
			}
		}
		if !inner {
			out = append(out, c)
		}
	}
	return out
}
