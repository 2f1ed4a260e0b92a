package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas/citizenid"
)

// setup makes sure the dead-letter stream and the durable consumers exist,
// bootstrapping new consumers when configured, retrying transient
// failures (server down, stream not yet created by the hub) until ctx
// ends. It returns the consumers by index (s.durables[i]).
func (s *Subscriber) setup(ctx context.Context) ([]jetstream.Consumer, error) {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	delay := 250 * time.Millisecond
	for {
		conss, err := s.trySetup(ctx)
		if err == nil {
			return conss, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code == 400 {
			return nil, err // the server rejects the configuration itself
		}
		if errors.Is(err, ErrBootstrapRefused) {
			return nil, err // the credentials or purpose are wrong
		}
		s.cfg.Logger.Warn("subscriber: setting up, retrying", "subscriber", s.cfg.Name, "error", err, "delay", delay)
		sleep(ctx, delay)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// trySetup binds every consumer that exists and creates the others, all
// from one start position: one bootstrap, or Config.Start.
func (s *Subscriber) trySetup(ctx context.Context) ([]jetstream.Consumer, error) {
	if err := s.ensureDeadLetterStream(ctx); err != nil {
		return nil, err
	}
	conss := make([]jetstream.Consumer, len(s.durables))
	var missing []int
	for i, d := range s.durables {
		cons, err := s.bind(ctx, d)
		switch {
		case err == nil:
			conss[i] = cons // an existing consumer keeps its position
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			missing = append(missing, i)
		default:
			return nil, err
		}
	}
	if len(missing) == 0 {
		return conss, nil
	}

	cc := jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   s.cfg.AckWait,
		// The SDK counts attempts and dead-letters itself; the server
		// must never silently give up on a message.
		MaxDeliver:    -1,
		MaxAckPending: max(1000, 4*s.cfg.FetchBatch),
	}
	var snapshot map[citizenid.ID]int64
	if s.cfg.Bootstrap != nil {
		seq, versions, err := s.bootstrap(ctx)
		if err != nil {
			return nil, err
		}
		snapshot = versions
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
	for _, i := range missing {
		d := s.durables[i]
		c := cc
		c.Durable, c.FilterSubject = d.name, d.filter
		c.Description = "pophub subscriber " + s.cfg.Name
		if d.name != s.cfg.Name {
			c.Description += ", filter " + d.filter
		}
		cons, err := s.js.CreateConsumer(ctx, s.cfg.Stream, c)
		if err != nil {
			return nil, fmt.Errorf("creating consumer %s: %w", d.name, err)
		}
		if snapshot != nil {
			d.snapshot.Store(&snapshot)
		}
		conss[i] = cons
		s.cfg.Logger.Info("subscriber: created durable consumer", "subscriber", s.cfg.Name, "consumer", d.name, "filter", c.FilterSubject,
			"deliver", c.DeliverPolicy.String(), "start_seq", c.OptStartSeq)
	}
	return conss, nil
}

// bind looks up an existing durable consumer, checks that it filters
// what the configuration says, and brings its AckWait in line. It returns
// an error wrapping jetstream.ErrConsumerNotFound when there is none.
func (s *Subscriber) bind(ctx context.Context, d *durable) (jetstream.Consumer, error) {
	cons, err := s.js.Consumer(ctx, s.cfg.Stream, d.name)
	if err != nil {
		return nil, fmt.Errorf("looking up consumer %s: %w", d.name, err)
	}
	info := cons.CachedInfo()
	if info.Config.FilterSubject != d.filter {
		return nil, fmt.Errorf("durable consumer %s filters %q, the configuration %q: delete it or use another name",
			d.name, info.Config.FilterSubject, d.filter)
	}
	if info.Config.AckWait != s.cfg.AckWait {
		cc := info.Config
		cc.AckWait = s.cfg.AckWait
		if cons, err = s.js.UpdateConsumer(ctx, s.cfg.Stream, cc); err != nil {
			return nil, fmt.Errorf("updating consumer %s: %w", d.name, err)
		}
	}
	return cons, nil
}
