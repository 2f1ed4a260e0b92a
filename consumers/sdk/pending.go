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
// pophub_sdk_ack_pending (delivered and not yet acknowledged) report it.
// Messages' metadata update pending for free; a consumer info request
// every pendingRefresh updates both, so they stay right when nothing is
// delivered. Nothing is observed before the first value is known.
type backlog struct {
	pending, ackPending atomic.Int64
	known               atomic.Bool
	reg                 metric.Registration
}

// register creates the observable gauges, labelled with the subscriber's
// name.
func (b *backlog) register(m metric.Meter, name string) error {
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
		o.ObserveInt64(pending, b.pending.Load(), attrs)
		o.ObserveInt64(ackPending, b.ackPending.Load(), attrs)
		return nil
	}, pending, ackPending)
	if err != nil {
		return fmt.Errorf("registering pending gauges: %w", err)
	}
	return nil
}

// delivered updates pending from a delivered message's metadata.
func (b *backlog) delivered(meta *jetstream.MsgMetadata) {
	b.pending.Store(int64(meta.NumPending))
}

// watch refreshes both values from the consumer's info until ctx ends.
func (s *Subscriber) watchBacklog(ctx context.Context, cons jetstream.Consumer) {
	tick := time.NewTicker(pendingRefresh)
	defer tick.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, pendingRefresh)
		info, err := cons.Info(ictx)
		cancel()
		switch {
		case err == nil:
			s.backlog.pending.Store(int64(info.NumPending))
			s.backlog.ackPending.Store(int64(info.NumAckPending))
			s.backlog.known.Store(true)
		case ctx.Err() == nil:
			s.cfg.Logger.Debug("subscriber: reading consumer info", "subscriber", s.cfg.Name, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
