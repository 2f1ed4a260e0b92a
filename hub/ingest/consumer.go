// Package ingest moves department events from Kafka into the store: a
// consumer group reads the source topics in batches, decodes and validates
// each record, copies rejects to the DLQ topic, applies the rest to the
// store in one call, and only then commits the batch's offsets. A bad
// record never stops a partition; a failing store stops progress (with
// retries) but never skips a record.
//
// The consumer uses kafka-go's FetchMessage and CommitMessages (never
// ReadMessage, which commits before the store has the records). A group
// rebalance (an instance joining or leaving, partitions added) has the
// partitions' batches in flight read again from the committed offset, as
// kafka-go has no callback to finish them first, and a crash forgets
// commits not yet sent: the store recognises those events as duplicates,
// while their rejects are copied to the DLQ and counted in
// pophub_events_rejected_total again (the DLQ tools, hub/dlq, count the
// copies of one original once).
//
// Memory: the consumer holds at most Concurrency+4 batches (Concurrency being
// applied, one waiting to start, two decoded ahead, one being fetched),
// each of at most MaxBatch records and MaxBatchBytes (recordBytes, which
// counts a header's overhead, headerOverhead, besides its bytes), and
// kafka-go's queue of readerQueue records: with the defaults and records
// near Kafka's 1 MiB limit, about 130 MiB, however long the backlog behind
// a slow store; up to about 150 MiB when the queued records carry a
// megabyte of tiny headers each. A record with more than maxRecordHeaders
// headers is refused as too_large (limits.go), and its batch keeps only the
// first of them.
//
// Stopping: when Run's context ends, the consumer fetches no more, starts
// no more batches, and lets the batches in flight (whose rejects may
// already be in the DLQ) finish their apply and offset commit under a
// context the stop does not cancel, for up to Config.ShutdownGrace
// (DefaultShutdownGrace, 10 s); Close then sends the committed offsets to
// the broker. A stop within the grace period therefore neither reads its
// own batches again nor copies their rejects to the DLQ twice; the other
// instances of the group rebalance, and their batches in flight are read
// again (see above). Delivery stays at
// least once: a kill (SIGKILL, a crash, a platform's stop timeout shorter
// than the grace period) or a store that has not committed when the grace
// period ends leaves the batch uncommitted, and the next run reads it
// again: the store recognises those of its events it had applied as
// duplicates, but its rejects are copied to the DLQ again (the copies name the same pophub-topic,
// pophub-partition and pophub-offset).
//
// Telemetry: counters pophub_events_consumed_total{source},
// pophub_events_applied_total{source}, pophub_events_duplicate_total{source}
// (a repeat counted under the source that sent it again) and
// pophub_events_rejected_total{reason,source};
// pophub_events_skipped_total{reason,source} counts records passed over,
// outside consumed: reason "control", transactions' commit markers, and
// "aborted_transaction", their abort markers (see below), and
// "retention", records that the topic's retention deleted before the hub
// read them (kafka-go moves on to the first offset left; the hub logs a
// warning naming the partition and the offsets lost);
// pophub_ingest_reader_errors_total counts the errors kafka-go's group
// reader handles by retrying (refused commits, failed fetches and joins),
// which it logs through the consumer's logger at warn level, each distinct
// message at most once per 5 s (kafka-go's other messages go to debug),
// and starts at zero too;
// pophub_dlq_dropped_total{source,dropped} counts rejects too large for the
// DLQ, copied there without some parts (dropped "value" or
// "key,value,headers", see HeaderDropped) or not at all ("record"); every
// source's counters, with each reason and dropped value, start at zero, so
// that increase() sees their first event; histograms
// pophub_apply_duration_seconds and pophub_ingest_batch_size; the gauge
// pophub_consumer_lag{topic,partition}, which kafka-go's group reader does
// not expose: every five seconds the consumer asks the broker for each
// partition's high watermark (ListOffsets) and the group's committed offset
// (OffsetFetch) and reports the difference (from the partition's first
// offset instead, when retention deleted records the group had not read),
// or no series while that fails; a committed offset beyond a partition's
// end, where kafka-go waits silently, is logged as an error and makes Ping
// fail, as does a DLQ that has refused writes for longer than dlqGrace;
// the gauge pophub_consumer_lag_timestamp_seconds says when it last
// succeeded; the histogram pophub_store_apply_duration_seconds{outcome}
// times each call of the store's Apply, failed attempts included
// (pophub_apply_duration_seconds covers a batch's whole apply, retries and
// backoff included); the gauge pophub_consumer_group_store_conflict is 1
// while this instance, leading the group, finds its members applying to
// different stores and so assigns no partitions (groupstore.go), which
// makes Ping fail too; pophub_consumer_group_region_conflict is 1 while it
// finds them classifying addresses by different region tables.
//
// Transactions: the reader fetches with isolation level read_committed,
// so a department's open transaction is read only once it has ended. The
// commit or abort marker that ends it reaches the consumer as a record
// (kafka-go hands control records on); it is recognised by its shape (see
// IsControl), skipped without a DLQ copy and counted, and its offset is
// committed with the batch. kafka-go does not drop the records of an
// aborted transaction (it reads the fetch response's list of aborted
// transactions but does not use it, and Message does not say which
// producer wrote a record), so those are applied like any other. A
// department cannot always avoid an abort (the coordinator aborts a
// transaction that times out, or whose producer restarted and fenced
// it), so an abort marker is counted apart (reason
// "aborted_transaction", Counts.Aborted) and logged at warn level with its
// topic, partition and offset: the records of the aborted transaction are
// among those before it.
//
// Partitions added to a source topic while the hub runs are picked up
// within partitionWatchInterval: the group reader watches the partition
// counts and rejoins the group when one changes, starting a new
// partition, which has no committed offset, at its first record.
//
// Tracing: one span "ingest batch" per batch, linked to the trace contexts
// in the records' traceparent headers, rejected records' included. Trace
// context is read from those headers only (not from the CloudEvents
// distributed-tracing extension in the value), and a tracestate over
// maxTraceState is dropped before it becomes the parent of any span. A
// record whose trace context is sampled also gets spans in its own trace,
// so one event can be followed from the department to the subscriber:
//
//	ingest <topic>   consumer span, child of the record's context, from
//	                 decoding to the store's commit; linked to the batch
//	                 span; pophub.outcome says "applied" or "duplicate"
//	└ store commit   the batch's Apply as this event saw it (each sampled
//	                 event of the batch has one, with the same times)
//
// A rejected record's "ingest <topic>" span ends once its copy is in the
// DLQ, with pophub.outcome "rejected", the reason and field
// (pophub.reject.reason, pophub.reject.field) and an error status: the
// department following its event sees that the hub refused it, and why.
//
// and the event's notifications carry the context of its "store commit"
// span in the outbox, so the relay's spans continue from it. The batch's
// Apply is one transaction but the events belong to different traces, and
// a span has one parent: so the commit is recorded once per sampled event,
// in that event's trace, rather than as one span that all traces link to.
// Records without trace context or with an unsampled one cost no spans;
// their trace context passes to the outbox unchanged. Record keys (citizen
// IDs) and event subjects never become attributes: spans carry topic,
// partition, offset, consumer group, event id, source and type.
package ingest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/internal/kafkaheaders"
	"github.com/pophub/pophub/internal/tracestate"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Applier applies a batch of validated events atomically (hub.Store.Apply).
type Applier interface {
	Apply(ctx context.Context, batch []hub.Input) (hub.ApplyResult, error)
}

