package sdk

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/schemas"
)

// Subscriber consumes the hub's notifications. Create it with New, call
// Run once, then Close.
type Subscriber struct {
	cfg     Config
	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	filters filterSet
	// durables are the durable consumers: one on the filters' cover, or
	// one per filter subject (durables[i] on filters.subjects[i]).
	durables []*durable
	// setupMu serialises setup: each consumer's pull loop sets up again
	// when its consumer disappears, and two must not create one twice.
	setupMu sync.Mutex
	// listRefused is set, under setupMu, once the server refused to list
	// the stream's consumers (see checkLeftoverConsumers): the check is
	// skipped from then on, and its warning logged once.
	listRefused bool
	// streamInfoRefused is set once the server refused to tell the
	// notification stream's info (see streamInfo): the SDK then goes on
	// from its consumers' info alone, and asks no more.
	streamInfoRefused atomic.Bool
	tracer            trace.Tracer
	// spanName names every handling span ("process <name>").
	spanName string
	// spanOpts are the options of every handling span, built once.
	spanOpts []trace.SpanStartOption
	seed     maphash.Seed
	// instance is the random part of this Subscriber's dead-letter ids
	// (see deadLetterID).
	instance string

	// inflight holds the messages fetched and not yet acked or nakked, by
	// consumer and stream sequence: a redelivery of one of them is not
	// handed out again, and all of them get in-progress acks while they
	// wait. (Two consumers' copies of one stream message are two
	// messages, each acked on its own consumer.)
	mu       sync.Mutex
	inflight map[inflightKey]jetstream.Msg
	// givingBack holds, under mu, the messages fetched but not handled
	// when Run's context ended, until returnGivenBack naks them in stream
	// order.
	givingBack []heldMsg

	// spanless is set while the tracer passes contexts through (see
	// startSpan) and cleared every spanProbe.
	spanless atomic.Bool
	stopping atomic.Bool
	stopped  chan struct{} // closed when Run's ctx ends

	outcomes metric.Int64Counter
	// The outcomes' attribute sets, built once: recording one is an
	// atomic add on the metrics SDK's side, and nothing on a no-op one.
	handled, skipped, retried, deadLettered []metric.AddOption
	// recreated counts consumers created again after they were lost, and
	// gaps the notifications the stream deleted before a consumer took
	// them (see reportGap); attrs is their attribute set.
	recreated, gaps metric.Int64Counter
	attrs           []metric.AddOption
	backlog         backlog
	closeOnce       sync.Once

	// health is what Health reports, under healthMu: nil while Run has
	// its consumers set up, otherwise why it has not (see setHealth).
	healthMu sync.Mutex
	health   error
}

// Health's answers before Run and after it returned.
var (
	errNotStarted = errors.New("not running: Run has not started")
	errStopped    = errors.New("not running: Run returned")
)

// setHealth records what Health reports: nil once the consumers are set
// up, otherwise why the subscriber is not consuming.
func (s *Subscriber) setHealth(err error) {
	s.healthMu.Lock()
	s.health = err
	s.healthMu.Unlock()
}

// Health reports whether the subscriber is consuming: nil while Run has
// its durable consumers set up and the connection to NATS is up, and
// otherwise an error that says why not: Run has not started or has
// returned; it is setting up, with the failure it is retrying (the
// server unreachable, the hub's stream not created yet) or the one that
// stopped it for good (such as ErrFilterChanged); a consumer was lost and
// is being set up again; or the connection is down and reconnecting. It
// does not block, for a health endpoint to call. The errors carry no
// citizen IDs.
func (s *Subscriber) Health() error {
	s.healthMu.Lock()
	err := s.health
	s.healthMu.Unlock()
	if err != nil {
		return err
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("not connected to NATS (%s)", st)
	}
	return nil
}

