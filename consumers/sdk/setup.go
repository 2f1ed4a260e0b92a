package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
			s.setHealth(nil)
			return conss, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if permanent(err) {
			s.setHealth(fmt.Errorf("setting up failed: %w", err))
			return nil, err
		}
		s.setHealth(fmt.Errorf("setting up, retrying: %w", err))
		s.cfg.Logger.Warn("subscriber: setting up, retrying", "subscriber", s.cfg.Name, "error", err, "delay", delay)
		sleep(ctx, delay)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// permanent reports whether a setup failure is one that retrying cannot
// mend.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 400 || // the server rejects the configuration itself
		errors.Is(err, ErrBootstrapRefused) || // the credentials or purpose are wrong
		errors.Is(err, ErrFilterChanged) // the consumer must be deleted or renamed first
}

// trySetup binds every consumer that exists and creates the others: one
// this process bound before and lost where it left off (see recreate),
// the rest from one start position: one bootstrap, or Config.Start.
func (s *Subscriber) trySetup(ctx context.Context) ([]jetstream.Consumer, error) {
	if err := s.ensureDeadLetterStream(ctx); err != nil {
		return nil, err
	}
	// The stream's info before the consumers': its sequences are then at
	// most those the consumers' info reflects (see durable.advance). Nil
	// when the user may not read it.
	si, err := s.streamInfo(ctx)
	if err != nil {
		return nil, err
	}
	// Before creating anything: a per-filter consumer left from other
	// filters is no consumer bind looks up.
	if err := s.checkLeftoverConsumers(ctx); err != nil {
		return nil, err
	}
	conss := make([]jetstream.Consumer, len(s.durables))
	var missing []int
	for i, d := range s.durables {
		cons, err := s.bind(ctx, d)
		switch {
		case err == nil:
			conss[i] = cons // an existing consumer keeps its position
			s.adopt(d, cons, si, 0)
		case errors.Is(err, jetstream.ErrConsumerNotFound) && d.consumer() != nil:
			if conss[i], err = s.recreate(ctx, d, si); err != nil {
				return nil, err
			}
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			saved, err := s.loadPosition(ctx, d)
			if err != nil {
				return nil, err
			}
			if !saved {
				missing = append(missing, i)
				break
			}
			if conss[i], err = s.recreate(ctx, d, si); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
	}
	if len(missing) == 0 {
		return conss, nil
	}

	var cc jetstream.ConsumerConfig
	var snap *snapshot
	if s.cfg.Bootstrap != nil {
		seq, versions, err := s.bootstrap(ctx)
		if err != nil {
			return nil, err
		}
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
		// The walk may have taken longer than the stream keeps messages.
		if si, err = s.streamInfo(ctx); err != nil {
			return nil, err
		}
		// What the hub published after this read is newer than the walk.
		snap = &snapshot{versions: versions}
		if si != nil {
			snap.through, snap.stream = si.State.LastSeq, si.Created
		}
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
		c := s.consumerConfig(d)
		c.DeliverPolicy, c.OptStartSeq, c.OptStartTime = cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime
		cons, err := s.js.CreateConsumer(ctx, s.cfg.Stream, c)
		if err != nil {
			return nil, fmt.Errorf("creating consumer %s: %w", d.name, err)
		}
		if snap != nil {
			d.snapshot.Store(snap)
		}
		conss[i] = cons
		s.cfg.Logger.Info("subscriber: created durable consumer", "subscriber", s.cfg.Name, "consumer", d.name, "filter", c.FilterSubject,
			"deliver", c.DeliverPolicy.String(), "start_seq", c.OptStartSeq)
		s.adopt(d, cons, si, c.OptStartSeq)
	}
	return conss, nil
}

// consumerConfig is the configuration of d's consumer, without its start.
func (s *Subscriber) consumerConfig(d *durable) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{
		Durable:       d.name,
		FilterSubject: d.filter,
		Description:   "pophub subscriber " + s.cfg.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		// The SDK counts attempts and dead-letters itself; the server
		// must never silently give up on a message.
		MaxDeliver:    -1,
		MaxAckPending: s.maxAckPending(),
	}
	if d.name != s.cfg.Name {
		c.Description += ", filter " + d.filter
	}
	return c
}

// maxAckPending is the MaxAckPending of the consumers the SDK creates:
// how many messages the server lets one of them hold unacked, which
// bounds what the subscriber holds (see queueLimit).
func (s *Subscriber) maxAckPending() int { return max(1000, 4*s.cfg.FetchBatch) }