// Config configures a Consumer.
type Config struct {
	Brokers []string
	// SASL authenticates to brokers that ask for it (the hub's
	// SCRAM-SHA-512 identity when an access policy is on); nil for none.
	SASL sasl.Mechanism
	// TLS, when set, is the client configuration for brokers that speak
	// TLS; nil connects in plaintext.
	TLS *tls.Config
	// GroupID is the consumer group (default "pophub"); hub instances in
	// one group share the partitions.
	GroupID string
	// StoreID identifies the store the consumer applies to
	// (postgres.Store.StoreID); "" for a store without one. The group's
	// instances compare their ids and stop ingest while they differ (see
	// groupstore.go): one group must apply to one store.
	StoreID string
	// RegionTable is the digest of the region table the instance
	// classifies addresses by (region.Table.Digest). The group's leader
	// warns while its members' tables differ (see groupstore.go).
	RegionTable string
	// Topics to consume (default: the eight source topics).
	Topics []string
	// MaxBatch is the most records applied in one store transaction
	// (default 2000).
	MaxBatch int
	// MaxBatchBytes is the most bytes of keys, values and headers a batch
	// holds (default DefaultMaxBatchBytes); a record larger than that
	// forms a batch alone. While the store is slow the consumer holds a
	// few batches (see the package comment), so this, not MaxBatch, bounds
	// its memory when records are large.
	MaxBatchBytes int
	// MaxWait is how long to wait for more records once a batch has one
	// (default 20ms).
	MaxWait time.Duration
	// Concurrency is how many batches may be applied at once (default 2):
	// one commits while the next merges. Offsets are committed in order.
	Concurrency int
	// ShutdownGrace is how long a stop waits for the batches being
	// applied to finish and have their offsets committed (default
	// DefaultShutdownGrace); see Consumer.Run.
	ShutdownGrace time.Duration
	Logger        *slog.Logger
	Meter         metric.Meter
	Tracer        trace.Tracer
	// heldWarning is how long records may wait behind an open Kafka
	// transaction before the consumer says so (default heldWarning);
	// tests lower it.
	heldWarning time.Duration
}

// DefaultShutdownGrace is Config.ShutdownGrace's default. A batch's apply
// and commit take milliseconds when the store is healthy; the grace covers
// a store that is retrying (a PostgreSQL restart stalls the hub 2-3 s).
// Docker kills a stopping container after 10 s by default, Kubernetes after
// 30 s: a platform's stop timeout below this grace plus the rest of the
// hub's shutdown turns a slow stop into a kill (see the package comment).
const DefaultShutdownGrace = 10 * time.Second

// DefaultMaxBatchBytes is Config.MaxBatchBytes's default: 2,000 records of
// 8 KiB, so batches of ordinary events (under 1 KiB) still close at
// MaxBatch, while a backlog of records near Kafka's 1 MiB limit is held a
// few dozen at a time, not thousands.
const DefaultMaxBatchBytes = 16 << 20

// readerQueue is the reader's QueueCapacity: how many records kafka-go's
// partition readers fetch ahead of the batch being filled. kafka-go counts
// records, not bytes, and holds a record's headers as it reads them, up to
// about eleven times their size on the topic for tiny ones (a kafka.Header
// and a name each): a queued record near the 1 MiB limit may weigh 11 MiB,
// so the queue is kept to 8 records (at most about 90 MiB), which fetching
// still keeps up with for small records (BenchmarkConsume: 32 was no
// faster).
const readerQueue = 8

func (c *Config) setDefaults() {
	if c.GroupID == "" {
		c.GroupID = "pophub"
	}
	if len(c.Topics) == 0 {
		c.Topics = schemas.Topics()
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 2000
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 20 * time.Millisecond
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.heldWarning <= 0 {
		c.heldWarning = heldWarning
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Meter == nil {
		c.Meter = metricnoop.NewMeterProvider().Meter("")
	}
	if c.Tracer == nil {
		c.Tracer = tracenoop.NewTracerProvider().Tracer("")
	}
}

// Validate reports configuration errors.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("ingest: no Kafka brokers")
	}
	return nil
}

// Counts are totals since the consumer started, over committed batches
// only: a record is counted once its batch's offsets were handed to Kafka.
// Consumed = Applied + Duplicates + the rejects, in total and per source.
type Counts struct {
	Consumed   int64
	Applied    int64
	Duplicates int64
	// Skipped counts records passed over that are not events and not
	// counted in Consumed: transactions' commit and abort markers.
	Skipped int64
	// Aborted counts the abort markers among them: transactions whose
	// records were applied although their producer or its coordinator
	// aborted them.
	Aborted int64
	// Deleted counts records that the topics' retention deleted before
	// the hub read them: skipped, never consumed.
	Deleted int64
	// Rejected counts records copied to the DLQ, by reason.
	Rejected map[string]int64
	// BySource counts consumed records per source topic.
	BySource map[schemas.Source]int64
	// Sources breaks the totals down by source topic.
	Sources map[schemas.Source]SourceCounts
}

// SourceCounts are one source topic's totals. Consumed = Accepted +
// the rejects, and Accepted = Applied + Duplicates, exactly; a duplicate
// is counted under the source that sent it again (the store names the
// duplicate inputs of each batch, hub.ApplyResult.DuplicateAt).
type SourceCounts struct {
	Consumed   int64
	Accepted   int64
	Applied    int64
	Duplicates int64
	Rejected   map[string]int64
	// Skipped counts the source's transaction markers (Counts.Skipped).
	Skipped int64
}

// RejectedTotal sums the rejects over all reasons.
func (c Counts) RejectedTotal() int64 {
	var n int64
	for _, v := range c.Rejected {
		n += v
	}
	return n
}

// RejectedTotal sums the source's rejects over all reasons.
func (c SourceCounts) RejectedTotal() int64 {
	var n int64
	for _, v := range c.Rejected {
		n += v
	}
	return n
}