// durable is one of the subscriber's durable consumers.
type durable struct {
	name, filter string
	// legacyName and legacyFilter are the consumer an SDK before the
	// county reading of 441900, 442000 and 460400 made for the same
	// configuration ("" when it made this one): bind takes it when it
	// exists (see filterSet.legacy).
	legacyName, legacyFilter string
	// snapshot holds each citizen's version in the bootstrap snapshot the
	// consumer was created from (nil: none, or no longer needed); its
	// notifications at or below those versions are covered by it (see
	// Bootstrap.DeliverCovered). Set when setup creates the consumer, and
	// set to nil by releaseSnapshot once every notification up to the
	// snapshot's end was acked, while the workers read it.
	snapshot atomic.Pointer[snapshot]

	// mu guards what this process knows of the consumer, which outlives
	// the consumer: a lost one is created again from it (see recreate).
	mu sync.Mutex
	// cons is the consumer as last bound or created; nil until setup
	// first did.
	cons jetstream.Consumer
	// streamCreated is when the stream cons is on was created: a stream
	// created again starts its sequences over.
	streamCreated time.Time
	// ackFloor is the stream sequence up to which the server last
	// reported every message of the consumer acked.
	ackFloor uint64
	// accounted is the stream sequence up to which every message
	// matching the filter was acked, is held by this process, or was
	// reported as a gap (see advance).
	accounted uint64
	// saved is the position last saved to or loaded from
	// Config.Positions (when hasSaved), and saveFailing whether the last
	// save failed. A consumer's first position is saved even before
	// anything was acked: a consumer found missing after that resumes
	// rather than starting at Config.Start.
	saved                 Position
	hasSaved, saveFailing bool
}

// consumer returns the consumer d reads now, or nil before setup.
func (d *durable) consumer() jetstream.Consumer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cons
}

// advance records the consumer's info ci, read after the stream's info si
// (so that si's sequences are at most those ci saw; nil when the user may
// not read it, and then no gap is found), and returns the
// stream sequences [from, to] the stream deleted before the consumer took
// them (to 0: none). reached is the sequence up to which ci shows every
// matching message taken: acked, or with held also delivered to this
// process, which still holds or handled it. It must be called under d.mu,
// with si describing the stream d.cons is on.
//
// Which of the deleted messages matched the filter, the stream no longer
// says. A consumer that this process saw caught up (nothing pending, and
// nothing unacked) took every matching message up to the stream's last
// sequence at the time, which keeps a quiet filter from reporting the
// unrelated messages that expire after it.
func (d *durable) advance(si *jetstream.StreamInfo, ci *jetstream.ConsumerInfo, reached uint64) (from, to uint64) {
	d.ackFloor = max(d.ackFloor, ci.AckFloor.Stream)
	d.accounted = max(d.accounted, reached)
	if si == nil {
		return 0, 0
	}
	if first := si.State.FirstSeq; first > d.accounted+1 {
		from, to = d.accounted+1, first-1
		d.accounted = to
	}
	if ci.NumPending == 0 && ci.NumAckPending == 0 {
		d.accounted = max(d.accounted, si.State.LastSeq)
	}
	return from, to
}

// inflightKey identifies a message held by the subscriber.
type inflightKey struct {
	durable int
	seq     uint64
}

// heldMsg is a message the subscriber holds, with its key.
type heldMsg struct {
	msg jetstream.Msg
	key inflightKey
}

// Durable names one of the subscriber's durable consumers on the hub's
// stream and the subject it filters.
type Durable struct {
	Name          string
	FilterSubject string
}

