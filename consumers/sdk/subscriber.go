package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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
	"github.com/pophub/pophub/schemas/citizenid"
)

// Subscriber consumes the hub's notifications. Create it with New, call
// Run once, then Close.
type Subscriber struct {
	cfg     Config
	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	filters filterSet
	tracer  trace.Tracer
	// spanName names every handling span ("process <name>").
	spanName string
	seed     maphash.Seed

	// snapshot holds each citizen's version in the bootstrap snapshot;
	// written before the workers start, read-only afterwards.
	snapshot map[citizenid.ID]int64

	// inflight holds the messages fetched and not yet acked or nakked, by
	// stream sequence: a redelivery of one of them is not handed out
	// again, and all of them get in-progress acks while they wait.
	mu       sync.Mutex
	inflight map[uint64]jetstream.Msg

	stopping atomic.Bool
	stopped  chan struct{} // closed when Run's ctx ends

	outcomes  metric.Int64Counter
	attrSets  map[string]metric.AddOption
	backlog   backlog
	closeOnce sync.Once
}

// New validates cfg and connects to NATS (without waiting for the server:
// the connection retries until it is up).
func New(cfg Config) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring subscriber: %w", err)
	}
	cfg.setDefaults()
	s := &Subscriber{
		cfg:      cfg,
		filters:  newFilterSet(cfg.SubjectPrefix, cfg.Filters),
		tracer:   cfg.TracerProvider.Tracer("github.com/pophub/pophub/consumers/sdk"),
		spanName: "process " + cfg.Name,
		seed:     maphash.MakeSeed(),
		inflight: make(map[uint64]jetstream.Msg),
		stopped:  make(chan struct{}),
		attrSets: make(map[string]metric.AddOption),
	}
	var err error
	meter := cfg.MeterProvider.Meter("github.com/pophub/pophub/consumers/sdk")
	s.outcomes, err = meter.Int64Counter(
		"pophub_sdk_notifications_total",
		metric.WithDescription("Notifications taken by the subscriber SDK, by outcome: handled, skipped (filtered out or in the snapshot), retried, dead_lettered."))
	if err != nil {
		return nil, fmt.Errorf("creating metrics: %w", err)
	}
	for _, o := range []string{"handled", "skipped", "retried", "dead_lettered"} {
		s.attrSets[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("subscriber", cfg.Name), attribute.String("outcome", o)))
	}
	if err := s.backlog.register(meter, cfg.Name); err != nil {
		return nil, fmt.Errorf("creating metrics: %w", err)
	}
	if cfg.Conn != nil {
		s.nc = cfg.Conn
	} else {
		s.nc, err = nats.Connect(cfg.URL, ConnectOptions("pophub-sdk-"+cfg.Name)...)
		if err != nil {
			return nil, fmt.Errorf("connecting to NATS: %w", err)
		}
		s.ownConn = true
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

// FilterSubject is the subject filter of the durable consumer.
func (s *Subscriber) FilterSubject() string { return s.filters.cover }

func (s *Subscriber) count(outcome string) {
	s.outcomes.Add(context.Background(), 1, s.attrSets[outcome])
}

// item is a message on its way to a worker.
type item struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
}

// Run consumes until ctx ends, then finishes the messages being handled
// and returns nil. It returns an error only if setting up failed for good
// (a bad configuration the server rejects); transient failures, such as
// the server being down, are retried.
func (s *Subscriber) Run(ctx context.Context) error {
	cons, err := s.setup(ctx)
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

	watching := make(chan struct{})
	go func() {
		defer close(watching)
		s.watchBacklog(ctx, cons)
	}()
	defer func() { <-watching }()

	queues := make([]chan item, s.cfg.Concurrency)
	var workers sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan item, max(16, 2*s.cfg.FetchBatch/s.cfg.Concurrency))
		workers.Go(func() {
			for it := range queues[i] {
				s.handle(hctx, it)
			}
		})
	}
	keepAlive := time.NewTicker(max(s.cfg.AckWait/3, 10*time.Millisecond))
	defer keepAlive.Stop()
	go func() {
		for {
			select {
			case <-s.stopped:
				return
			case <-keepAlive.C:
				s.touchInflight()
			}
		}
	}()

	s.fetchLoop(ctx, cons, queues)
	for _, q := range queues {
		close(q)
	}
	workers.Wait()
	s.touchInflight() // nothing should be left; keep any straggler alive
	s.cfg.Logger.Info("subscriber stopped", "subscriber", s.cfg.Name)
	return nil
}

