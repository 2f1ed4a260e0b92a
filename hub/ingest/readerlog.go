package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/pophub/pophub/schemas"
	"github.com/segmentio/kafka-go"
)

// readerLogWindow is how often one kafka-go message may reach the log:
// kafka-go logs from loops that may repeat hundreds of times a second (a
// partition watcher that fails at once, a fetch that fails at once), and
// the log must stay readable. Repeats within the window are counted and
// reported with the next line that passes.
const readerLogWindow = 5 * time.Second

// kafka-go's messages that the consumer acts on, matched by their format
// string (kafka-go v0.4.51, reader.go). A kafka-go that words them
// differently still has them logged, only not counted.
const (
	// The reader found its offset below the partition's first one: the
	// records in between were deleted (retention) before the hub read
	// them. Arguments: partition, topic, offset, first, first-offset.
	fmtSkippedDeleted = "the kafka reader is reading before the first offset for partition %d of %s, skipping from offset %d to %d (%d messages)"
	// The reader's offset is beyond the partition's end; kafka-go waits
	// there for ever. Arguments: partition, topic, offset.
	fmtBeyondEnd = "the kafka reader is reading passed the last offset for partition %d of %s at offset %d"
	// A partition's reader failed to connect or seek, and retries.
	// Arguments: partition, topic, error.
	fmtInitError = "error initializing the kafka reader for partition %d of %s: %s"
	// The commit loop and the group loop report their errors bare.
	fmtBare = "%v"
	// A fetch failed; the reader connects again and fetches anew.
	// Arguments: partition, topic, offset, error.
	fmtUnknownError = "the kafka reader got an unknown error reading partition %d of %s at offset %d: %s"
	// A partition's reader starts at the group's committed offset and
	// seeks to where it reads, at debug level. It seeks further only when
	// the committed offset lies below the partition's first offset:
	// retention deleted the records in between. Arguments: partition,
	// topic, offset.
	fmtInitializing = "initializing kafka reader for partition %d of %s starting at offset %d"
	fmtSeeking      = "the kafka reader for partition %d of %s is seeking to offset %d"
	// The reader joined the group, after assigning the partitions if it
	// leads the group (consumergroup.go, nextGeneration), at debug level.
	// Arguments: group, member, generation.
	fmtJoined = "Joined group %s as member %s in generation %d"
)

// readerLog is kafka-go's Logger (or ErrorLogger) writing to slog at one
// level, at most once per readerLogWindow for each distinct message, each
// line saying how many repeats it stands for. kafka-go calls Printf from
// its goroutines concurrently.
type readerLog struct {
	log    *slog.Logger
	level  slog.Level
	window time.Duration
	// observe, when set, sees every message before rate limiting (to
	// count errors and act on those the consumer knows); a message it
	// calls expected is logged at debug level only.
	observe func(format string, args []any) (expected bool)

	mu   sync.Mutex
	seen map[string]*repeat
}

type repeat struct {
	at         time.Time // when the message was last written
	suppressed int       // repeats since then, not written
}

func newReaderLog(log *slog.Logger, level slog.Level, observe func(string, []any) bool) *readerLog {
	return &readerLog{log: log, level: level, window: readerLogWindow, observe: observe, seen: map[string]*repeat{}}
}