// New validates cfg and connects to NATS (without waiting for the server:
// the connection retries until it is up).
func New(cfg Config) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring subscriber: %w", err)
	}
	logged := cfg.Logger != nil // see asyncErrors
	cfg.setDefaults()
	s := &Subscriber{
		cfg:      cfg,
		filters:  newFilterSet(cfg.SubjectPrefix, cfg.Filters),
		tracer:   cfg.TracerProvider.Tracer("github.com/pophub/pophub/consumers/sdk"),
		spanName: "process " + cfg.Name,
		spanOpts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)},
		seed:     maphash.MakeSeed(),
		instance: newInstanceID(),
		inflight: make(map[inflightKey]jetstream.Msg),
		stopped:  make(chan struct{}),
		health:   errNotStarted,
	}
	if cfg.ConsumerPerFilter {
		for i, subj := range s.filters.subjects {
			d := &durable{name: schemas.FilterConsumerName(cfg.Name, subj), filter: subj}
			if old := s.filters.legacy[i]; old != "" {
				d.legacyName, d.legacyFilter = schemas.FilterConsumerName(cfg.Name, old), old
			}
			s.durables = append(s.durables, d)
		}
	} else {
		d := &durable{name: cfg.Name, filter: s.filters.cover}
		if old := s.filters.legacyCover; old != "" {
			d.legacyName, d.legacyFilter = cfg.Name, old
		}
		s.durables = []*durable{d}
	}
	var err error
	meter := cfg.MeterProvider.Meter("github.com/pophub/pophub/consumers/sdk")
	s.outcomes, err = meter.Int64Counter(
		"pophub_sdk_notifications_total",
		metric.WithDescription("Notifications taken by the subscriber SDK, by outcome: handled, skipped (filtered out, in the snapshot, or a copy already handled from another filter's consumer), retried, dead_lettered."))
	if err != nil {
		return nil, fmt.Errorf("creating metrics: %w", err)
	}
	outcome := func(o string) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("subscriber", cfg.Name), attribute.String("outcome", o)))}
	}
	s.handled, s.skipped, s.retried, s.deadLettered = outcome("handled"), outcome("skipped"), outcome("retried"), outcome("dead_lettered")
	s.attrs = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("subscriber", cfg.Name)))}
	s.recreated, err = meter.Int64Counter("pophub_sdk_consumers_recreated_total",
		metric.WithDescription("Durable consumers the subscriber found gone while it ran and created again where it had left off."))
	if err != nil {
		return nil, fmt.Errorf("creating metrics: %w", err)
	}
	s.gaps, err = meter.Int64Counter("pophub_sdk_gaps_total",
		metric.WithDescription("Times the subscriber found that the stream had deleted messages before its consumer took them: the notifications among them are lost to it."))
	if err != nil {
		return nil, fmt.Errorf("creating metrics: %w", err)
	}
	// Exported at 0 from the start, so that an alert on any increase has
	// a series to watch.
	s.recreated.Add(context.Background(), 0, s.attrs...)
	s.gaps.Add(context.Background(), 0, s.attrs...)
	if err := s.backlog.register(meter, cfg.Name, len(s.durables)); err != nil {
		return nil, fmt.Errorf("creating metrics: %w", err)
	}
	if cfg.Conn != nil {
		s.nc = cfg.Conn
	} else {
		opts := ConnectOptions("pophub-sdk-" + cfg.Name)
		if cfg.TLS != nil {
			opts = append(opts, nats.Secure(cfg.TLS))
		}
		if cfg.User != "" {
			// The server checks a password with bcrypt, which can take
			// longer than the default two-second connect timeout on a busy
			// machine.
			opts = append(opts, nats.UserInfo(cfg.User, cfg.Password), nats.Timeout(20*time.Second))
		}
		if cfg.InboxPrefix != "" {
			opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
		}
		s.nc, err = nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("connecting to NATS: %w", err)
		}
		s.ownConn = true
		// Set after connecting, to wrap nats.go's default handler: no
		// request is sent before Run.
		s.nc.SetErrorHandler(s.asyncErrors(s.nc.ErrorHandler(), logged))
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("creating JetStream context: %w", err)
	}
	return s, nil
}

// Close closes the SDK's own connection. It is safe to call twice; call
// it after Run returned.
func (s *Subscriber) Close() error {
	s.closeOnce.Do(func() {
		if s.backlog.reg != nil {
			_ = s.backlog.reg.Unregister()
		}
		if s.ownConn {
			s.nc.Close()
		}
	})
	return nil
}

// FilterSubject is the subject filter of the durable consumer: the
// narrowest subject covering every filter. With Config.ConsumerPerFilter
// no consumer uses it; see Durables.
func (s *Subscriber) FilterSubject() string { return s.filters.cover }

// Durables are the durable consumers the subscriber binds, or creates when
// they do not exist: one named Config.Name filtering FilterSubject, or with
// Config.ConsumerPerFilter one per distinct filter subject, named
// schemas.FilterConsumerName(Config.Name, subject).
func (s *Subscriber) Durables() []Durable {
	out := make([]Durable, len(s.durables))
	for i, d := range s.durables {
		out[i] = Durable{Name: d.name, FilterSubject: d.filter}
	}
	return out
}

// count records one notification with an outcome's attribute set.
func (s *Subscriber) count(outcome []metric.AddOption) {
	s.outcomes.Add(context.Background(), 1, outcome...)
}

// item is a message on its way to a worker.
type item struct {
	msg     jetstream.Msg
	meta    *jetstream.MsgMetadata
	durable int // the index of the consumer that delivered it
}