// streamInfo reads the notification stream's info, or returns nil when
// the user may not read it: the hub's access policy grants subscribers no
// $JS.API.STREAM.INFO, which would tell them how many messages every
// subject of the stream holds (with a subjects_filter), every region's.
// Without it the SDK goes on from its consumers' info alone: it does not
// notice messages the stream deleted before a consumer took them (see
// durable.advance), nor a stream created again (see recreate), and drops
// a bootstrap snapshot only once a consumer was caught up (see
// releaseSnapshot). The refusal is logged once and not asked again.
func (s *Subscriber) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	if s.streamInfoRefused.Load() {
		return nil, nil
	}
	si, err := s.readStreamInfo(ctx, s.cfg.Stream)
	if errors.Is(err, errRefused) {
		if !s.streamInfoRefused.Swap(true) {
			s.cfg.Logger.Info("subscriber: may not read the stream's info; going on from the consumers' info, without noticing messages the stream deletes before they are taken",
				"subscriber", s.cfg.Name, "stream", s.cfg.Stream, "error", err)
		}
		return nil, nil
	}
	return si, err
}

// streamInfoResponse is $JS.API.STREAM.INFO's answer.
type streamInfoResponse struct {
	Error *jetstream.APIError `json:"error,omitempty"`
	jetstream.StreamInfo
}

// readStreamInfo reads a stream's info with its own request rather than
// through jetstream.JetStream.Stream, to tell a refusal at once (see
// apiRequest): it returns an error wrapping errRefused then, and one
// wrapping jetstream.ErrStreamNotFound when there is no such stream.
func (s *Subscriber) readStreamInfo(ctx context.Context, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var resp streamInfoResponse
	if err := s.apiRequest(ctx, streamInfoSubject(stream), nil, &resp); err != nil {
		return nil, fmt.Errorf("looking up stream %s: %w", stream, err)
	}
	switch {
	case resp.Error == nil:
		return &resp.StreamInfo, nil
	case resp.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound:
		return nil, fmt.Errorf("looking up stream %s: %w", stream, jetstream.ErrStreamNotFound)
	}
	return nil, fmt.Errorf("looking up stream %s: %w", stream, resp.Error)
}

// streamInfoSubject is the JetStream API subject of a stream's info.
func streamInfoSubject(stream string) string { return "$JS.API.STREAM.INFO." + stream }

// loadPosition takes consumer d's position from Config.Positions, when
// one was saved, as where d left off (see recreate); saved reports
// whether one was.
func (s *Subscriber) loadPosition(ctx context.Context, d *durable) (saved bool, err error) {
	if s.cfg.Positions == nil {
		return false, nil
	}
	p, ok, err := s.cfg.Positions.Load(ctx, d.name)
	if err != nil {
		return false, fmt.Errorf("loading the saved position of consumer %s: %w", d.name, err)
	}
	if !ok {
		return false, nil
	}
	if p.Filter != d.filter {
		s.cfg.Logger.Warn("subscriber: the saved position is of a consumer with another filter; creating the consumer as a new one",
			"subscriber", s.cfg.Name, "consumer", d.name, "saved_filter", p.Filter, "filter", d.filter)
		return false, nil
	}
	d.mu.Lock()
	d.streamCreated, d.ackFloor, d.accounted, d.saved, d.hasSaved = p.Stream, p.AckFloor, p.AckFloor, p, true
	d.mu.Unlock()
	return true, nil
}

