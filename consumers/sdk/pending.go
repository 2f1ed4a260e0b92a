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
// ends; conss are by consumer index.
func (s *Subscriber) watchBacklog(ctx context.Context, conss []jetstream.Consumer) {
	tick := time.NewTicker(pendingRefresh)
	defer tick.Stop()
	for {
		for i, cons := range conss {
			ictx, cancel := context.WithTimeout(ctx, pendingRefresh)
			info, err := cons.Info(ictx)
			cancel()
			switch {
			case err == nil:
				s.backlog.durables[i].pending.Store(int64(info.NumPending))
				s.backlog.durables[i].ackPending.Store(int64(info.NumAckPending))
				s.backlog.known.Store(true)
			case ctx.Err() == nil:
				s.cfg.Logger.Debug("subscriber: reading consumer info", "subscriber", s.cfg.Name, "consumer", s.durables[i].name, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