// Consumer is the Kafka → store path. Run it once; Close stops it.
type Consumer struct {
	cfg     Config
	store   Applier
	reader  *kafka.Reader
	dlq     *kafka.Writer
	lag     *lagTracker
	metrics metrics
	// stores checks that the group's members apply to one store.
	stores *storeGuard

	mu     sync.Mutex
	counts Counts

	// dlqStall is the DLQ's health, which Ping reports once writes to it
	// have failed for longer than dlqGrace; applyStall the store's, which
	// StoreProblem reports once batches have failed for longer than
	// applyGrace.
	dlqStall, applyStall stall

	// seekMu guards starts: the offset each partition's reader started
	// at, until it seeks (see readerDebug).
	seekMu sync.Mutex
	starts map[topicPartition]int64

	// fetchedMu guards fetchedTo: the offset after the last record this
	// instance fetched of each partition, to tell a partition whose log
	// became shorter than what was read from it (see readerError).
	fetchedMu sync.Mutex
	fetchedTo map[topicPartition]int64
	// initAt is the offset each partition's reader last started at (its
	// committed offset), which counts as read to as well: a reader
	// waiting at it has read nothing yet in this process.
	initAt map[topicPartition]int64
	// outOfRange is the run of seeks that failed as out of range, since
	// the partition's last fetched record (see noteOutOfRange).
	outOfRange map[topicPartition]failedRun
	// checking holds the partitions whose committed offset is being
	// looked up (see confirmShrunk).
	checking map[topicPartition]bool
	// shrunk carries the first such partition's error to Run.
	shrunk chan error

	// closing is set by Close before it closes the reader, which then
	// answers io.EOF (see Run).
	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

type metrics struct {
	consumed, applied, duplicates, rejected metric.Int64Counter
	applyDuration                           metric.Float64Histogram
	batchSize                               metric.Int64Histogram
	// storeDuration times each Apply call; storeOK and storeFailed are
	// its attribute sets, built once.
	storeDuration        metric.Float64Histogram
	storeOK, storeFailed metric.RecordOption
	// dlqDropped counts rejects whose DLQ copy was too large for Kafka.
	dlqDropped metric.Int64Counter
	// skipped counts records that are not events (skipControl) and
	// records deleted before they were read (skipRetention).
	skipped metric.Int64Counter
	// readerErrors counts the errors kafka-go's reader logged.
	readerErrors metric.Int64Counter
}

// New creates a consumer that applies to store.
func New(cfg Config, store Applier) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, store: store, dlqStall: stall{grace: dlqGrace}, applyStall: stall{grace: applyGrace}, starts: map[topicPartition]int64{}, fetchedTo: map[topicPartition]int64{}, initAt: map[topicPartition]int64{}, outOfRange: map[topicPartition]failedRun{}, checking: map[topicPartition]bool{}, shrunk: make(chan error, 1), counts: Counts{Rejected: map[string]int64{}, BySource: map[schemas.Source]int64{},
		Sources: map[schemas.Source]SourceCounts{}}}
	c.dlq = &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Transport:              Transport(cfg.SASL, cfg.TLS),
		Topic:                  schemas.DLQTopic,
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		BatchBytes:             dlqMaxBytes,
		AllowAutoTopicCreation: false,
	}
	m := cfg.Meter
	var err error
	var errs []error
	c.metrics.consumed, err = m.Int64Counter("pophub.events.consumed", metric.WithUnit("{event}"), metric.WithDescription("Records read from the source topics."))
	errs = append(errs, err)
	c.metrics.applied, err = m.Int64Counter("pophub.events.applied", metric.WithUnit("{event}"), metric.WithDescription("Events applied to golden records."))
	errs = append(errs, err)
	c.metrics.duplicates, err = m.Int64Counter("pophub.events.duplicate", metric.WithUnit("{event}"), metric.WithDescription("Events whose (source, id) was applied before."))
	errs = append(errs, err)
	c.metrics.rejected, err = m.Int64Counter("pophub.events.rejected", metric.WithUnit("{event}"), metric.WithDescription("Records copied to the DLQ, by reason and source."))
	errs = append(errs, err)
	c.metrics.skipped, err = m.Int64Counter("pophub.events.skipped", metric.WithUnit("{record}"),
		metric.WithDescription("Records on the source topics passed over and not counted as consumed, by reason and source: "+
			"control, a transaction's commit marker; aborted_transaction, an abort marker (the marker is passed over; its transaction's records were applied all the same, "+
			"as the hub's Kafka client cannot leave them out, and the log names the marker); retention, a record deleted by the topic's retention before the hub read it."))
	errs = append(errs, err)
	c.metrics.readerErrors, err = m.Int64Counter("pophub.ingest.reader.errors", metric.WithUnit("{error}"),
		metric.WithDescription("Errors that the Kafka group reader handled by retrying (failed commits, fetches, group joins), logged at most once per 5 s each."))
	errs = append(errs, err)
	c.metrics.dlqDropped, err = m.Int64Counter("pophub.dlq.dropped", metric.WithUnit("{event}"),
		metric.WithDescription("Rejects too large for the DLQ, copied without the parts named by dropped (\"record\": not copied); the originals stay in their source topics."))
	errs = append(errs, err)
	c.metrics.applyDuration, err = m.Float64Histogram("pophub.apply.duration", metric.WithUnit("s"), metric.WithDescription("Time to apply one batch to the store."))
	errs = append(errs, err)
	c.metrics.batchSize, err = m.Int64Histogram("pophub.ingest.batch.size", metric.WithUnit("{event}"), metric.WithDescription("Records per ingest batch."),
		metric.WithExplicitBucketBoundaries(1, 10, 50, 100, 250, 500, 1000, 2000, 5000))
	errs = append(errs, err)
	c.metrics.storeDuration, err = m.Float64Histogram("pophub.store.apply.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of one store Apply call (one batch transaction), by outcome; failed attempts count too."))
	errs = append(errs, err)
	c.metrics.storeOK = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "ok")))
	c.metrics.storeFailed = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "error")))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("creating ingest metrics: %w", err)
	}
	// Every reason and source shows on /metrics from the start, at zero,
	// and so do the reader's errors, which the first refused commit or
	// failed fetch would otherwise create.
	c.metrics.readerErrors.Add(context.Background(), 0)
	for _, topic := range cfg.Topics {
		src := attribute.String("source", string(schemas.SourceOfTopic(topic)))
		for _, reason := range schemas.Reasons {
			c.metrics.rejected.Add(context.Background(), 0, metric.WithAttributes(attribute.String("reason", reason), src))
		}
		for _, ctr := range []metric.Int64Counter{c.metrics.consumed, c.metrics.applied, c.metrics.duplicates} {
			ctr.Add(context.Background(), 0, metric.WithAttributes(src))
		}
		for _, reason := range []string{skipControl, skipAborted, skipRetention} {
			c.metrics.skipped.Add(context.Background(), 0, metric.WithAttributes(attribute.String("reason", reason), src))
		}
		// Drops are rare, so a series born at its first drop would be
		// the one increase() and rate() cannot see.
		for _, dropped := range []string{dropValue, dropAll, dropRecord} {
			c.metrics.dlqDropped.Add(context.Background(), 0, metric.WithAttributes(src, attribute.String("dropped", dropped)))
		}
	}
	c.lag, err = newLagTracker(cfg, m)
	if err != nil {
		return nil, err
	}
	if c.stores, err = newStoreGuard(cfg.GroupID, memberData{store: cfg.StoreID, regions: cfg.RegionTable}, cfg.Logger, m); err != nil {
		return nil, err
	}
	// The reader starts joining the group at once and logs through
	// readerError, which needs the metrics.
	c.reader = kafka.NewReader(kafka.ReaderConfig{
		Brokers:     cfg.Brokers,
		Dialer:      dialer(cfg.SASL, cfg.TLS),
		GroupID:     cfg.GroupID,
		GroupTopics: cfg.Topics,
		// kafka-go's default balancers, checking that the members apply
		// to one store.
		GroupBalancers: c.stores.balancers(kafka.RangeGroupBalancer{}, kafka.RoundRobinGroupBalancer{}),
		StartOffset:    kafka.FirstOffset,
		MinBytes:       1,
		MaxBytes:       16 << 20,
		// kafka-go waits MaxWait for the first bytes of each fetch
		// response, not only for records to arrive: a broker that takes
		// longer to start answering (a large fetch while it catches up
		// from disk, a pause) made the reader drop the connection and ask
		// again, for ever, at the same offset. With MinBytes 1 the broker
		// answers as soon as a record is there, so a longer MaxWait does
		// not delay records; it bounds how long an idle partition's
		// fetch, and so a rebalance or Close, waits. It stays well below
		// the rebalance timeout.
		MaxWait:       2 * time.Second,
		QueueCapacity: readerQueue,
		// Offsets are handed to the reader only after the store committed
		// the batch; the reader sends them to the broker every 100ms and on
		// Close. A crash may forget up to that much, which comes back as
		// duplicates that the store recognises.
		CommitInterval: 100 * time.Millisecond,
		// A crashed instance's partitions move to the others after the
		// session timeout; keep it short so a restart resumes quickly.
		SessionTimeout:    6 * time.Second,
		HeartbeatInterval: time.Second,
		RebalanceTimeout:  6 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    time.Second,
		// Without the watch the group reader keeps the partitions it
		// joined with: a partition an operator adds to a source topic
		// would never be read.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: partitionWatchInterval,
		// An open transaction's records stay unread until it ends (see
		// the package comment for aborted ones).
		IsolationLevel: kafka.ReadCommitted,
		// kafka-go handles many failures by logging them and retrying:
		// without loggers a refused commit, records deleted before they
		// were read or an offset beyond a partition's end go unnoticed.
		Logger:      newReaderLog(cfg.Logger, slog.LevelDebug, c.readerDebug),
		ErrorLogger: newReaderLog(cfg.Logger, slog.LevelWarn, c.readerError),
	})
	return c, nil
}

// Counts returns a snapshot of the totals.
func (c *Consumer) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	out.Rejected = make(map[string]int64, len(c.counts.Rejected))
	for k, v := range c.counts.Rejected {
		out.Rejected[k] = v
	}
	out.BySource = make(map[schemas.Source]int64, len(c.counts.BySource))
	for k, v := range c.counts.BySource {
		out.BySource[k] = v
	}
	out.Sources = make(map[schemas.Source]SourceCounts, len(c.counts.Sources))
	for k, v := range c.counts.Sources {
		v.Rejected = maps.Clone(v.Rejected)
		out.Sources[k] = v
	}
	return out
}

