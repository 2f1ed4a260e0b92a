package sdk

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Dead-letter headers. A dead letter carries the notification's body and
// headers (traceparent included) unchanged, plus these.
const (
	// HeaderError says why: the handler's last error when it failed
	// Config.MaxAttempts times, "delivered N times without an ack, more
	// than MaxDeliveries (M)" when the crash-loop bound was hit, or
	// "decoding notification: …".
	HeaderError = "Pophub-Error"
	// HeaderAttempts is the handler's failed attempts (1 for a body that
	// does not decode), or the server's deliveries when
	// Config.MaxDeliveries was exceeded.
	HeaderAttempts       = "Pophub-Attempts"
	HeaderSubject        = "Pophub-Subject"         // the original subject
	HeaderStreamSequence = "Pophub-Stream-Sequence" // the original stream sequence
	HeaderSubscriber     = "Pophub-Subscriber"      // the subscriber's name
)

// DeadLetterSubject is where the subscriber's dead letters go:
// <prefix>.<name>, "popdlq.<name>" by default. The prefix is deliberately
// not "pop": the hub's stream captures "pop.>", and a dead letter there
// would come back as a notification.
func (s *Subscriber) DeadLetterSubject() string { return s.cfg.DeadLetterPrefix + "." + s.cfg.Name }

// ensureDeadLetterStream creates a stream for <prefix>.> unless one
// already captures the subscriber's dead-letter subject (an operator's,
// with its own retention, is left as it is). The stream it creates has no
// limits: a dead letter waits there until its cause is fixed and an
// operator replays or deletes it, however long that takes, as the hub's
// Kafka DLQ keeps rejected records.
func (s *Subscriber) ensureDeadLetterStream(ctx context.Context) error {
	if _, err := s.js.StreamNameBySubject(ctx, s.DeadLetterSubject()); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("looking up the dead-letter stream: %w", err)
	}
	_, err := s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        s.cfg.DeadLetterStream,
		Description: "pophub subscribers' dead letters",
		Subjects:    []string{s.cfg.DeadLetterPrefix + ".>"},
		Storage:     jetstream.FileStorage,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("creating the dead-letter stream %s: %w", s.cfg.DeadLetterStream, err)
	}
	return nil
}

// warnIfDeadLettersExpire logs a warning when the stream holding the
// subscriber's dead letters deletes messages at a limit (age, count,
// size): a dead letter deleted before anyone looked at it is a
// notification lost without a trace. The stream may be an operator's, or
// one created by an earlier version with a 90-day limit, so it is
// reported, not changed. A subscriber that may not read the stream's
// info logs that at debug level: the hub's access policy grants none, as
// the dead-letter stream's info would tell other subscribers' names and
// how many dead letters each has.
func (s *Subscriber) warnIfDeadLettersExpire(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	name, err := s.js.StreamNameBySubject(ctx, s.DeadLetterSubject())
	var si *jetstream.StreamInfo
	if err == nil {
		si, err = s.readStreamInfo(ctx, name)
	}
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.cfg.Logger.Debug("subscriber: checking that the dead-letter stream keeps dead letters", "subscriber", s.cfg.Name, "error", err)
		}
		return
	}
	c := si.Config
	if c.MaxAge <= 0 && c.MaxMsgs <= 0 && c.MaxBytes <= 0 && c.MaxMsgsPerSubject <= 0 {
		return
	}
	args := []any{"subscriber", s.cfg.Name, "stream", name}
	if c.MaxAge > 0 {
		args = append(args, "max_age", c.MaxAge.String())
	}
	if c.MaxMsgs > 0 {
		args = append(args, "max_msgs", c.MaxMsgs)
	}
	if c.MaxBytes > 0 {
		args = append(args, "max_bytes", c.MaxBytes)
	}
	if c.MaxMsgsPerSubject > 0 {
		args = append(args, "max_msgs_per_subject", c.MaxMsgsPerSubject)
	}
	s.cfg.Logger.Warn("subscriber: the dead-letter stream deletes dead letters at a limit, looked at or not; "+
		"remove its limits to keep them until an operator deletes them", args...)
}