// Run consumes until ctx ends, then finishes the messages being handled
// and returns nil. It returns an error only if setting up failed for good
// (a bad configuration the server rejects; an existing durable consumer
// of the name with other filters: ErrFilterChanged; or a bootstrap the hub
// refuses: ErrBootstrapRefused) or the NATS connection closed for good
// (ErrConnectionClosed: the server refused the login, as after a password
// rotation); transient failures, such as the server being down, are
// retried.
func (s *Subscriber) Run(ctx context.Context) error {
	ctx, stop := context.WithCancelCause(ctx)
	var watch sync.WaitGroup
	watch.Go(func() { s.watchConnection(ctx, stop) })
	err := s.run(ctx)
	stop(nil)
	watch.Wait()
	if cause := context.Cause(ctx); errors.Is(cause, ErrConnectionClosed) {
		s.setHealth(cause)
		return cause
	}
	return err
}

// ErrConnectionClosed ends Run when its NATS connection closed for good:
// nats.go gives up after the server refused the login twice (a rotated
// password, an identity removed from the policy) however many reconnects
// it was allowed, and nothing can be fetched or acked after that. Run
// returns, as it does when the hub refuses a bootstrap, so that the
// process's supervisor starts it again with the current credentials.
var ErrConnectionClosed = errors.New("the NATS connection closed for good")

// watchConnection ends ctx with ErrConnectionClosed once the server has
// closed the connection for good, until ctx ends. Only a refused login
// does that (nats.go stops reconnecting after the second); a connection
// closed by its owner (a Conn passed in Config, closed on purpose) is no
// reason to report one. It listens for the connection's status rather
// than setting a ClosedHandler, which a caller's Conn may have.
func (s *Subscriber) watchConnection(ctx context.Context, stop context.CancelCauseFunc) {
	closed := s.nc.StatusChanged(nats.CLOSED)
	defer s.nc.RemoveStatusListener(closed)
	if !s.nc.IsClosed() { // closed before the listener was there: no news will come
		select {
		case <-ctx.Done():
			return
		case <-closed:
		}
	}
	last := s.nc.LastError()
	if !loginRefused(last) {
		return
	}
	err := fmt.Errorf("subscriber %s: %w: %w: the server refused the login (a rotated password, or an identity the policy no longer has): "+
		"start the subscriber again with its current credentials", s.cfg.Name, ErrConnectionClosed, last)
	s.cfg.Logger.Error("subscriber: stopping", "subscriber", s.cfg.Name, "error", err)
	stop(err)
}

// loginRefused reports whether err is the server refusing the
// connection's credentials.
func loginRefused(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked)
}

