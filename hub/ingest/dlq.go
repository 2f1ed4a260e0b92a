package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/pophub/pophub/schemas"
)

// dlqMaxBytes is the DLQ writer's BatchBytes, the most a copy may weigh as
// kafka-go measures it: kafka-go's default, and about Kafka's default
// message.max.bytes. Set here so that writeRejects knows the limit.
const dlqMaxBytes = 1 << 20

// What a copy too large for the DLQ leaves out (HeaderDropped); dropRecord
// is the metric's name for a copy not written at all.
const (
	dropValue  = "value"
	dropAll    = "key,value,headers"
	dropRecord = "record"
)

// dlqCopy is a reject on its way to the DLQ: msg as it will be written,
// orig the whole copy that dlqRecord made, dropped what msg leaves out of
// it ("" for nothing).
type dlqCopy struct {
	orig, msg kafka.Message
	dropped   string
}

// writeRejects copies a batch's rejects to the DLQ. It retries until every
// copy is written or ctx ends, resending only the copies that failed.
//
// A copy that Kafka can never take, larger than the writer's BatchBytes or
// the DLQ topic's max.message.bytes, would fail for ever and, since offsets
// commit in order, stop all ingest. Such a copy is written without its
// value instead (see HeaderDropped), counted and logged: the original stays
// in its source topic at the offset the copy names, but only until the
// topic's retention deletes it, after which what the copy left out is lost
// (the DLQ tools say which it is).
func (c *Consumer) writeRejects(ctx context.Context, rejects []kafka.Message) error {
	pending := make([]dlqCopy, len(rejects))
	for i, m := range rejects {
		pending[i] = fit(m)
	}
	loggedPermanent := false
	err := retry(ctx, c.cfg.Logger, "writing rejects to the DLQ", func() error {
		var err error
		pending, err = c.writePending(ctx, pending)
		c.dlqStall.note(err)
		if err != nil && !loggedPermanent && refusedForGood(err) {
			loggedPermanent = true
			c.cfg.Logger.Error("the DLQ refuses the hub's writes (authorization or topic missing), which retrying will not change; "+
				"ingest waits until the rejects are written, so no record is skipped, but no source partition advances until then: "+
				"grant the hub write access to the DLQ topic or create it", "topic", schemas.DLQTopic, "err", err)
		}
		return err
	})
	return err
}

// writePending writes the copies in pending and returns those that failed
// and why.
func (c *Consumer) writePending(ctx context.Context, pending []dlqCopy) ([]dlqCopy, error) {
	msgs := make([]kafka.Message, len(pending))
	for i, p := range pending {
		msgs[i] = p.msg
	}
	err := c.dlq.WriteMessages(ctx, msgs...)
	var werrs kafka.WriteErrors
	if err != nil && (!errors.As(err, &werrs) || len(werrs) != len(pending)) {
		if !tooLarge(err) {
			return pending, err // nothing written (no metadata yet, say): resend all
		}
		// The writer refused a copy that fit misjudged before sending
		// any: write each alone.
		werrs = make(kafka.WriteErrors, len(pending))
		for i := range werrs {
			werrs[i] = err
		}
	}
	var failed []dlqCopy
	for i, p := range pending {
		var werr error
		if err != nil {
			werr = werrs[i]
		}
		switch {
		case werr == nil:
			c.noteDropped(ctx, p)
		case tooLarge(werr):
			// The broker judges a whole batch of copies; alone,
			// this one may fit.
			if err := c.writeAlone(ctx, p.orig); err != nil {
				failed = append(failed, p)
			}
		default:
			failed = append(failed, p)
		}
	}
	if len(failed) > 0 {
		return failed, err
	}
	return nil, nil
}

// writeAlone writes one copy by itself: whole, or if the broker refuses it
// as too large without its value, or else without its key and the original
// headers too. A copy refused even so is not written, only logged and
// counted, since retrying it could never succeed.
func (c *Consumer) writeAlone(ctx context.Context, orig kafka.Message) error {
	for _, drop := range []string{"", dropValue, dropAll} {
		p := dlqCopy{orig: orig, msg: orig}
		if drop != "" {
			p = shrink(orig, drop)
		}
		err := c.dlq.WriteMessages(ctx, p.msg)
		if err == nil {
			c.noteDropped(ctx, p)
			return nil
		}
		if !tooLarge(err) {
			return err
		}
	}
	c.cfg.Logger.Error("reject too large for the DLQ even without key, value and headers; not copied (the original stays in its source topic only until its retention deletes it)",
		"topic", lastHeader(orig, HeaderTopic), "partition", lastHeader(orig, HeaderPartition), "offset", lastHeader(orig, HeaderOffset),
		"reason", lastHeader(orig, HeaderReason))
	c.metrics.dlqDropped.Add(ctx, 1, dropAttrs(orig, dropRecord))
	return nil
}

