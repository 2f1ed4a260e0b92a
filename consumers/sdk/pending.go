package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// pendingRefresh is how often the durable consumer's info is fetched for
// the pending gauges, off the message path.
const pendingRefresh = 5 * time.Second

// backlog is the subscriber's lag as the gauges pophub_sdk_pending (stream
// messages matching the filter not yet delivered to this durable) and
// pophub_sdk_ack_pending (delivered and not yet acknowledged) report it,
// summed over the subscriber's consumers (one, or one per filter), and
// pophub_sdk_pending_timestamp_seconds, when they were last read from the
// server. Messages' metadata update pending for free; a refresh every
// pendingRefresh (the stream's info, then every consumer's) updates both,
// so they stay right when nothing is delivered.
//
// A backlog that cannot be read is unknown, not what it was: nothing is
// observed before the first refresh succeeded, nor after one failed until
// one succeeds again; the timestamp then stops advancing. The first failed
// refresh already counts, with no grace, as for the hub's
// pophub_consumer_lag: a request refused, or unanswered for
// pendingRefresh, already means the subscriber cannot see its position,
// and a frozen value reads as a healthy subscriber while the server may
// hold thousands of notifications back from it. Alerts that want a grace
// take it from the timestamp.
type backlog struct {
	durables []durableBacklog // by consumer index
	// known is set while the last refresh succeeded; refreshed is when a
	// refresh last succeeded, in Unix milliseconds (0 before the first).
	known     atomic.Bool
	refreshed atomic.Int64
	// failingSince is when the refreshes started failing (zero while they
	// succeed); only the goroutine of watchBacklog uses it.
	failingSince time.Time
	reg          metric.Registration
}

// durableBacklog is one consumer's share of the backlog.
type durableBacklog struct {
	pending, ackPending atomic.Int64
}

// sum adds up every consumer's values.
func (b *backlog) sum() (pending, ackPending int64) {
	for i := range b.durables {
		pending += b.durables[i].pending.Load()
		ackPending += b.durables[i].ackPending.Load()
	}
	return pending, ackPending
}

// register creates the observable gauges over consumers consumers,
// labelled with the subscriber's name.
func (b *backlog) register(m metric.Meter, name string, consumers int) error {
	b.durables = make([]durableBacklog, consumers)
	pending, err := m.Int64ObservableGauge("pophub.sdk.pending", metric.WithUnit("{notification}"),
		metric.WithDescription("Notifications matching the subscriber's filter that its durable consumer has not delivered yet; absent while they cannot be read from the server."))
	if err != nil {
		return fmt.Errorf("creating pending gauge: %w", err)
	}
	ackPending, err := m.Int64ObservableGauge("pophub.sdk.ack_pending", metric.WithUnit("{notification}"),
		metric.WithDescription("Notifications delivered to the subscriber and not yet acknowledged; absent while they cannot be read from the server."))
	if err != nil {
		return fmt.Errorf("creating ack-pending gauge: %w", err)
	}
	refreshed, err := m.Float64ObservableGauge("pophub.sdk.pending.timestamp", metric.WithUnit("s"),
		metric.WithDescription("When the subscriber last read its pending counts from the server, in seconds since the Unix epoch; it stops advancing while that fails."))
	if err != nil {
		return fmt.Errorf("creating pending timestamp gauge: %w", err)
	}
	attrs := metric.WithAttributeSet(attribute.NewSet(attribute.String("subscriber", name)))
	b.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		// known before refreshed: recordRefresh stores them the other way
		// round, so counts reported as known never come with the
		// timestamp of an earlier refresh than the one that made them so.
		known := b.known.Load()
		if ms := b.refreshed.Load(); ms != 0 {
			o.ObserveFloat64(refreshed, float64(ms)/1000, attrs)
		}
		if !known {
			return nil
		}
		p, a := b.sum()
		o.ObserveInt64(pending, p, attrs)
		o.ObserveInt64(ackPending, a, attrs)
		return nil
	}, pending, ackPending, refreshed)
	if err != nil {
		return fmt.Errorf("registering pending gauges: %w", err)
	}
	return nil
}

// delivered updates consumer d's pending from a message's metadata.
func (b *backlog) delivered(d int, meta *jetstream.MsgMetadata) {
	b.durables[d].pending.Store(int64(meta.NumPending))
}