// Run consumes until ctx is done or Kafka fails for good. Fetching and
// decoding the next batch overlaps with applying the current one. It first
// warns when the DLQ topic would delete rejected records.
//
// When ctx ends, Run waits up to Config.ShutdownGrace for the batches in
// flight to be applied and their offsets committed (see the package
// comment), then returns ctx's error; past the grace period it gives them
// up, logs an error, and returns an error that wraps ctx's. Call Close
// after Run returned: it sends the offsets committed last to the broker.
func (c *Consumer) Run(ctx context.Context) (err error) {
	ctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(nil) }
	defer cancel()
	defer func() {
		// A partition that shrank stops ingest as ctx's end does, but
		// Run returns why, not a cancellation a caller would ignore.
		if cause := context.Cause(ctx); errors.Is(cause, ErrPartitionShrank) {
			err = cause
		}
	}()
	c.warnIfDLQExpires(ctx)
	go c.lag.run(ctx)
	go func() {
		select {
		case err := <-c.shrunk:
			c.cfg.Logger.Error("stopping ingest", "err", err)
			cancelCause(err)
		case <-ctx.Done():
		}
	}()
	batches := make(chan decoded, 2)
	fetchErr := make(chan error, 1)
	go func() {
		defer close(batches)
		var lastWarn time.Time
		suppressed := 0
		var held *kafka.Message // fetched, but over the batch before's budget
		for {
			batch, next, err := c.fetch(ctx, held)
			held = next
			if err != nil {
				// kafka-go's group reader reports broker, partition and
				// group errors here and keeps retrying on its own with
				// its own backoff; only Close or ctx ends it. A broker
				// restart must pause the hub, not stop it. A closed
				// reader answers io.EOF, but so does a broker that closed
				// the group coordinator's connection (one shutting down,
				// a load balancer with no broker behind it): whether the
				// reader was closed is the consumer's to know.
				if ctx.Err() != nil || c.closing.Load() {
					fetchErr <- err
					return
				}
				if time.Since(lastWarn) >= 5*time.Second {
					c.cfg.Logger.Warn("fetching records; the reader retries", "err", err, "errors_since_last_warning", suppressed)
					lastWarn, suppressed = time.Now(), 0
				} else {
					suppressed++
				}
				continue
			}
			c.noteFetched(batch)
			select {
			case batches <- c.decode(batch):
			case <-ctx.Done():
				fetchErr <- ctx.Err()
				return
			}
		}
	}()
	if err := c.applyInOrder(ctx, batches); err != nil {
		cancel()
		for range batches { // let the fetcher finish
		}
		return err
	}
	if err := <-fetchErr; ctx.Err() == nil {
		return fmt.Errorf("fetching records: %w", err)
	}
	return ctx.Err()
}

// ErrPartitionShrank is returned by Run when a partition's log became
// shorter than what this instance had read of it (or started its reader
// at) and the group has no committed offset for it: its topic was deleted
// and created again while the hub ran. kafka-go's reader keeps its offset
// and would wait there, then read on from it once the new log grew that
// far, skipping every record before it; Run stops instead, before any of
// them is read, and the next start reads the topic from its first record.
var ErrPartitionShrank = errors.New("a source partition is shorter than what the hub read of it")

// noteFetched records how far the batch read each partition.
func (c *Consumer) noteFetched(batch []kafka.Message) {
	c.fetchedMu.Lock()
	defer c.fetchedMu.Unlock()
	for i, m := range batch {
		// A batch holds runs of one partition: note each run's last.
		if i+1 < len(batch) && batch[i+1].Partition == m.Partition && batch[i+1].Topic == m.Topic {
			continue
		}
		tp := topicPartition{m.Topic, m.Partition}
		c.fetchedTo[tp] = max(c.fetchedTo[tp], m.Offset+1)
		delete(c.outOfRange, tp)
	}
}

// shrinkConfirm is how long kafka-go's seek must keep failing as out of
// range before a partition counts as shrunk: the seek compares with the
// high watermark, which a newly elected leader may report a little behind
// for a moment, while a fetch past the log's end is the broker's own word.
// Failures more than shrinkGap apart are runs of their own: kafka-go
// retries a failed seek within a second.
const (
	shrinkConfirm = 2 * time.Second
	shrinkGap     = 3 * time.Second
)

// failedRun is a run of failed seeks of one partition.
type failedRun struct{ first, last time.Time }

// noteInit records the offset a partition's reader starts at.
func (c *Consumer) noteInit(topic string, partition int, offset int64) {
	if offset < 0 {
		return // kafka-go's "first offset": nothing committed
	}
	c.fetchedMu.Lock()
	c.initAt[topicPartition{topic, partition}] = offset
	c.fetchedMu.Unlock()
}

// noteOutOfRange takes kafka-go's report that a partition's reader is past
// the partition's end: a fetch the broker refused as out of range
// (fetched, the broker's word), or a seek that failed so. When the reader
// is at an offset this instance read to or started at, the partition's
// log is shorter than that now, and confirmShrunk decides whether Run
// stops (ErrPartitionShrank).
func (c *Consumer) noteOutOfRange(topic string, partition int, fetched bool) {
	tp := topicPartition{topic, partition}
	now := time.Now()
	c.fetchedMu.Lock()
	read := max(c.fetchedTo[tp], c.initAt[tp])
	ok := read > 0 && !c.checking[tp]
	if ok && !fetched {
		run, seen := c.outOfRange[tp]
		if !seen || now.Sub(run.last) > shrinkGap {
			run.first = now
		}
		run.last = now
		c.outOfRange[tp] = run
		ok = now.Sub(run.first) >= shrinkConfirm
	}
	if ok {
		c.checking[tp] = true
	}
	c.fetchedMu.Unlock()
	if ok {
		go c.confirmShrunk(tp, read)
	}
}

