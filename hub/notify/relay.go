// Package notify publishes the hub's change notifications to NATS
// JetStream. Notifications are written to the store's outbox in the same
// transaction as the change; the relay here is the only publisher, so a
// notification leaves only after its change committed, and one that was
// committed but not yet published when the hub died leaves after the
// restart. Each message carries Nats-Msg-Id = change id, so a re-publish
// within the stream's duplicate window is dropped by JetStream.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
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
	Replicas int
	// MaxAge bounds retention (0: keep everything).
	MaxAge time.Duration
	// DuplicateWindow must cover the longest time a notification may be
	// re-published after its first publish (default 10 minutes).
	DuplicateWindow time.Duration
}

// EnsureStream creates the notification stream, or updates it to cfg.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) error {
	if cfg.Name == "" {
		cfg.Name = schemas.StreamName
	}
	if len(cfg.Subjects) == 0 {
		cfg.Subjects = []string{schemas.StreamSubjects}
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.DuplicateWindow == 0 {
		cfg.DuplicateWindow = 10 * time.Minute
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: "pophub golden-record change notifications",
		Subjects:    cfg.Subjects,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.DuplicateWindow,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("creating or updating stream %s: %w", cfg.Name, err)
	}
	return nil
}

// Outbox is the part of the store the relay reads and acknowledges.
type Outbox interface {
	PendingOutbox(ctx context.Context, after int64, limit int) ([]hub.OutboxEntry, error)
	MarkPublished(ctx context.Context, seqs []int64) error
}

// Config configures a Relay.
type Config struct {
	// BatchSize is the most entries published per round (default 2000).
	BatchSize int
	// PollInterval is how often an idle relay looks for entries that no
	// Wake announced, e.g. from another hub instance (default 100ms).
	PollInterval time.Duration
	// AckTimeout bounds the wait for JetStream's acknowledgements (default 10s).
	AckTimeout time.Duration

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

	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Meter == nil {
		c.Meter = metricnoop.NewMeterProvider().Meter("")
	}
	if c.Tracer == nil {
		c.Tracer = tracenoop.NewTracerProvider().Tracer("")
	}
}

// Relay moves outbox entries to JetStream.
type Relay struct {
	cfg       Config
	js        jetstream.JetStream
	outbox    Outbox
	wake      chan struct{}
	published metric.Int64Counter
	backlog   metric.Int64Gauge
	duration  metric.Float64Histogram
}

// New creates a relay publishing through js.
func New(cfg Config, js jetstream.JetStream, outbox Outbox) *Relay {
	cfg.setDefaults()
	r := &Relay{cfg: cfg, js: js, outbox: outbox, wake: make(chan struct{}, 1)}
	// Instrument creation only fails on invalid names, which these are not.
	r.published, _ = cfg.Meter.Int64Counter("pophub.notifications.published", metric.WithUnit("{notification}"),
		metric.WithDescription("Notifications acknowledged by JetStream."))
	r.backlog, _ = cfg.Meter.Int64Gauge("pophub.outbox.backlog", metric.WithUnit("{notification}"),
		metric.WithDescription("Outbox entries found waiting in the relay's last round (at most one batch)."))
	r.duration, _ = cfg.Meter.Float64Histogram("pophub.relay.publish.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to publish one round of outbox entries and record them as published."))
	return r
}

// Wake makes an idle relay look at the outbox now. It never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends. Errors (NATS down, store down) are retried
// with backoff: an outage delays notifications but never loses one.
func (r *Relay) Run(ctx context.Context) error {
	backoff := 50 * time.Millisecond
	for {
		n, err := r.round(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil:
			r.cfg.Logger.Warn("publishing notifications", "err", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		case n == r.cfg.BatchSize:
			backoff = 50 * time.Millisecond
			continue // more waiting
		}
		backoff = 50 * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		case <-time.After(r.cfg.PollInterval):
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// round publishes one batch of pending entries and marks the acknowledged
// ones. It reads the oldest pending entries every time, so an entry whose
// publish failed, or that another instance committed with a lower
// sequence number later, is picked up by a following round.
func (r *Relay) round(ctx context.Context) (int, error) {
	entries, err := r.outbox.PendingOutbox(ctx, 0, r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("reading outbox: %w", err)
	}
	r.backlog.Record(ctx, int64(len(entries)))
	if len(entries) == 0 {
		return 0, nil
	}
	start := time.Now()
	ctx, span := r.cfg.Tracer.Start(ctx, "outbox relay", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(entries)), attribute.String("messaging.system", "nats")))
	defer span.End()

	futures := make([]jetstream.PubAckFuture, len(entries))
	var pubErr error
	for i, e := range entries {
		msg := nats.NewMsg(e.Subject)
		msg.Data = e.Body
		for k, v := range e.Trace {
			msg.Header.Set(k, v)
		}
		f, err := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(e.MsgID))
		if err != nil {
			pubErr = fmt.Errorf("publishing %s: %w", e.Subject, err)
			break
		}
		futures[i] = f
	}
	timeout := time.NewTimer(r.cfg.AckTimeout)
	defer timeout.Stop()
	acked := make([]int64, 0, len(entries))
wait:
	for i, f := range futures {
		if f == nil {
			break
		}
		select {
		case <-f.Ok():
			acked = append(acked, entries[i].Seq)
		case err := <-f.Err():
			pubErr = errors.Join(pubErr, fmt.Errorf("publishing %s: %w", entries[i].Subject, err))
		case <-timeout.C:
			pubErr = errors.Join(pubErr, errors.New("timed out waiting for JetStream acknowledgements"))
			break wait
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if len(acked) > 0 {
		if err := r.outbox.MarkPublished(ctx, acked); err != nil {
			return 0, fmt.Errorf("recording published notifications: %w", err)
		}
		r.published.Add(ctx, int64(len(acked)))
	}
	r.duration.Record(ctx, time.Since(start).Seconds())
	if pubErr != nil {
		span.RecordError(pubErr)
		return len(acked), pubErr
	}
	return len(entries), nil
}
