package sdk

import (
	"context"
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
// summed over the subscriber's consumers (one, or one per filter).
// Messages' metadata update pending for free; a consumer info request
// every pendingRefresh updates both, so they stay right when nothing is
// delivered. Nothing is observed before the first value is known.
type backlog struct {
	durables []durableBacklog // by consumer index
	known    atomic.Bool
	reg      metric.Registration
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
		metric.WithDescription("Notifications matching the subscriber's filter that its durable consumer has not delivered yet."))
	if err != nil {
		return fmt.Errorf("creating pending gauge: %w", err)
	}
	ackPending, err := m.Int64ObservableGauge("pophub.sdk.ack_pending", metric.WithUnit("{notification}"),
		metric.WithDescription("Notifications delivered to the subscriber and not yet acknowledged."))
	if err != nil {
		return fmt.Errorf("creating ack-pending gauge: %w", err)
	}
	attrs := metric.WithAttributeSet(attribute.NewSet(attribute.String("subscriber", name)))
	b.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if !b.known.Load() {
			return nil
		}
		p, a := b.sum()
		o.ObserveInt64(pending, p, attrs)
		o.ObserveInt64(ackPending, a, attrs)
		return nil
	}, pending, ackPending)
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

// refreshBacklog reads the stream's info, then each consumer's.
func (s *Subscriber) refreshBacklog(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, pendingRefresh)
	si, err := s.streamInfo(sctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		s.cfg.Logger.Debug("subscriber: reading stream info", "subscriber", s.cfg.Name, "error", err)
	}
	for i, d := range s.durables {
		cons := d.consumer()
		if cons == nil {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, pendingRefresh)
		info, err := cons.Info(ictx)
		cancel()
		switch {
		case err == nil:
			s.backlog.durables[i].pending.Store(int64(info.NumPending))
			s.backlog.durables[i].ackPending.Store(int64(info.NumAckPending))
			s.backlog.known.Store(true)
			if si != nil {
				s.observe(d, cons, si, info)
			}
		case ctx.Err() == nil:
			s.cfg.Logger.Debug("subscriber: reading consumer info", "subscriber", s.cfg.Name, "consumer", d.name, "error", err)
		}
	}
}

// observe records the info ci of consumer cons, read after the stream's
// info si, while Run runs, and reports a gap it shows. Info about a
// consumer d no longer reads, or about another stream than d's, is
// dropped: setup is replacing the consumer.
func (s *Subscriber) observe(d *durable, cons jetstream.Consumer, si *jetstream.StreamInfo, ci *jetstream.ConsumerInfo) {
	d.mu.Lock()
	if d.cons != cons || !si.Created.Equal(d.streamCreated) {
		d.mu.Unlock()
		return
	}
	// What the consumer delivered is acked, or held by this process,
	// which handles it even if the stream deletes it meanwhile.
	from, to := d.advance(si, ci, ci.Delivered.Stream)
	d.mu.Unlock()
	s.reportGap(d, from, to)
}