// confirmShrunk stops Run (ErrPartitionShrank) when the group has no
// committed offset for a partition whose log is shorter than what was
// read of it: its topic was deleted and created again, and its committed
// offsets went with the old one, so a start reads it from its first
// record. A committed offset that lies past the end (set by hand, or a
// partition truncated by an unclean leader election) would stop every
// start alike: the lag tracker reports it on /readyz, with what to do,
// and the hub goes on serving.
func (c *Consumer) confirmShrunk(tp topicPartition, read int64) {
	defer func() {
		c.fetchedMu.Lock()
		delete(c.checking, tp)
		c.fetchedMu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	committed, err := c.lag.committedOffset(ctx, tp.topic, tp.partition)
	if err != nil {
		c.cfg.Logger.Warn("checking a partition shorter than what the hub read of it", "topic", tp.topic, "partition", tp.partition, "err", err)
		return
	}
	if committed >= 0 {
		return
	}
	err = fmt.Errorf("%w: topic %s partition %d now ends before offset %d, to which this instance had read it, and the group "+
		"has no committed offset for it: the topic was deleted and created again while the hub ran. The hub stops rather than "+
		"skip the records of the new log before that offset: start it again, and it reads the partition from its first record",
		ErrPartitionShrank, tp.topic, tp.partition, read)
	select {
	case c.shrunk <- err:
	default:
	}
}

// fetch starts a batch with held, the record the last call fetched but
// left out, or else blocks for the first record, then takes what arrives
// within MaxWait, up to MaxBatch records and MaxBatchBytes. A record that
// would take the batch over MaxBatchBytes is returned as next, to start
// the next batch: kafka-go cannot take a record back.
func (c *Consumer) fetch(ctx context.Context, held *kafka.Message) (batch []kafka.Message, next *kafka.Message, err error) {
	if held == nil {
		first, err := c.reader.FetchMessage(ctx)
		if err != nil {
			return nil, nil, err
		}
		trimHeaders(&first)
		held = &first
	}
	batch = make([]kafka.Message, 1, c.cfg.MaxBatch)
	batch[0] = *held
	size := recordBytes(*held)
	wctx, cancel := context.WithTimeout(ctx, c.cfg.MaxWait)
	defer cancel()
	for len(batch) < c.cfg.MaxBatch && size < c.cfg.MaxBatchBytes {
		m, err := c.reader.FetchMessage(wctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			break // MaxWait passed
		}
		trimHeaders(&m)
		n := recordBytes(m)
		if size+n > c.cfg.MaxBatchBytes {
			return batch, &m, nil
		}
		batch = append(batch, m)
		size += n
	}
	return batch, nil, nil
}

// recordBytes is what a fetched record holds in memory beyond its fixed
// fields: its key, value and headers, each header also weighing its
// kafka.Header and the allocations of its name and value (headerOverhead),
// which for a header of a few bytes is many times its size on the topic.
func recordBytes(m kafka.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	return n
}

// utf8BOM is the byte order mark Windows tools (Notepad, PowerShell, .NET's
// UTF8Encoding(true)) write before a file's text. RFC 8259 lets a parser
// ignore it; the gateway does, and so does the consumer, so that an event
// read from such a file is taken on either path. The DLQ keeps a rejected
// record's value as sent.
var utf8BOM = []byte("\xef\xbb\xbf")

// binaryMode reports a record in the CloudEvents Kafka binding's binary
// content mode, the default of the CloudEvents SDKs' Kafka serializers:
// the attributes in ce_* headers and the data alone as the value.
func binaryMode(headers []kafka.Header) bool {
	for _, h := range headers {
		if h.Key == "ce_specversion" {
			return true
		}
	}
	return false
}

// errBinaryMode is the reject of a binary-mode record the decoder refused:
// read as an event, its data's members would be reported as unknown
// attributes, which does not say what to change.
var errBinaryMode = &schemas.RejectError{Reason: schemas.ReasonNotCloudEvent, Field: "ce_specversion",
	Detail: "CloudEvents binary content mode (ce_* headers) is not supported: send the event in structured mode, " +
		"the whole event as the record's value (content-type application/cloudevents+json)"}

// W3C trace context header names.
const (
	headerTraceparent = "traceparent"
	headerTracestate  = "tracestate"
)

// maxTraceState bounds the tracestate kept with an event: the length W3C
// Trace Context asks every platform to pass on. A record's headers are a
// department's to fill, and what is kept travels into every notification's
// NATS headers, where an oversized one would fail each publish.
const maxTraceState = 512

// recordTrace returns the trace context of a record's traceparent and
// tracestate headers (invalid when it has none, or a malformed one), its
// tracestate without members holding a citizen ID and dropped when over
// maxTraceState. Only this context goes on: in the event's trace context
// and, for a sampled one, as the parent of the hub's spans, whose
// contexts the notifications carry.
func recordTrace(m kafka.Message) trace.SpanContext {
	if kafkaheaders.Get(m.Headers, headerTraceparent) == "" {
		return trace.SpanContext{}
	}
	headers := m.Headers // escapes only for records that carry a trace
	sc := trace.SpanContextFromContext(propagator.Extract(context.Background(), kafkaheaders.Carrier{Headers: &headers}))
	if !sc.IsValid() {
		return sc
	}
	ts := tracestate.WithoutCitizenIDs(sc.TraceState())
	if encodedLen(ts) > maxTraceState {
		ts = trace.TraceState{}
	}
	return sc.WithTraceState(ts)
}

// encodedLen is the length of ts as a tracestate header, "k=v" members
// joined by commas, counted without writing it out: most records that
// carry a tracestate keep it, and it is written once, when injected.
func encodedLen(ts trace.TraceState) int {
	n := ts.Len() - 1 // the commas
	ts.Walk(func(k, v string) bool {
		n += len(k) + 1 + len(v)
		return true
	})
	return max(n, 0)
}

// traceContext is the trace context an event carries on, written anew
// from the record's (recordTrace): whatever else its headers held stays
// behind.
func traceContext(sc trace.SpanContext) map[string]string {
	tc := make(map[string]string, 2)
	propagator.Inject(trace.ContextWithRemoteSpanContext(context.Background(), sc), propagation.MapCarrier(tc))
	return tc
}

var propagator = propagation.TraceContext{}

// decoded is a fetched batch, split into valid inputs and DLQ records.
type decoded struct {
	batch   []kafka.Message
	inputs  []hub.Input
	rejects []kafka.Message
	tally   tally
	links   []trace.Link
	// sampled lists the inputs whose record carries a sampled trace
	// context: they get spans of their own (see the package comment).
	sampled []sampledInput
	// listed names the first maxListedRejects rejects, for the log;
	// sampledRejects are the rejects whose record carries a sampled trace
	// context, which get a span of their own.
	listed         []rejectNote
	sampledRejects []sampledReject
	// aborts are the batch's abort markers.
	aborts []kafka.Message
}

// sampledInput is an input whose record carries a sampled trace context.
type sampledInput struct {
	input     int // index in decoded.inputs
	parent    trace.SpanContext
	topic     string
	partition int
	offset    int64
	decoded   time.Time // when its chunk was decoded: the span's start
}

// rejectNote names a rejected record and why it was refused; the field
// and event id masked, as they come from the department's record.
type rejectNote struct {
	topic     string
	partition int
	offset    int64
	reason    string
	field     string
	eventID   string // "" when the record was not decoded that far
}

func noteReject(m kafka.Message, re *schemas.RejectError, eventID string) rejectNote {
	return rejectNote{topic: m.Topic, partition: m.Partition, offset: m.Offset, reason: re.Reason,
		field: citizenid.MaskText(clipText(re.Field, maxRejectField)), eventID: citizenid.MaskText(eventID)}
}

// sampledReject is a rejected record whose trace context is sampled.
type sampledReject struct {
	rejectNote
	parent  trace.SpanContext
	decoded time.Time
}

// maxListedRejects bounds the rejects of a batch the log names one by
// one; the summary counts the rest.
const maxListedRejects = 5

// tally counts a batch per source.
type tally map[schemas.Source]*sourceTally

type sourceTally struct {
	consumed, accepted int64
	rejected           map[string]int64
	// control counts transaction markers, which are not consumed;
	// aborted those of them that are abort markers.
	control, aborted int64
}

func (t tally) of(src schemas.Source) *sourceTally {
	st := t[src]
	if st == nil {
		st = &sourceTally{rejected: map[string]int64{}}
		t[src] = st
	}
	return st
}

func (t tally) add(o tally) {
	for src, x := range o {
		st := t.of(src)
		st.consumed += x.consumed
		st.accepted += x.accepted
		st.control += x.control
		st.aborted += x.aborted
		for r, n := range x.rejected {
			st.rejected[r] += n
		}
	}
}

// split counts a batch's applied and duplicate events per source: a
// source's duplicates are its inputs the store listed in res.DuplicateAt,
// and the rest of its accepted events were applied.
func (t tally) split(inputs []hub.Input, res hub.ApplyResult) (applied, dups map[schemas.Source]int64) {
	applied, dups = map[schemas.Source]int64{}, map[schemas.Source]int64{}
	for _, i := range res.DuplicateAt {
		if i >= 0 && i < len(inputs) {
			dups[inputs[i].Event.Source]++
		}
	}
	for src, st := range t {
		if st.accepted > 0 {
			applied[src] = st.accepted - dups[src]
		}
	}
	return applied, dups
}

// decode validates a batch, in parallel chunks on a multi-core machine,
// keeping the records' order.
func (c *Consumer) decode(batch []kafka.Message) decoded {
	workers := runtime.GOMAXPROCS(0)
	if len(batch) < 256 || workers < 2 {
		return decodeChunk(batch)
	}
	size := (len(batch) + workers - 1) / workers
	parts := make([]decoded, 0, workers)
	for i := 0; i < len(batch); i += size {
		parts = append(parts, decoded{batch: batch[i:min(i+size, len(batch))]})
	}
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() { parts[i] = decodeChunk(parts[i].batch) })
	}
	wg.Wait()
	d := decoded{batch: batch, inputs: make([]hub.Input, 0, len(batch)), tally: tally{}}
	for _, p := range parts {
		for _, si := range p.sampled {
			si.input += len(d.inputs)
			d.sampled = append(d.sampled, si)
		}
		d.inputs = append(d.inputs, p.inputs...)
		d.rejects = append(d.rejects, p.rejects...)
		d.aborts = append(d.aborts, p.aborts...)
		d.links = append(d.links, p.links...)
		d.sampledRejects = append(d.sampledRejects, p.sampledRejects...)
		if n := maxListedRejects - len(d.listed); n > 0 {
			d.listed = append(d.listed, p.listed[:min(n, len(p.listed))]...)
		}
		d.tally.add(p.tally)
	}
	return d
}

