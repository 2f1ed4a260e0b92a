package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// setup makes sure the dead-letter stream and the durable consumer exist,
// bootstrapping a new consumer when configured, retrying transient
// failures (server down, stream not yet created by the hub) until ctx ends.
func (s *Subscriber) setup(ctx context.Context) (jetstream.Consumer, error) {
	delay := 250 * time.Millisecond
	for {
		cons, err := s.trySetup(ctx)
		if err == nil {
			return cons, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code == 400 {
			return nil, err // the server rejects the configuration itself
		}
		s.cfg.Logger.Warn("subscriber: setting up, retrying", "subscriber", s.cfg.Name, "error", err, "delay", delay)
		sleep(ctx, delay)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func (s *Subscriber) trySetup(ctx context.Context) (jetstream.Consumer, error) {
	if err := s.ensureDeadLetterStream(ctx); err != nil {
		return nil, err
	}
	cons, err := s.js.Consumer(ctx, s.cfg.Stream, s.cfg.Name)
	switch {
	case err == nil:
		info := cons.CachedInfo()
		if info.Config.FilterSubject != s.filters.cover {
			return nil, fmt.Errorf("durable consumer %s filters %q, the configuration %q: delete it or use another name",
				s.cfg.Name, info.Config.FilterSubject, s.filters.cover)
		}
		if info.Config.AckWait != s.cfg.AckWait {
			cc := info.Config
			cc.AckWait = s.cfg.AckWait
			if cons, err = s.js.UpdateConsumer(ctx, s.cfg.Stream, cc); err != nil {
				return nil, fmt.Errorf("updating consumer %s: %w", s.cfg.Name, err)
			}
		}
		return cons, nil // an existing consumer keeps its position
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("looking up consumer %s: %w", s.cfg.Name, err)
	}

	cc := jetstream.ConsumerConfig{
		Durable:       s.cfg.Name,
		Description:   "pophub subscriber " + s.cfg.Name,
		FilterSubject: s.filters.cover,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		// The SDK counts attempts and dead-letters itself; the server
		// must never silently give up on a message.
		MaxDeliver:    -1,
		MaxAckPending: max(1000, 4*s.cfg.FetchBatch),
	}
	if s.cfg.Bootstrap != nil {
		seq, err := s.bootstrap(ctx)
		if err != nil {
			return nil, err
		}
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
	} else {
		switch s.cfg.Start.Policy {
		case StartNew:
			cc.DeliverPolicy = jetstream.DeliverNewPolicy
		case StartAll:
			cc.DeliverPolicy = jetstream.DeliverAllPolicy
		case StartTime:
			t := s.cfg.Start.Time
			cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
		case StartSequence:
			cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.cfg.Start.Sequence
		}
	}
	cons, err = s.js.CreateConsumer(ctx, s.cfg.Stream, cc)
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s: %w", s.cfg.Name, err)
	}
	s.cfg.Logger.Info("subscriber: created durable consumer", "subscriber", s.cfg.Name, "filter", cc.FilterSubject,
		"deliver", cc.DeliverPolicy.String(), "start_seq", cc.OptStartSeq)
	return cons, nil
}