// watchBacklog refreshes the values from the consumers' info until ctx
// ends, and with them what the subscriber knows of each consumer's
// position: where a lost one is created again, and whether the stream
// deleted messages before the consumer took them (see durable.advance).
func (s *Subscriber) watchBacklog(ctx context.Context) {
	tick := time.NewTicker(pendingRefresh)
	defer tick.Stop()
	for {
		s.refreshBacklog(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refreshBacklog reads the stream's info, then each consumer's, and
// records the outcome (see backlog). It succeeds only when it read all of
// them; what ctx's end cut short is not recorded.
func (s *Subscriber) refreshBacklog(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, pendingRefresh)
	si, serr := s.streamInfo(sctx) // nil, without an error, when the user may not read it
	cancel()
	var errs []error
	if serr != nil {
		errs = append(errs, serr)
	}
	for i, d := range s.durables {
		cons := d.consumer()
		if cons == nil { // cannot happen: Run watches after setup bound them all
			errs = append(errs, fmt.Errorf("consumer %s not bound", d.name))
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, pendingRefresh)
		info, err := cons.Info(ictx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("reading consumer %s info: %w", d.name, err))
			continue
		}
		s.backlog.durables[i].pending.Store(int64(info.NumPending))
		s.backlog.durables[i].ackPending.Store(int64(info.NumAckPending))
		if serr == nil {
			s.observe(d, cons, si, info)
			s.savePosition(ctx, d)
		}
	}
	if ctx.Err() != nil {
		return
	}
	s.recordRefresh(errors.Join(errs...), time.Now())
}

// recordRefresh records the outcome of a refresh at now: without err the
// values are known and the timestamp advances; with err they are unknown
// until a refresh succeeds. The first failure after a success (or before
// the first) is logged at WARN with its error, the next ones only at
// DEBUG, and the recovery at INFO.
func (s *Subscriber) recordRefresh(err error, now time.Time) {
	b := &s.backlog
	if err != nil {
		b.known.Store(false)
		if b.failingSince.IsZero() {
			b.failingSince = now
			args := []any{"subscriber", s.cfg.Name, "error", err}
			if ms := b.refreshed.Load(); ms != 0 {
				args = append(args, "last_refreshed", time.UnixMilli(ms))
			}
			s.cfg.Logger.Warn("subscriber: reading the backlog from the server is failing; the pending gauges are not reported until it succeeds", args...)
			return
		}
		s.cfg.Logger.Debug("subscriber: reading the backlog from the server", "subscriber", s.cfg.Name, "error", err)
		return
	}
	b.refreshed.Store(now.UnixMilli()) // before known: see register
	b.known.Store(true)
	if !b.failingSince.IsZero() {
		s.cfg.Logger.Info("subscriber: reading the backlog from the server again", "subscriber", s.cfg.Name,
			"failed_for", now.Sub(b.failingSince).Round(time.Millisecond))
		b.failingSince = time.Time{}
	}
}

// observe records the info ci of consumer cons, read after the stream's
// info si (nil when the user may not read it), while Run runs, reports a gap it shows, and drops the bootstrap
// snapshot once the consumer is past it. Info about a consumer d no
// longer reads, or about another stream than d's, is dropped: setup is
// replacing the consumer.
func (s *Subscriber) observe(d *durable, cons jetstream.Consumer, si *jetstream.StreamInfo, ci *jetstream.ConsumerInfo) {
	d.mu.Lock()
	if d.cons != cons || si != nil && !si.Created.Equal(d.streamCreated) {
		d.mu.Unlock()
		return
	}
	// What the consumer delivered is acked, or held by this process,
	// which handles it even if the stream deletes it meanwhile.
	from, to := d.advance(si, ci, ci.Delivered.Stream)
	d.mu.Unlock()
	s.reportGap(d, from, to)
	s.releaseSnapshot(d, si, ci)
}

// savePosition saves where consumer d has got to in Config.Positions,
// when that changed since the last save. A failure is logged at WARN,
// once until a save succeeds again: the position is saved again on the
// next backlog read, and until then a consumer lost while the
// subscriber is stopped resumes from an earlier one.
func (s *Subscriber) savePosition(ctx context.Context, d *durable) {
	if s.cfg.Positions == nil {
		return
	}
	d.mu.Lock()
	p := Position{Stream: d.streamCreated, AckFloor: d.ackFloor, Filter: d.filter}
	unchanged := d.hasSaved && p.Stream.Equal(d.saved.Stream) && p.AckFloor == d.saved.AckFloor && p.Filter == d.saved.Filter
	d.mu.Unlock()
	if unchanged {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, pendingRefresh)
	err := s.cfg.Positions.Save(sctx, d.name, p)
	cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if !d.saveFailing && ctx.Err() == nil {
			s.cfg.Logger.Warn("subscriber: saving the consumer's position failed; a consumer lost while the subscriber is stopped would resume from an earlier one",
				"subscriber", s.cfg.Name, "consumer", d.name, "ack_floor", p.AckFloor, "error", err)
		}
		d.saveFailing = ctx.Err() == nil
		return
	}
	if d.saveFailing {
		s.cfg.Logger.Info("subscriber: saving the consumer's position again", "subscriber", s.cfg.Name, "consumer", d.name, "ack_floor", p.AckFloor)
	}
	d.saveFailing, d.saved, d.hasSaved = false, p, true
}