func (s *Subscriber) run(ctx context.Context) error {
	s.setHealth(errors.New("setting up"))
	conss, err := s.setup(ctx)
	if err == nil || ctx.Err() != nil {
		defer s.setHealth(errStopped) // a permanent failure stays the answer
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	// Handlers outlive ctx by up to ShutdownTimeout.
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	stopWatch := context.AfterFunc(ctx, func() {
		s.stopping.Store(true)
		close(s.stopped)
		time.AfterFunc(s.cfg.ShutdownTimeout, cancelHandlers)
	})
	defer stopWatch()

	var background sync.WaitGroup
	background.Go(func() { s.watchBacklog(ctx) })
	background.Go(func() { s.warnIfDeadLettersExpire(ctx) })
	defer background.Wait()

	queues := make([]*queue, s.cfg.Concurrency)
	limit := s.queueLimit(conss)
	var workers sync.WaitGroup
	for i := range queues {
		queues[i] = newQueue(limit)
		workers.Go(func() {
			var cp *copies // only where one stream message can come twice
			if len(s.durables) > 1 {
				cp = new(copies)
			}
			// One citizen's messages always reach the same worker, so each
			// worker counts the failures of its own messages unlocked.
			failed := make(failures)
			var batch []item
			for {
				var ok bool
				if batch, ok = queues[i].take(batch); !ok {
					return
				}
				for _, it := range batch {
					s.handle(hctx, it, cp, failed)
				}
			}
		})
	}
	keepAlive := time.NewTicker(max(s.cfg.AckWait/3, 10*time.Millisecond))
	defer keepAlive.Stop()
	probe := time.NewTicker(spanProbe)
	defer probe.Stop()
	flush := time.NewTicker(gatherWait)
	defer flush.Stop()
	// The keep-alive runs until every message was acked or given back.
	returned := make(chan struct{})
	defer close(returned)
	go func() {
		for {
			select {
			case <-returned:
				return
			case <-flush.C:
				flushAll(queues)
			case <-keepAlive.C:
				s.touchInflight()
			case <-probe.C:
				s.spanless.Store(false)
			}
		}
	}()

	var loops sync.WaitGroup
	for i, cons := range conss {
		loops.Go(func() { s.fetchLoop(ctx, i, cons, queues) })
	}
	loops.Wait()
	for _, q := range queues {
		q.close()
	}
	workers.Wait()
	s.returnGivenBack()
	s.touchInflight() // nothing should be left; keep any straggler alive
	if s.cfg.Positions != nil && s.nc.IsConnected() {
		// Where the consumers got to, acks of the last moments included
		// as far as the server has them.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		s.refreshBacklog(fctx)
		cancel()
	}
	s.cfg.Logger.Info("subscriber stopped", "subscriber", s.cfg.Name)
	return nil
}

// queueLimit is how many messages one worker may hold, queued or being
// handled, before dispatch waits for it to take some. That wait blocks
// the Consume callback, which feeds every worker: with a limit the server
// can reach, a worker held back by a retry (up to the last Backoff delay,
// for ever with a Transient error) would stall all the others too. So the
// limit lies beyond what the server delivers: the messages a worker holds
// were delivered and not acked, except those of the batch it is handling
// that it acked already, and the server stops delivering a consumer's
// messages while MaxAckPending of them are unacked; a worker therefore
// holds at most twice the consumers' MaxAckPending added up. The server's
// limit is what bounds the process's memory, as it bounds everything the
// subscriber holds: a held-back worker's queue grows while the others go
// on, until that worker alone holds MaxAckPending messages and the server
// delivers nothing more until its retry ends. A consumer set to no limit
// on the server (MaxAckPending ≤ 0) counts as the SDK's own; should such a
// worker reach the limit, dispatch waits as before.
func (s *Subscriber) queueLimit(conss []jetstream.Consumer) int {
	sum := 0
	for _, cons := range conss {
		m := cons.CachedInfo().Config.MaxAckPending
		if m <= 0 {
			m = s.maxAckPending()
		}
		sum += m
	}
	return max(16, 2*sum)
}

// giveBack keeps msg, fetched but not handled when Run's context ended,
// for returnGivenBack.
func (s *Subscriber) giveBack(msg jetstream.Msg, key inflightKey) {
	s.mu.Lock()
	s.givingBack = append(s.givingBack, heldMsg{msg: msg, key: key})
	s.mu.Unlock()
}

// returnGivenBack returns the messages given back at shutdown to the
// server with a nak each, in stream order per consumer. The server
// redelivers nakked messages in the order the naks arrive, so a citizen's
// notifications reach the next instance in order, whether they were
// waiting for a retry, queued behind it, or still arriving when Run's
// context ended. Call it after the pull loops stopped.
func (s *Subscriber) returnGivenBack() {
	s.mu.Lock()
	back := s.givingBack
	s.givingBack = nil
	s.mu.Unlock()
	if len(back) == 0 {
		return
	}
	slices.SortFunc(back, func(a, b heldMsg) int {
		return cmp.Or(cmp.Compare(a.key.durable, b.key.durable), cmp.Compare(a.key.seq, b.key.seq))
	})
	// The server still holds the pull loops' last requests. Handing a
	// redelivery to one of them, it finds nobody listening and queues the
	// message again behind the others (nats-server 2.9 to 2.15), which
	// would reorder them. A consumer info request drops such requests.
	for i, m := range back {
		if i > 0 && m.key.durable == back[i-1].key.durable {
			continue
		}
		d := s.durables[m.key.durable]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := d.consumer().Info(ctx); err != nil {
			s.cfg.Logger.Warn("subscriber: reading consumer info before returning unhandled notifications",
				"subscriber", s.cfg.Name, "consumer", d.name, "error", err)
		}
		cancel()
	}
	for _, m := range back {
		_ = m.msg.Nak()
	}
	if err := s.nc.FlushTimeout(5 * time.Second); err != nil {
		s.cfg.Logger.Warn("subscriber: returning unhandled notifications", "subscriber", s.cfg.Name, "error", err)
	}
}

// fetchLoop pulls messages from the consumer durables[d] and hands them
// to workers until ctx ends. Run runs one per consumer, all feeding the
// same queues.
//
// It uses Consumer.Consume, which keeps a pull request outstanding while
// the previous batch is being handed out (the next pull goes out when half
// of FetchBatch has arrived), and calls dispatch on the subscription's own
// goroutine: no goroutine of its own between the connection and the
// workers, and no timer allocated per message for the heartbeat check.
// dispatch does not wait on a worker held back by a retry: the queues
// take everything the consumer's MaxAckPending lets the server deliver
// (see queueLimit), which is what bounds what the process holds.
func (s *Subscriber) fetchLoop(ctx context.Context, d int, cons jetstream.Consumer, queues []*queue) {
	name := s.durables[d].name
	var probing atomic.Bool
	for ctx.Err() == nil {
		pulled := cons
		onError := func(cc jetstream.ConsumeContext, err error) {
			s.consumeError(name, err)
			// A pull nobody answers, or no heartbeat from a pull that
			// was waiting: the consumer may be gone without the server
			// having had a pull of ours to tell (deleted between two
			// pulls, lost in a restart). nats.go would pull for ever.
			if (errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat)) && probing.CompareAndSwap(false, true) {
				go func() {
					defer probing.Store(false)
					s.stopIfGone(ctx, pulled, cc, name)
				}()
			}
		}
		gather := s.gather(cons, queues[0].limit)
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			if ctx.Err() != nil {
				s.giveBackArrived(msg, d) // fetched but not started: to the next instance
				return
			}
			s.dispatch(msg, d, queues, gather)
		}, jetstream.PullMaxMessages(s.cfg.FetchBatch), jetstream.ConsumeErrHandler(onError))
		if err != nil {
			s.cfg.Logger.Warn("subscriber: starting to pull", "subscriber", s.cfg.Name, "consumer", name, "error", err)
			sleep(ctx, time.Second)
			continue
		}
		// Drain hands what is buffered to the callback (which naks it)
		// before Closed is closed.
		stop := context.AfterFunc(ctx, cc.Drain)
		<-cc.Closed()
		stop()
		if ctx.Err() == nil {
			// The durable consumer is gone or the connection closed:
			// set up again.
			s.setHealth(fmt.Errorf("consumer %s stopped delivering; setting up again", name))
			sleep(ctx, time.Second)
			if cs, err := s.setup(ctx); err == nil {
				cons = cs[d]
			}
		}
	}
}