// fetchLoop pulls messages and hands them to workers until ctx ends.
func (s *Subscriber) fetchLoop(ctx context.Context, cons jetstream.Consumer, queues []chan item) {
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.FetchBatch))
		if err != nil {
			s.cfg.Logger.Warn("subscriber: starting to pull", "subscriber", s.cfg.Name, "error", err)
			sleep(ctx, time.Second)
			continue
		}
		stop := context.AfterFunc(ctx, it.Drain)
		for {
			msg, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			if err != nil {
				if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
					s.cfg.Logger.Error("subscriber: the durable consumer is gone", "subscriber", s.cfg.Name, "error", err)
					it.Stop()
					break
				}
				// Missed heartbeats and the like: nats.go keeps pulling
				// and re-pulls after a reconnect.
				s.cfg.Logger.Debug("subscriber: pulling", "subscriber", s.cfg.Name, "error", err)
				continue
			}
			if ctx.Err() != nil {
				_ = msg.Nak() // fetched but not started: to the next instance at once
				continue
			}
			s.dispatch(msg, queues)
		}
		stop()
		if ctx.Err() == nil {
			sleep(ctx, time.Second)
			if c, err := s.setup(ctx); err == nil {
				cons = c
			}
		}
	}
}

// dispatch acks what no filter wants and queues the rest on the worker
// of its citizen.
func (s *Subscriber) dispatch(msg jetstream.Msg, queues []chan item) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term() // not a JetStream message: cannot happen on a pull consumer
		return
	}
	s.backlog.delivered(meta)
	if !s.filters.match(msg.Subject()) {
		_ = msg.Ack()
		s.count("skipped")
		return
	}
	seq := meta.Sequence.Stream
	s.mu.Lock()
	if _, dup := s.inflight[seq]; dup {
		// Redelivered while this process still holds it (a slow queue
		// or handler outlived AckWait): the held copy will be acked.
		s.mu.Unlock()
		return
	}
	s.inflight[seq] = msg
	s.mu.Unlock()
	w := 0
	if id := citizenOf(msg.Data()); id != nil {
		w = int(maphash.Bytes(s.seed, id) % uint64(len(queues)))
	}
	queues[w] <- item{msg: msg, meta: meta}
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

func (s *Subscriber) release(seq uint64) {
	s.mu.Lock()
	delete(s.inflight, seq)
	s.mu.Unlock()
}

// touchInflight tells the server that held messages are still being
// worked on, so waiting in a queue or a retry does not cause redelivery.
func (s *Subscriber) touchInflight() {
	s.mu.Lock()
	msgs := make([]jetstream.Msg, 0, len(s.inflight))
	for _, m := range s.inflight {
		msgs = append(msgs, m)
	}
	s.mu.Unlock()
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// handle runs one message through the handler, with retries in place.
func (s *Subscriber) handle(ctx context.Context, it item) {
	msg, seq := it.msg, it.meta.Sequence.Stream
	defer s.release(seq)
	if s.stopping.Load() {
		_ = msg.Nak()
		return
	}
	d := &Delivery{Subject: msg.Subject(), StreamSequence: seq, Attempt: int(it.meta.NumDelivered)}
	if err := schemas.DecodeNotification(msg.Data(), &d.Notification); err != nil {
		s.deadLetter(ctx, msg, d, fmt.Errorf("decoding notification: %w", err))
		return
	}
	if v, ok := s.snapshot[d.CitizenID]; ok && d.Version <= v {
		_ = msg.Ack() // already in the snapshot the subscriber started from
		s.count("skipped")
		return
	}
	if d.Attempt > s.cfg.MaxAttempts {
		// Delivered again and again without an ack: its handling kills
		// the process, or never finishes within AckWait.
		s.deadLetter(ctx, msg, d, fmt.Errorf("delivered %d times without an ack", d.Attempt))
		return
	}
	ctx = s.cfg.Propagator.Extract(ctx, headerCarrier(msg.Headers()))
	ctx, span := s.tracer.Start(ctx, s.spanName, trace.WithSpanKind(trace.SpanKindConsumer))
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
	for {
		if d.Attempt > 1 {
			span.SetAttributes(attribute.Int("pophub.attempt", d.Attempt))
		}
		err := s.cfg.Handler(ctx, d)
		if err == nil {
			if err := msg.Ack(); err != nil {
				s.cfg.Logger.Warn("subscriber: acking", "subscriber", s.cfg.Name, "seq", seq, "error", err)
			}
			s.count("handled")
			return
		}
		span.RecordError(err)
		if d.Attempt >= s.cfg.MaxAttempts {
			span.SetStatus(codes.Error, "dead-lettered")
			s.deadLetter(ctx, msg, d, err)
			return
		}
		s.count("retried")
		delay := s.cfg.Backoff[min(d.Attempt, len(s.cfg.Backoff))-1]
		s.cfg.Logger.Warn("subscriber: handler failed, retrying", "subscriber", s.cfg.Name, "seq", seq,
			"attempt", d.Attempt, "delay", delay, "error", err)
		select {
		case <-time.After(delay):
		case <-s.stopped:
			// Shutting down: let the server redeliver it after the delay.
			_ = msg.NakWithDelay(delay)
			return
		}
		d.Attempt++
	}
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