func decodeChunk(batch []kafka.Message) decoded {
	d := decoded{batch: batch, inputs: make([]hub.Input, 0, len(batch)), tally: tally{}}
	now := time.Now()
	for _, m := range batch {
		st := d.tally.of(schemas.SourceOfTopic(m.Topic))
		if re := recordTooLarge(m); re != nil {
			st.consumed++
			d.rejects = append(d.rejects, tooLargeCopy(m, re))
			st.rejected[re.Reason]++
			if len(d.listed) < maxListedRejects {
				d.listed = append(d.listed, noteReject(m, re, ""))
			}
			continue
		}
		if typ, ok := markerOf(m); ok {
			st.control++
			if typ == markerAbort {
				st.aborted++
				d.aborts = append(d.aborts, m)
			}
			continue
		}
		st.consumed++
		value := bytes.TrimPrefix(m.Value, utf8BOM)
		ev, err := schemas.Decode(schemas.Input{Topic: m.Topic, Key: m.Key, Value: value, Now: now, FromKafka: true})
		if err != nil {
			re, ok := errors.AsType[*schemas.RejectError](err)
			if !ok {
				re = &schemas.RejectError{Reason: schemas.ReasonInvalidData, Detail: "undecodable"}
			}
			if (re.Reason == schemas.ReasonNotCloudEvent || re.Reason == schemas.ReasonNotJSON) && binaryMode(m.Headers) &&
				!bytes.Contains(value, []byte(`"specversion"`)) {
				// The value is no event of its own: the data (JSON or
				// not) of one whose attributes are in the headers.
				re = errBinaryMode
			} else if framed := serializerFraming(re, m.Key, value, ev.Subject); framed != nil {
				re = framed
			} else if behind := clockBehind(re, m, value, now); behind != nil {
				re = behind
			}
			d.rejects = append(d.rejects, dlqRecord(m, re))
			st.rejected[re.Reason]++
			sc := recordTrace(m)
			if sc.IsValid() {
				d.links = append(d.links, trace.Link{SpanContext: sc})
			}
			if len(d.listed) < maxListedRejects || sc.IsSampled() {
				note := noteReject(m, re, ev.ID)
				if len(d.listed) < maxListedRejects {
					d.listed = append(d.listed, note)
				}
				if sc.IsSampled() {
					d.sampledRejects = append(d.sampledRejects, sampledReject{rejectNote: note, parent: sc, decoded: now})
				}
			}
			continue
		}
		st.accepted++
		in := hub.Input{Event: ev, Raw: value}
		if sc := recordTrace(m); sc.IsValid() {
			in.Trace = traceContext(sc)
			d.links = append(d.links, trace.Link{SpanContext: sc})
			if sc.IsSampled() {
				d.sampled = append(d.sampled, sampledInput{input: len(d.inputs), parent: sc,
					topic: m.Topic, partition: m.Partition, offset: m.Offset, decoded: now})
			}
		}
		d.inputs = append(d.inputs, in)
	}
	return d
}

// inflight is a batch being applied; done closes when apply returned,
// passed when the batch handed its turn to the next one.
type inflight struct {
	d      decoded
	res    hub.ApplyResult
	err    error
	done   chan struct{}
	passed chan struct{}
}

// applyInOrder applies up to Concurrency batches at once (the store keeps
// concurrent batches consistent) and commits their offsets strictly in
// fetch order, so that a committed offset never covers an unapplied record.
// When ctx ends it starts no more batches and waits for those in flight,
// for up to ShutdownGrace.
//
// Each batch is applied with a turn (hub.WithTurn) that the batch fetched
// before it passes on once the store holds its locks: history sections and
// notifications depend on the order a person's events take effect in, so
// one partition's records must reach the store in offset order, while the
// work before the store's locks (DLQ writes, connecting) still overlaps.
// A batch also passes its turn when apply returns, so that one that failed
// or never reached the store does not hold up the next.
func (c *Consumer) applyInOrder(ctx context.Context, batches <-chan decoded) error {
	// Batches are applied and committed under work, not ctx: a stop
	// (ctx done) lets the batches in flight finish, since their rejects
	// may already be in the DLQ and an uncommitted batch would copy them
	// again on the next run. work ends ShutdownGrace after ctx, or when
	// this returns.
	work, cancelWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelWork(nil)
	go func() {
		select {
		case <-work.Done():
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(c.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-work.Done():
		case <-t.C:
			cancelWork(errShutdownGrace)
		}
	}()

	sem := make(chan struct{}, c.cfg.Concurrency)
	queue := make(chan *inflight, c.cfg.Concurrency)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for f := range queue {
			var err error
			select {
			case <-f.done:
				err = f.err
				if err == nil {
					err = c.commit(work, f.d, f.res)
				}
			case <-work.Done():
				// A store that does not return when its context ends:
				// the batch is given up, its goroutine left behind.
				err = context.Cause(work)
			}
			<-sem
			if err != nil {
				errc <- err
				for range queue { // drain: nothing more is committed
				}
				return
			}
		}
	}()
	var err error
	var prev <-chan struct{} // the turn of the batch before: nil for the first
loop:
	for {
		// Once stopping, no batch starts: one fetched but not started
		// wrote nothing yet, and the next run reads it again.
		var b decoded
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case next, ok := <-batches:
			if !ok {
				break loop
			}
			b = next
		}
		select {
		case sem <- struct{}{}:
		case err = <-errc:
		case <-ctx.Done():
		}
		if err != nil || ctx.Err() != nil {
			break
		}
		f := &inflight{d: b, done: make(chan struct{}), passed: make(chan struct{})}
		turn := hub.WithTurn(work, prev, sync.OnceFunc(func() { close(f.passed) }))
		prev = f.passed
		go func() {
			defer close(f.done)
			defer hub.PassTurn(turn)
			// A batch that never reached the store (only rejects, or
			// its DLQ write failed) takes its turn before passing it on,
			// or the next batch could overtake the one before this; the
			// error is work's, which ends every batch.
			defer func() { _ = hub.AwaitTurn(turn) }()
			f.res, f.err = c.apply(turn, f.d)
		}()
		queue <- f
	}
	close(queue)
	if cerr := <-errc; err == nil {
		err = cerr
	}
	if err != nil && errors.Is(context.Cause(work), errShutdownGrace) {
		c.cfg.Logger.Error("stopping ingest: the batches in flight were not applied and committed within the shutdown grace period; "+
			"their records are read again on the next start, and their rejects copied to the DLQ again",
			"grace", c.cfg.ShutdownGrace, "err", err)
		// Still ctx's error: the consumer stopped, as asked, and the
		// log says what it left undone.
		err = fmt.Errorf("applying the batches in flight at shutdown: %w after %s: %w", errShutdownGrace, c.cfg.ShutdownGrace, ctx.Err())
	}
	return err
}

// errShutdownGrace ends the apply and commit of the batches in flight when
// a stop waited Config.ShutdownGrace for them.
var errShutdownGrace = errors.New("shutdown grace period passed")