// giveBackArrived gives back a message of consumer d that arrived after
// Run's context ended, unless it is a redelivery of one this process
// holds, which is acked or given back itself.
func (s *Subscriber) giveBackArrived(msg jetstream.Msg, d int) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term() // not a JetStream message: cannot happen on a pull consumer
		return
	}
	key := inflightKey{durable: d, seq: meta.Sequence.Stream}
	s.mu.Lock()
	_, held := s.inflight[key]
	s.mu.Unlock()
	if !held {
		s.giveBack(msg, key)
	}
}

// gather is how many queued messages wake a sleeping worker (see queue):
// 16, at most limit, and few enough that the messages waiting in all
// queues stay well below the consumer's MaxAckPending, at which the server
// stops delivering until acks arrive.
func (s *Subscriber) gather(cons jetstream.Consumer, limit int) int {
	g := min(16, limit)
	if m := cons.CachedInfo().Config.MaxAckPending; m > 0 {
		g = min(g, m/(2*s.cfg.Concurrency))
	}
	return max(1, g)
}

// stopIfGone stops cc when the server says its consumer does not exist,
// so that fetchLoop sets it up again; any other answer leaves cc pulling.
func (s *Subscriber) stopIfGone(ctx context.Context, cons jetstream.Consumer, cc jetstream.ConsumeContext, name string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := cons.Info(ctx)
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return
	}
	s.cfg.Logger.Error("subscriber: the durable consumer is gone", "subscriber", s.cfg.Name, "consumer", name, "error", err)
	cc.Stop()
}

// consumeError logs the errors Consume reports. nats.go stops consuming
// by itself on the terminal ones (the durable consumer deleted), and keeps
// pulling, re-pulling after a reconnect, on the others (missed heartbeats
// and the like).
func (s *Subscriber) consumeError(consumer string, err error) {
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.cfg.Logger.Error("subscriber: the durable consumer is gone", "subscriber", s.cfg.Name, "consumer", consumer, "error", err)
		return
	}
	s.cfg.Logger.Debug("subscriber: pulling", "subscriber", s.cfg.Name, "consumer", consumer, "error", err)
}