// Printf implements kafka.Logger.
func (l *readerLog) Printf(format string, args ...any) {
	level := l.level
	if l.observe != nil && l.observe(format, args) {
		level = slog.LevelDebug
	}
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	if format == fmtBare {
		// Without kafka-go's context the error alone says little: these
		// come from committing offsets and from joining the group.
		msg = "kafka group reader: committing offsets or joining the group failed, retrying: " + msg
	}
	now := time.Now()
	l.mu.Lock()
	r := l.seen[msg]
	if r != nil && now.Sub(r.at) < l.window {
		r.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := 0
	if r != nil {
		suppressed = r.suppressed
	}
	l.seen[msg] = &repeat{at: now}
	if len(l.seen) > 256 { // forget messages not repeated lately
		for k, v := range l.seen {
			if now.Sub(v.at) >= l.window {
				delete(l.seen, k)
			}
		}
	}
	l.mu.Unlock()
	attrs := []slog.Attr{slog.String("component", "kafka-go")}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("repeats_not_logged", suppressed))
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

// skipRetention is the reason of pophub_events_skipped_total for a record
// deleted by its topic's retention before the hub read it.
const skipRetention = "retention"

// readerError sees each error kafka-go's reader logs: it counts them,
// reports records deleted before the hub read them (see noteDeleted), and
// stops Run at a partition that became shorter than what was read of it
// (see noteOutOfRange).
func (c *Consumer) readerError(format string, args []any) (expected bool) {
	if format == fmtUnknownError && len(args) == 4 {
		// A fetch at an open transaction's first record finds nothing
		// committed, which kafka-go takes for a short read: expected
		// while the partition waits (lagTracker.holds says so).
		partition, _ := args[0].(int)
		topic, _ := args[1].(string)
		offset, _ := offsetArg(args[2])
		if err, _ := args[3].(error); errors.Is(err, io.ErrUnexpectedEOF) && c.lag.heldAt(topic, partition, offset) {
			return true
		}
	}
	c.metrics.readerErrors.Add(context.Background(), 1)
	switch {
	case format == fmtBeyondEnd && len(args) == 3:
		partition, _ := args[0].(int)
		topic, _ := args[1].(string)
		c.noteOutOfRange(topic, partition, true)
		return false
	case format == fmtInitError && len(args) == 3:
		partition, _ := args[0].(int)
		topic, _ := args[1].(string)
		if err, _ := args[2].(error); errors.Is(err, kafka.OffsetOutOfRange) {
			c.noteOutOfRange(topic, partition, false)
		}
		return false
	case format != fmtSkippedDeleted || len(args) != 5:
		return false
	}
	partition, _ := args[0].(int)
	topic, _ := args[1].(string)
	first, _ := args[3].(int64)
	n, _ := args[4].(int64)
	c.noteDeleted(topic, partition, first-n, first)
	return false
}

// readerDebug sees kafka-go's debug messages: a partition's reader that
// seeks past the offset it started at skips records that retention
// deleted (see fmtSeeking), which kafka-go reports at debug level only;
// and a join of the group tells the store check whether this instance
// still leads it (storeGuard.joined).
func (c *Consumer) readerDebug(format string, args []any) bool {
	if format == fmtJoined {
		c.stores.joined()
		return false
	}
	if (format != fmtInitializing && format != fmtSeeking) || len(args) != 3 {
		return false
	}
	partition, _ := args[0].(int)
	topic, _ := args[1].(string)
	offset, ok := offsetArg(args[2])
	if !ok {
		return false
	}
	tp := topicPartition{topic, partition}
	if format == fmtInitializing {
		c.noteInit(topic, partition, offset)
	}
	c.seekMu.Lock()
	start, started := c.starts[tp]
	if format == fmtInitializing {
		c.starts[tp] = offset
	} else {
		delete(c.starts, tp)
	}
	c.seekMu.Unlock()
	// A negative start is kafka-go's "first offset" or "last offset": no
	// committed offset to compare with.
	if format == fmtSeeking && started && start >= 0 && offset > start {
		c.noteDeleted(topic, partition, start, offset)
	}
	return false
}

// offsetArg is an offset that kafka-go passes to its loggers (an int64, or
// a named int64 type that prints "first offset" for -2).
func offsetArg(v any) (int64, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Int64 {
		return 0, false
	}
	return rv.Int(), true
}

// noteDeleted reports offsets from..to-1 of a partition, which retention
// deleted before the hub read them and kafka-go skips: a warning naming
// what was lost, Counts.Deleted and pophub_events_skipped_total{reason=
// "retention"}.
func (c *Consumer) noteDeleted(topic string, partition int, from, to int64) {
	n := to - from
	if n <= 0 {
		return
	}
	c.cfg.Logger.Warn("records deleted by the topic's retention before the hub read them; skipped, their events are not applied "+
		"(ask the department to send them again if they matter)",
		"topic", topic, "partition", partition, "from_offset", from, "to_offset", to-1, "skipped", n)
	c.metrics.skipped.Add(context.Background(), n, metric.WithAttributes(attribute.String("reason", skipRetention),
		attribute.String("source", string(schemas.SourceOfTopic(topic)))))
	c.mu.Lock()
	c.counts.Deleted += n
	c.mu.Unlock()
}

// topicPartition names one partition of a topic.
type topicPartition struct {
	topic     string
	partition int
}