// apply writes a batch's rejects to the DLQ and applies the rest.
func (c *Consumer) apply(ctx context.Context, d decoded) (res hub.ApplyResult, err error) {
	batch, inputs, rejects := d.batch, d.inputs, d.rejects
	ctx, span := c.cfg.Tracer.Start(ctx, "ingest batch", trace.WithLinks(d.links...),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(batch)), attribute.String("messaging.system", "kafka")))
	defer span.End()
	events := c.startEventSpans(span.SpanContext(), d)
	defer func() { endEventSpans(events, res, err) }()

	if len(rejects) > 0 {
		spans := c.startRejectSpans(span.SpanContext(), d.sampledRejects)
		err := c.writeRejects(ctx, rejects)
		endRejectSpans(spans, err)
		if err != nil {
			return hub.ApplyResult{}, err
		}
	}
	if len(inputs) > 0 {
		commits := c.startCommitSpans(events, inputs)
		start := time.Now()
		attempts := 0
		// Every attempt runs with the batch's turn (see applyInOrder):
		// one that fails before the store took its locks keeps the next
		// batch waiting, and the retry still comes first. One that fails
		// after the store passed the turn (PostgreSQL: at or after writing
		// history, e.g. the connection breaking at commit; memdb passes
		// it only once committed) may be applied again after the next
		// batch; holding the turn until Apply returned would
		// close that gap but serialize the batches' transactions.
		err := retry(ctx, c.cfg.Logger, "applying batch", func() error {
			attempts++
			t0 := time.Now()
			var err error
			res, err = c.store.Apply(ctx, inputs)
			if ctx.Err() == nil {
				c.applyStall.note(err)
			}
			opt := c.metrics.storeOK
			if err != nil {
				opt = c.metrics.storeFailed
			}
			c.metrics.storeDuration.Record(ctx, time.Since(t0).Seconds(), opt)
			return err
		})
		endCommitSpans(commits, attempts, err)
		if err != nil {
			return res, err
		}
		c.metrics.applyDuration.Record(ctx, time.Since(start).Seconds())
	}
	return res, nil
}

// startEventSpans starts an "ingest <topic>" span for each sampled input,
// a child of its record's trace context and linked to the batch span.
// The spans start when the input was decoded.
func (c *Consumer) startEventSpans(batch trace.SpanContext, d decoded) []eventSpan {
	if len(d.sampled) == 0 {
		return nil
	}
	out := make([]eventSpan, 0, len(d.sampled))
	for _, si := range d.sampled {
		ev := d.inputs[si.input].Event
		ctx, span := c.startRecordSpan(batch, si.parent, si.topic, si.partition, si.offset, si.decoded)
		if !span.IsRecording() { // a tracer that records nothing: leave the record's context as it is
			span.End()
			continue
		}
		// A department may build its event ids from citizen IDs.
		span.SetAttributes(
			attribute.String("messaging.message.id", citizenid.MaskText(ev.ID)),
			attribute.String("cloudevents.event_id", citizenid.MaskText(ev.ID)),
			attribute.String("cloudevents.event_source", string(ev.Source)),
			attribute.String("cloudevents.event_type", string(ev.Type)),
		)
		out = append(out, eventSpan{ctx: ctx, span: span, input: si.input})
	}
	return out
}

// startRecordSpan starts the "ingest <topic>" span of a record with a
// sampled trace context: a child of that context, linked to the batch
// span, starting when the record was decoded.
func (c *Consumer) startRecordSpan(batch, parent trace.SpanContext, topic string, partition int, offset int64, decoded time.Time) (context.Context, trace.Span) {
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	// Never the record key nor the event's subject: both are the
	// citizen ID.
	return c.cfg.Tracer.Start(ctx, "ingest "+topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithTimestamp(decoded), trace.WithLinks(trace.Link{SpanContext: batch}),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.operation.name", "ingest"),
			attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.destination.partition.id", strconv.Itoa(partition)),
			attribute.Int64("messaging.kafka.offset", offset),
			attribute.String("messaging.consumer.group.name", c.cfg.GroupID),
		))
}

// startRejectSpans starts the "ingest <topic>" span of each rejected
// record with a sampled trace context, so that the department following
// its event sees in its trace that the hub refused it, and why; the span
// ends once the record's copy is in the DLQ.
func (c *Consumer) startRejectSpans(batch trace.SpanContext, rejects []sampledReject) []trace.Span {
	if len(rejects) == 0 {
		return nil
	}
	spans := make([]trace.Span, 0, len(rejects))
	for _, r := range rejects {
		_, span := c.startRecordSpan(batch, r.parent, r.topic, r.partition, r.offset, r.decoded)
		span.SetAttributes(
			attribute.String(attrOutcome, outcomeRejected),
			attribute.String("pophub.reject.reason", r.reason),
			attribute.String("pophub.reject.field", r.field),
		)
		if r.eventID != "" {
			span.SetAttributes(attribute.String("messaging.message.id", r.eventID), attribute.String("cloudevents.event_id", r.eventID))
		}
		span.SetStatus(codes.Error, "rejected: "+r.reason)
		spans = append(spans, span)
	}
	return spans
}

func endRejectSpans(spans []trace.Span, err error) {
	for _, span := range spans {
		if err != nil {
			span.RecordError(err)
		}
		span.End()
	}
}

// attrOutcome is the attribute saying what became of a record, on its
// "ingest <topic>" span: outcomeApplied, outcomeDuplicate (its (source,
// id) was applied before: it changed nothing and raises no
// notification) or outcomeRejected (copied to the DLQ).
const (
	attrOutcome      = "pophub.outcome"
	outcomeApplied   = "applied"
	outcomeDuplicate = "duplicate"
	outcomeRejected  = "rejected"
)

// eventSpan is a sampled input's "ingest <topic>" span and its context.
type eventSpan struct {
	ctx   context.Context
	span  trace.Span
	input int
}

// startCommitSpans starts a "store commit" span under each event span and
// puts its context into the input's trace context, which the store copies
// onto the event's outbox entries.
func (c *Consumer) startCommitSpans(events []eventSpan, inputs []hub.Input) []trace.Span {
	if len(events) == 0 {
		return nil
	}
	spans := make([]trace.Span, len(events))
	size := attribute.Int("pophub.store.batch.size", len(inputs))
	for i, e := range events {
		ctx, span := c.cfg.Tracer.Start(e.ctx, "store commit", trace.WithAttributes(size))
		tc := propagation.MapCarrier{}
		propagator.Inject(ctx, tc)
		inputs[e.input].Trace = tc
		spans[i] = span
	}
	return spans
}

func endCommitSpans(spans []trace.Span, attempts int, err error) {
	for _, span := range spans {
		if attempts > 1 {
			span.SetAttributes(attribute.Int("pophub.store.attempts", attempts))
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "applying batch")
		}
		span.End()
	}
}

func endEventSpans(events []eventSpan, res hub.ApplyResult, err error) {
	for _, e := range events {
		switch {
		case err != nil:
			e.span.SetStatus(codes.Error, "applying batch")
		case isDuplicate(res, e.input):
			e.span.SetAttributes(attribute.String(attrOutcome, outcomeDuplicate))
		default:
			e.span.SetAttributes(attribute.String(attrOutcome, outcomeApplied))
		}
		e.span.End()
	}
}

// isDuplicate reports whether the store counted input i as a duplicate.
func isDuplicate(res hub.ApplyResult, i int) bool {
	_, found := slices.BinarySearch(res.DuplicateAt, i)
	return found
}