// dispatch acks what no filter wants and queues the rest on the worker
// of its citizen. d is the index of the consumer that delivered msg.
func (s *Subscriber) dispatch(msg jetstream.Msg, d int, queues []*queue, gather int) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term() // not a JetStream message: cannot happen on a pull consumer
		return
	}
	s.backlog.delivered(d, meta)
	if meta.NumPending == 0 {
		// Caught up: nothing else will come soon, so no queued message
		// waits for company.
		defer flushAll(queues)
	}
	// A consumer of its own per filter delivers exactly that filter.
	if !s.cfg.ConsumerPerFilter && !s.filters.match(msg.Subject()) {
		_ = msg.Ack()
		s.count(s.skipped)
		return
	}
	key := inflightKey{durable: d, seq: meta.Sequence.Stream}
	s.mu.Lock()
	if _, dup := s.inflight[key]; dup {
		// Redelivered while this process still holds it (a slow queue
		// or handler outlived AckWait): the held copy will be acked.
		s.mu.Unlock()
		return
	}
	s.inflight[key] = msg
	s.mu.Unlock()
	w := 0
	if id := citizenOf(msg.Data()); id != nil {
		w = int(maphash.Bytes(s.seed, id) % uint64(len(queues)))
	}
	queues[w].push(item{msg: msg, meta: meta, durable: d}, gather)
}