// deadLetterID is a dead letter's Nats-Msg-Id,
// "<name>:<instance>:<stream sequence>:<notification id>": the same for a
// dead letter published again by this Subscriber (after a publish whose
// acknowledgement was lost, or by another filter's consumer of a
// ConsumerPerFilter subscriber), which the dead-letter stream then drops
// as a duplicate, and different for any other notification. The stream
// sequence alone is not enough: it starts again at 1 when the hub
// re-creates its stream, and a later notification rejected at a sequence
// used before would be dropped within the dead-letter stream's duplicate
// window, then terminated: neither handled nor kept. The notification's
// id is its Nats-Msg-Id, the change_id the hub sets, or for a message
// without one the SHA-256 of its body (first 16 hex digits).
//
// instance is random, drawn when the Subscriber is made: every identity
// shares the dead-letter stream and its one duplicate window, and an id
// made only of what the notification shows could be published first, on
// its own dead-letter subject, by any identity that receives the same
// notifications, so that this subscriber's dead letter were dropped as a
// duplicate and lost. The price is that a dead letter published again
// after a restart (a crash between publishing and terminating it) is
// stored twice, with the same Pophub-Stream-Sequence and notification id.
func deadLetterID(name, instance string, seq uint64, h nats.Header, body []byte) string {
	notification := h.Get(nats.MsgIdHdr)
	if notification == "" {
		sum := sha256.Sum256(body)
		notification = hex.EncodeToString(sum[:8])
	}
	return name + ":" + instance + ":" + strconv.FormatUint(seq, 10) + ":" + notification
}

// newInstanceID returns the random instance part of dead-letter ids: 16
// hex digits, as unguessable as the identity's other secrets need it.
func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// deadLetter publishes the message to the dead-letter subject with the
// error and attempts attached (see HeaderError and HeaderAttempts), then
// terminates it on the consumer, and reports true. If the publish fails,
// the message is nakked with the longest backoff and comes back, and it
// reports false.
func (s *Subscriber) deadLetter(ctx context.Context, msg jetstream.Msg, d *Delivery, attempts int, cause error) bool {
	dl := nats.NewMsg(s.DeadLetterSubject())
	dl.Data = msg.Data()
	for k, v := range msg.Headers() {
		if k == nats.MsgIdHdr {
			continue
		}
		dl.Header[k] = v
	}
	dl.Header.Set(HeaderError, cause.Error())
	dl.Header.Set(HeaderAttempts, strconv.Itoa(attempts))
	dl.Header.Set(HeaderSubject, msg.Subject())
	dl.Header.Set(HeaderStreamSequence, strconv.FormatUint(d.StreamSequence, 10))
	dl.Header.Set(HeaderSubscriber, s.cfg.Name)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	id := deadLetterID(s.cfg.Name, s.instance, d.StreamSequence, msg.Headers(), msg.Data())
	ack, err := s.js.PublishMsg(pctx, dl, jetstream.WithMsgID(id))
	if err != nil {
		s.cfg.Logger.Error("subscriber: publishing dead letter", "subscriber", s.cfg.Name, "seq", d.StreamSequence, "error", err)
		_ = msg.NakWithDelay(s.cfg.Backoff[len(s.cfg.Backoff)-1])
		return false
	}
	if ack.Duplicate {
		s.cfg.Logger.Info("subscriber: dead letter already stored", "subscriber", s.cfg.Name, "seq", d.StreamSequence,
			"dead_letter_seq", ack.Sequence, "id", id)
	}
	if err := msg.Term(); err != nil {
		s.cfg.Logger.Warn("subscriber: terminating dead letter", "subscriber", s.cfg.Name, "seq", d.StreamSequence, "error", err)
	}
	s.count(s.deadLettered)
	s.cfg.Logger.Error("subscriber: notification dead-lettered", "subscriber", s.cfg.Name, "seq", d.StreamSequence,
		"attempts", attempts, "subject", s.DeadLetterSubject(), "error", cause)
	return true
}