// commit hands the batch's offsets to the reader and counts it.
func (c *Consumer) commit(ctx context.Context, d decoded, res hub.ApplyResult) error {
	if err := retry(ctx, c.cfg.Logger, "committing offsets", func() error {
		return c.reader.CommitMessages(ctx, d.batch...)
	}); err != nil {
		return err
	}

	applied, dups := d.tally.split(d.inputs, res)
	c.metrics.batchSize.Record(ctx, int64(len(d.batch)))
	rejectedBy := map[string]int64{}
	for src, st := range d.tally {
		attr := attribute.String("source", string(src))
		c.metrics.consumed.Add(ctx, st.consumed, metric.WithAttributes(attr))
		if n := applied[src]; n > 0 {
			c.metrics.applied.Add(ctx, n, metric.WithAttributes(attr))
		}
		if n := dups[src]; n > 0 {
			c.metrics.duplicates.Add(ctx, n, metric.WithAttributes(attr))
		}
		for reason, n := range st.rejected {
			c.metrics.rejected.Add(ctx, n, metric.WithAttributes(attribute.String("reason", reason), attr))
			rejectedBy[reason] += n
		}
		if n := st.control - st.aborted; n > 0 {
			c.metrics.skipped.Add(ctx, n, metric.WithAttributes(attribute.String("reason", skipControl), attr))
		}
		if st.aborted > 0 {
			c.metrics.skipped.Add(ctx, st.aborted, metric.WithAttributes(attribute.String("reason", skipAborted), attr))
		}
	}

	c.mu.Lock()
	c.counts.Applied += int64(res.Applied)
	c.counts.Duplicates += int64(res.Duplicates)
	for src, st := range d.tally {
		sc := c.counts.Sources[src]
		if sc.Rejected == nil {
			sc.Rejected = map[string]int64{}
		}
		sc.Consumed += st.consumed
		sc.Accepted += st.accepted
		sc.Skipped += st.control
		c.counts.Consumed += st.consumed
		c.counts.Skipped += st.control
		c.counts.Aborted += st.aborted
		sc.Applied += applied[src]
		sc.Duplicates += dups[src]
		for reason, n := range st.rejected {
			sc.Rejected[reason] += n
			c.counts.Rejected[reason] += n
		}
		c.counts.Sources[src] = sc
		c.counts.BySource[src] += st.consumed
	}
	c.mu.Unlock()
	if len(d.rejects) > 0 {
		// The first few by name, so that an operator can tell whose
		// records these are without reading the DLQ.
		c.cfg.Logger.Warn("rejected records to the DLQ", "count", len(d.rejects), "reasons", rejectedBy, "listed", len(d.listed))
		for _, r := range d.listed {
			c.cfg.Logger.Warn("rejected a record to the DLQ", "topic", r.topic, "partition", r.partition, "offset", r.offset,
				"reason", r.reason, "field", r.field, "event_id", r.eventID)
		}
	}
	for _, m := range d.aborts {
		c.cfg.Logger.Warn("a transaction on a source topic was aborted, and the hub has applied its records: "+
			"its Kafka client cannot tell them from committed ones. Ask the department which events of the "+
			"transaction it did not mean to send, and send corrections",
			"topic", m.Topic, "partition", m.Partition, "abort_marker_offset", m.Offset)
	}
	return nil
}

// DLQ record headers.
const (
	HeaderReason    = "pophub-reason"
	HeaderField     = "pophub-field"
	HeaderError     = "pophub-error"
	HeaderTopic     = "pophub-topic"
	HeaderPartition = "pophub-partition"
	HeaderOffset    = "pophub-offset"
	// HeaderDropped marks a copy too large for the DLQ and names what it
	// lacks: "value", or "key,value,headers" (the original record's key
	// and headers too). The original is at pophub-topic, pophub-partition
	// and pophub-offset only until the topic's retention deletes it; the
	// DLQ tools refuse to replay such a copy.
	HeaderDropped = "pophub-dropped"
	// HeaderReplayOf names the DLQ record ("partition:offset") that
	// `pophub dlq replay` wrote a record back from. It is the one pophub-*
	// header a source record carries legitimately; a copy of a replayed
	// record that is rejected again carries it among the hub's headers.
	HeaderReplayOf = "pophub-replay-of"
)

// reservedPrefix starts the names of the headers the hub adds to DLQ
// copies. A department's own header of such a name is kept on the copy
// renamed with renamedPrefix in front ("orig-pophub-dropped").
const (
	reservedPrefix = "pophub-"
	renamedPrefix  = "orig-"
)

// dlqRecord copies a rejected record with headers naming why and whence.
// The error text never contains a citizen ID. The field and error text are
// clipped (maxRejectField, maxRejectError), so a copy outweighs the
// original by a small fixed amount only (plus five bytes per renamed
// header, below).
//
// The record's headers are the department's to fill, and the DLQ tools
// read the pophub-* ones: a department's pophub-dropped would make `dlq
// replay` refuse a whole copy, its pophub-reason would show as the hub's.
// So the original's pophub-* headers are renamed (see reservedPrefix),
// except a well-formed pophub-replay-of (the last one), which moves into
// the hub's headers. Replay puts it there, but a department can send one
// too and ingest cannot tell the two apart: the DLQ tools take it for a
// claim, a replay only when their replay ledger confirms it, and replay
// an unconfirmed one back as the department's own header. The hub's
// headers follow the original's, starting with pophub-reason.
//
// An empty (not null) key, value or header value is null on the copy:
// kafka-go v0.4's reader decodes both as nil, so the hub cannot tell them
// apart (its writer would keep the difference).
func dlqRecord(m kafka.Message, re *schemas.RejectError) kafka.Message {
	replayOf := -1
	for i, h := range m.Headers {
		if h.Key == HeaderReplayOf && validReplayOf(string(h.Value)) {
			replayOf = i
		}
	}
	headers := make([]kafka.Header, 0, len(m.Headers)+7)
	for i, h := range m.Headers {
		switch {
		case i == replayOf:
		case strings.HasPrefix(h.Key, reservedPrefix):
			headers = append(headers, kafka.Header{Key: renamedPrefix + h.Key, Value: h.Value})
		default:
			headers = append(headers, h)
		}
	}
	// The error text is built from the clipped field, so that the
	// detail after a long field name survives.
	field := clipText(re.Field, maxRejectField)
	text := clipText((&schemas.RejectError{Reason: re.Reason, Field: field, Detail: re.Detail}).Error(), maxRejectError)
	headers = append(headers,
		kafka.Header{Key: HeaderReason, Value: []byte(re.Reason)},
		kafka.Header{Key: HeaderField, Value: []byte(field)},
		kafka.Header{Key: HeaderError, Value: []byte(text)},
		kafka.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	if replayOf >= 0 {
		headers = append(headers, kafka.Header{Key: HeaderReplayOf, Value: m.Headers[replayOf].Value})
	}
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: headers, Time: time.Now()}
}

// The longest pophub-field and pophub-error texts a DLQ copy carries.
// Both come from the record (a field name is the department's JSON member
// name, which may be any length), and a copy must not outgrow the
// original by more than a small fixed amount: Kafka took the original, and
// the DLQ must take the copy with its value (the copy is dropped only
// above dlqMaxBytes). The field's start is what a producer searches its
// code for; the error text keeps the detail after a long field.
const (
	maxRejectField = 256
	maxRejectError = 1024
)

// clipText returns s, or if it is longer than limit bytes its start up
// to limit bytes, cut on a UTF-8 boundary, followed by "…(N bytes)" naming the
// length of s.
func clipText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// validReplayOf reports whether v names a DLQ record as Replay writes it:
// "partition:offset", both decimal.
func validReplayOf(v string) bool {
	p, o, ok := strings.Cut(v, ":")
	_, perr := strconv.ParseUint(p, 10, 31)
	_, oerr := strconv.ParseUint(o, 10, 63)
	return ok && perr == nil && oerr == nil
}

// retry runs op until it succeeds or ctx ends, backing off exponentially
// from 50ms to 5s. Ingest must not skip a record, so it waits out outages.
// Each failed attempt is logged at warn with its cause, and a success
// after failures at info, so that the log says when ingest went on.
func retry(ctx context.Context, log *slog.Logger, what string, op func() error) error {
	backoff := 50 * time.Millisecond
	var first time.Time
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			if attempt > 1 {
				log.Info("recovered", "op", what, "attempts", attempt, "after", time.Since(first).Round(time.Millisecond))
			}
			return nil
		}
		if attempt == 1 {
			first = time.Now()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("retrying", "op", what, "attempt", attempt, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// Close stops consuming and sends the offsets handed to the reader to the
// broker; after Run returned, so that the batches Run finished are
// committed. Safe to call twice.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true) // before the reader answers io.EOF
		c.closeErr = errors.Join(c.reader.Close(), c.dlq.Close())
		// The writer leaves a transport given to it open.
		CloseTransport(c.dlq.Transport)
		c.lag.close()
	})
	return c.closeErr
}