// noteDropped logs and counts a copy written without some of its parts.
func (c *Consumer) noteDropped(ctx context.Context, p dlqCopy) {
	if p.dropped == "" {
		return
	}
	c.cfg.Logger.Warn("reject too large for the DLQ; copied without some parts (the original stays in its source topic only until its retention deletes it)",
		"dropped", p.dropped, "size", dlqSize(p.orig),
		"topic", lastHeader(p.orig, HeaderTopic), "partition", lastHeader(p.orig, HeaderPartition), "offset", lastHeader(p.orig, HeaderOffset),
		"reason", lastHeader(p.orig, HeaderReason))
	c.metrics.dlqDropped.Add(ctx, 1, dropAttrs(p.orig, p.dropped))
}

func dropAttrs(orig kafka.Message, dropped string) metric.AddOption {
	// The source as the other ingest counters name it, so that the series
	// New started at zero are the ones counted here.
	src := schemas.SourceOfTopic(lastHeader(orig, HeaderTopic))
	return metric.WithAttributes(attribute.String("source", string(src)), attribute.String("dropped", dropped))
}

// fit returns the copy m whole, or without the parts shrink drops, as far
// as needed to stay within the writer's BatchBytes.
func fit(m kafka.Message) dlqCopy {
	if dlqSize(m) <= dlqMaxBytes {
		return dlqCopy{orig: m, msg: m}
	}
	if p := shrink(m, dropValue); dlqSize(p.msg) <= dlqMaxBytes {
		return p
	}
	return shrink(m, dropAll)
}

// shrink returns the copy orig without its value (dropValue), or also
// without its key and the original record's headers (dropAll), marked with
// HeaderDropped. The pophub-* headers, which say why and whence, stay.
func shrink(orig kafka.Message, drop string) dlqCopy {
	msg := kafka.Message{Key: orig.Key, Headers: slices.Clip(orig.Headers), Time: orig.Time}
	if drop == dropAll {
		msg.Key = nil
		msg.Headers = slices.DeleteFunc(slices.Clone(orig.Headers), func(h kafka.Header) bool {
			return !strings.HasPrefix(h.Key, "pophub-")
		})
	}
	msg.Headers = append(msg.Headers, kafka.Header{Key: HeaderDropped, Value: []byte(drop)})
	return dlqCopy{orig: orig, msg: msg, dropped: drop}
}

// tooLarge reports whether Kafka refused a write for its size, which no
// retry changes.
func tooLarge(err error) bool {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		return slices.ContainsFunc(werrs, tooLarge)
	}
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge)
}

// dlqSize bounds from above the size that kafka-go's writer gives a record
// and compares with BatchBytes: key, value and headers plus the per-record
// and per-header overhead of the encoding.
func dlqSize(m kafka.Message) int {
	n := 64 + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += 24 + len(h.Key) + len(h.Value)
	}
	return n
}

// lastHeader returns the last header named key: the one dlqRecord added
// (it renames the original record's pophub-* headers).
func lastHeader(m kafka.Message, key string) string {
	for _, h := range slices.Backward(m.Headers) {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// dlqGrace is how long DLQ writes may fail before Ping reports the hub
// not ready: a broker's leader election or a restart passes within it,
// while a DLQ that refuses writes for good stops all ingest behind it.
const dlqGrace = 10 * time.Second

// dlqProblem says why ingest is stopped behind the DLQ: writes to it have
// been failing for longer than dlqGrace. Nil otherwise.
func (c *Consumer) dlqProblem() error {
	if d, err, ok := c.dlqStall.stalled(); ok {
		return fmt.Errorf("writing rejects to the DLQ topic %s has failed for %s; ingest waits for it, skipping nothing: %w",
			schemas.DLQTopic, d.Round(time.Second), err)
	}
	return nil
}

// applyGrace is how long applying batches may fail before StoreProblem
// reports it: a database restart or failover passes within it.
const applyGrace = 10 * time.Second

// StoreProblem says why ingest is stopped at the store although the
// store may answer a ping: applying batches has failed for longer than
// applyGrace (a database that refuses the hub's writes, a statement
// timeout shorter than a batch takes). Nil otherwise. The hub's
// readiness reports it with the store's ping.
func (c *Consumer) StoreProblem() error {
	if d, err, ok := c.applyStall.stalled(); ok {
		return fmt.Errorf("applying batches to the store has failed for %s; ingest retries, skipping nothing: %w", d.Round(time.Second), err)
	}
	return nil
}

// refusedForGood reports whether Kafka refused a write for a reason that
// retrying does not change: no authorization, or no such topic.
func refusedForGood(err error) bool {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		return slices.ContainsFunc(werrs, refusedForGood)
	}
	for _, e := range []kafka.Error{kafka.TopicAuthorizationFailed, kafka.ClusterAuthorizationFailed,
		kafka.SASLAuthenticationFailed, kafka.UnknownTopicOrPartition} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