// recreate creates again a consumer this process had bound, or whose
// position was saved, and that is gone (deleted by mistake, or lost with
// the stream, which the hub's relay creates again), where it left off
// rather than at
// Config.Start or from a new bootstrap: after the last message the server
// reported acked, when the stream is the one the consumer was on, or from
// the first message of a stream created since. What was acked after that
// report comes again, which the idempotent Handler absorbs. Without the
// stream's info (si nil) the stream is taken for the same one: a stream
// created again, shorter than where the consumer was, then delivers only
// from that sequence on.
func (s *Subscriber) recreate(ctx context.Context, d *durable, si *jetstream.StreamInfo) (jetstream.Consumer, error) {
	c := s.consumerConfig(d)
	d.mu.Lock()
	sameStream, floor := si == nil || si.Created.Equal(d.streamCreated), d.ackFloor
	d.mu.Unlock()
	if sameStream {
		c.DeliverPolicy, c.OptStartSeq = jetstream.DeliverByStartSequencePolicy, floor+1
	} else {
		c.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := s.js.CreateConsumer(ctx, s.cfg.Stream, c)
	if err != nil {
		return nil, fmt.Errorf("creating lost consumer %s again: %w", d.name, err)
	}
	s.recreated.Add(ctx, 1, s.attrs...)
	s.cfg.Logger.Error("subscriber: the durable consumer was gone; created it again where the subscriber left off",
		"subscriber", s.cfg.Name, "consumer", d.name, "same_stream", sameStream, "deliver", c.DeliverPolicy.String(), "start_seq", c.OptStartSeq)
	s.adopt(d, cons, si, c.OptStartSeq)
	return cons, nil
}

// adopt makes cons, on the stream si describes (nil: not known), the
// consumer d reads, and
// reports a gap its position shows. start is the stream sequence a
// consumer just created was asked to start at (0: none), which the server
// moves up to the stream's first sequence when the messages before it
// are gone.
func (s *Subscriber) adopt(d *durable, cons jetstream.Consumer, si *jetstream.StreamInfo, start uint64) {
	ci := cons.CachedInfo()
	d.mu.Lock()
	if si != nil && !si.Created.Equal(d.streamCreated) {
		d.streamCreated, d.ackFloor, d.accounted = si.Created, 0, 0
	}
	d.cons = cons
	// Only what was acked counts: what was delivered and not acked may
	// have gone to an earlier instance, and comes again unless it is gone
	// (what this process holds, it accounted for already).
	reached := min(ci.AckFloor.Stream, ci.Delivered.Stream)
	if start > 0 {
		reached = start - 1
	}
	from, to := d.advance(si, ci, reached)
	d.mu.Unlock()
	s.reportGap(d, from, to)
	s.releaseSnapshot(d, si, ci)
}

// reportGap logs and counts stream sequences [from, to] that the stream
// deleted before consumer d took them; to 0 reports nothing.
func (s *Subscriber) reportGap(d *durable, from, to uint64) {
	if to == 0 {
		return
	}
	s.gaps.Add(context.Background(), 1, s.attrs...)
	s.cfg.Logger.Error("subscriber: the stream deleted messages before this subscriber took them; the notifications among them that match its filter are lost to it",
		"subscriber", s.cfg.Name, "consumer", d.name, "filter", d.filter, "first_seq", from, "last_seq", to,
		"recovery", "stop the subscriber, delete its durable consumers and its saved positions, and start it with a bootstrap to start over from a snapshot")
}

// bind looks up an existing durable consumer, checks that it filters
// what the configuration says, and brings its AckWait in line. It returns
// an error wrapping jetstream.ErrConsumerNotFound when there is none, and
// one wrapping ErrFilterChanged when it filters something else.
//
// The consumer an older SDK made for the same configuration
// (d.legacyName filtering d.legacyFilter, the same messages) is taken
// as d's, where it left off: under d's name when it is the single
// consumer, or under its own when d's per-filter consumer does not exist.
func (s *Subscriber) bind(ctx context.Context, d *durable) (jetstream.Consumer, error) {
	name := d.name
	cons, err := s.js.Consumer(ctx, s.cfg.Stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) && d.legacyName != "" && d.legacyName != name {
		if old, lerr := s.js.Consumer(ctx, s.cfg.Stream, d.legacyName); lerr == nil && old.CachedInfo().Config.FilterSubject == d.legacyFilter {
			cons, err, name = old, nil, d.legacyName
		}
	}
	if err != nil {
		if refused := s.refusedConsumerAPI(d.name, d.legacyName); refused != nil {
			// Under an access policy the server refuses the request and
			// the lookup only times out: name what the policy lacks.
			return nil, fmt.Errorf("looking up consumer %s: NATS refused it (%v): the access policy must let this subscriber's identity subscribe to %s: %w",
				d.name, refused, d.filter, err)
		}
		return nil, fmt.Errorf("looking up consumer %s: %w", d.name, err)
	}
	info := cons.CachedInfo()
	switch f := info.Config.FilterSubject; {
	case f == d.filter:
	case d.legacyName == name && f == d.legacyFilter:
		s.cfg.Logger.Info("subscriber: keeping the durable consumer an older SDK created for this configuration; its filter matches the same messages",
			"subscriber", s.cfg.Name, "consumer", name, "filter", f, "configured_filter", d.filter)
	default:
		return nil, fmt.Errorf("durable consumer %s filters %q, the configuration %q: delete it or use another name: %w",
			name, f, d.filter, ErrFilterChanged)
	}
	if info.Config.AckWait != s.cfg.AckWait {
		cc := info.Config
		cc.AckWait = s.cfg.AckWait
		if cons, err = s.js.UpdateConsumer(ctx, s.cfg.Stream, cc); err != nil {
			return nil, fmt.Errorf("updating consumer %s: %w", name, err)
		}
	}
	return cons, nil
}

// refusedConsumerAPI is the connection's last error when it is the server
// refusing a JetStream API request about one of the consumers named: a
// user whose permissions lack a consumer's filter may not ask for it, and
// the request then only times out.
func (s *Subscriber) refusedConsumerAPI(names ...string) error {
	last := s.nc.LastError()
	if !errors.Is(last, nats.ErrPermissionViolation) {
		return nil
	}
	for _, name := range names {
		if name != "" && strings.Contains(last.Error(), "$JS.API.CONSUMER.") && strings.Contains(last.Error(), "."+name+`"`) {
			return last
		}
	}
	return nil
}