// citizenOf finds the citizen ID in a notification body without decoding
// it: the hub writes it as the second field, but any position works.
func citizenOf(body []byte) []byte {
	const key = `"citizen_id":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return nil
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

func (s *Subscriber) release(key inflightKey) {
	s.mu.Lock()
	delete(s.inflight, key)
	s.mu.Unlock()
}

// touchInflight tells the server that held messages are still being
// worked on, so waiting in a queue or a retry does not cause redelivery.
func (s *Subscriber) touchInflight() {
	s.mu.Lock()
	msgs := make([]jetstream.Msg, 0, len(s.inflight)+len(s.givingBack))
	for _, m := range s.inflight {
		msgs = append(msgs, m)
	}
	for _, m := range s.givingBack {
		msgs = append(msgs, m.msg)
	}
	s.mu.Unlock()
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// failures counts, per stream sequence, the handler's failed attempts
// (those not marked Transient) at the messages a worker still holds or
// gave back without handling them: MaxAttempts bounds these, not the
// server's deliveries, which a graceful shutdown also adds to (it naks
// what it fetched but did not start). An entry goes when its message is
// acked or dead-lettered; it outlives the message only when dead-lettering
// failed and the message comes back, or when a shutdown gave it back with
// a nak, and it dies with the process.
type failures map[uint64]failure

// failure is the handler's failed attempts at one message so far.
type failure struct {
	attempts int
	last     error // the latest failure's error
}

// handle runs one message through the handler, with retries in place.
// cp is the worker's memory of messages that come more than once (nil
// with a single consumer); failed counts the handler's failures at the
// worker's messages.
func (s *Subscriber) handle(ctx context.Context, it item, cp *copies, failed failures) {
	msg, seq := it.msg, it.meta.Sequence.Stream
	key := inflightKey{durable: it.durable, seq: seq}
	defer s.release(key)
	// A copy of a message handled from another filter's consumer is acked
	// even when stopping: given back, it would be handled again after the
	// restart, which remembers nothing.
	if cp != nil && cp.seen(seq, it.durable) {
		_ = msg.Ack()
		s.count(s.skipped)
		return
	}
	if s.stopping.Load() {
		s.giveBack(msg, key)
		return
	}
	var due uint64 // the other consumers that deliver this stream message too
	if cp != nil {
		due = s.filters.matching(msg.Subject()) &^ (1 << it.durable)
	}
	var before failure // the handler's failures at it in this process
	if len(failed) > 0 {
		before = failed[seq]
	}
	d := &Delivery{Subject: msg.Subject(), StreamSequence: seq, Attempt: before.attempts + 1, Deliveries: int(it.meta.NumDelivered)}
	if err := schemas.DecodeNotification(msg.Data(), &d.Notification); err != nil {
		if s.deadLetter(ctx, msg, d, d.Attempt, fmt.Errorf("decoding notification: %w", err)) {
			cp.handled(seq, due)
		}
		return
	}
	if snap := s.durables[it.durable].snapshot.Load(); snap != nil {
		if v, ok := snap.versions[d.CitizenID]; ok {
			d.SnapshotVersion, d.InSnapshot = v, d.Version <= v
		}
		if d.InSnapshot && !s.cfg.Bootstrap.DeliverCovered {
			// Already in the snapshot the consumer started from. Not
			// remembered as handled: another consumer's copy is skipped
			// by its own snapshot, if it has one.
			_ = msg.Ack()
			s.count(s.skipped)
			return
		}
	}
	if before.attempts >= s.cfg.MaxAttempts {
		// Back after publishing its dead letter failed: try that again,
		// not the handler.
		if s.deadLetter(ctx, msg, d, before.attempts, before.last) {
			delete(failed, seq)
			cp.handled(seq, due)
		}
		return
	}
	if d.Deliveries > s.cfg.MaxDeliveries {
		// Delivered again and again without an ack: its handling kills
		// the process, or never finishes within AckWait.
		err := fmt.Errorf("delivered %d times without an ack, more than MaxDeliveries (%d)", d.Deliveries, s.cfg.MaxDeliveries)
		if s.deadLetter(ctx, msg, d, d.Deliveries, err) {
			delete(failed, seq)
			cp.handled(seq, due)
		}
		return
	}
	ctx = s.cfg.Propagator.Extract(ctx, headerCarrier(msg.Headers()))
	ctx, span := s.startSpan(ctx)
	if span.IsRecording() { // attributes cost allocations: only for sampled spans
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", d.Subject),
			attribute.String("messaging.message.id", d.ChangeID),
			attribute.String("messaging.consumer.group.name", s.cfg.Name),
			attribute.String("pophub.section", d.Section),
			attribute.Int64("pophub.version", d.Version),
		)
	}
	defer span.End()
	counted := before.attempts // the failures that count against MaxAttempts
	for {
		if d.Attempt > 1 {
			span.SetAttributes(attribute.Int("pophub.attempt", d.Attempt))
		}
		err := s.cfg.Handler(ctx, d)
		if err == nil {
			if err := msg.Ack(); err != nil {
				s.cfg.Logger.Warn("subscriber: acking", "subscriber", s.cfg.Name, "seq", seq, "error", err)
			}
			delete(failed, seq)
			cp.handled(seq, due)
			s.count(s.handled)
			return
		}
		span.RecordError(err)
		transient := IsTransient(err)
		if !transient {
			counted++
			failed[seq] = failure{attempts: counted, last: err}
			if counted >= s.cfg.MaxAttempts {
				span.SetStatus(codes.Error, "dead-lettered")
				if s.deadLetter(ctx, msg, d, counted, err) {
					delete(failed, seq)
					cp.handled(seq, due)
				}
				return
			}
		}
		s.count(s.retried)
		delay := s.cfg.Backoff[min(d.Attempt, len(s.cfg.Backoff))-1]
		s.cfg.Logger.Warn("subscriber: handler failed, retrying", "subscriber", s.cfg.Name, "seq", seq,
			"attempt", d.Attempt, "transient", transient, "delay", delay, "error", err)
		select {
		case <-time.After(delay):
		case <-s.stopped:
			// Shutting down: given back with the messages behind it, in
			// stream order, so the next instance takes it first.
			s.giveBack(msg, key)
			return
		}
		d.Attempt++
	}
}

// spanProbe is how long the SDK goes without starting spans once the
// tracer turned out to pass contexts through, before it tries again.
const spanProbe = time.Second

// startSpan starts the consumer span of one notification, a child of the
// hub's span that ctx carries.
//
// With no tracing installed (the global provider before the program sets
// one, or a no-op provider) the span the tracer returns records nothing
// and carries its parent's span context unchanged: starting it costs three
// allocations and gives the handler nothing the extracted context does
// not already hold. When a span comes back like that, the following
// notifications skip Start and use the extracted context as it is, until
// spanProbe later a span is started again; so a provider installed later
// (the global provider delegates to it) is picked up within spanProbe. A
// real provider's spans, recorded or not, always have their own span ID,
// so they never turn Start off.
func (s *Subscriber) startSpan(ctx context.Context) (context.Context, trace.Span) {
	if s.spanless.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	sctx, span := s.tracer.Start(ctx, s.spanName, s.spanOpts...)
	if !span.IsRecording() && span.SpanContext().Equal(trace.SpanContextFromContext(ctx)) {
		s.spanless.Store(true)
	}
	return sctx, span
}

// headerCarrier reads W3C trace context from NATS headers, whose keys are
// case-sensitive (the hub writes "traceparent").
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
