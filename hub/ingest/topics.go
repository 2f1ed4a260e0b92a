package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/pophub/pophub/schemas"
)

// client is a kafka-go client of brokers over rt (nil: kafka-go's default
// transport).
func client(brokers []string, rt kafka.RoundTripper) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: rt}
}

// Transport is the kafka-go transport for writers and clients that
// authenticate with m and speak TLS with tc; with both nil it is nil,
// kafka-go's default transport.
//
// A transport of its own keeps a metadata goroutine and pooled connections
// per broker set until closed with CloseTransport; build one per long-lived
// writer or client, not one per request.
func Transport(m sasl.Mechanism, tc *tls.Config) kafka.RoundTripper {
	if m == nil && tc == nil {
		return nil
	}
	return &kafka.Transport{SASL: m, TLS: tc, DialTimeout: 10 * time.Second}
}

// CloseTransport closes the connections and stops the goroutines of a
// transport from Transport; nil (the shared default) is left alone. The
// transport stays usable: a later request connects again.
func CloseTransport(rt kafka.RoundTripper) {
	if t, ok := rt.(*kafka.Transport); ok && t != nil {
		t.CloseIdleConnections()
	}
}

// dialer is the kafka-go dialer for readers that authenticate with m and
// speak TLS with tc.
func dialer(m sasl.Mechanism, tc *tls.Config) *kafka.Dialer {
	if m == nil && tc == nil {
		return nil
	}
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, SASLMechanism: m, TLS: tc}
}

// dlqTopicConfigs keep rejected records until an operator deletes them:
// they wait in the DLQ until their cause is fixed and they are replayed,
// which may take longer than a broker's default retention (seven days).
var dlqTopicConfigs = []kafka.ConfigEntry{
	{ConfigName: "retention.ms", ConfigValue: "-1"},
	{ConfigName: "retention.bytes", ConfigValue: "-1"},
}

// sourceTopicConfigs have the broker stamp each record with the time it
// appended it: a department's client may set a record's timestamp to its
// business time (MirrorMaker 2, Kafka Streams and explicit timestamps in
// the Java, .NET and kafkajs clients do), and reading the topics again
// from a point in time (pophub offsets rewind --to-time) must find every
// record appended after it.
var sourceTopicConfigs = []kafka.ConfigEntry{{ConfigName: TimestampTypeConfig, ConfigValue: "LogAppendTime"}}

// TimestampTypeConfig is the topic configuration that says whose time a
// record's timestamp is: the producer's (CreateTime, Kafka's default) or
// the broker's (LogAppendTime).
const TimestampTypeConfig = "message.timestamp.type"

// EnsureTopics creates the eight source topics and the DLQ topic where they
// are missing, authenticating with m and speaking TLS with tc when not
// nil. It is idempotent; existing topics are left as they are. The source
// topics get the broker's defaults but for timestamps of the broker's
// (sourceTopicConfigs); the DLQ keeps its records for ever
// (dlqTopicConfigs). Consumer.Run warns when an existing DLQ does not.
func EnsureTopics(ctx context.Context, brokers []string, partitions int, m sasl.Mechanism, tc *tls.Config) error {
	if partitions < 1 {
		partitions = 1
	}
	var configs []kafka.TopicConfig
	for _, t := range schemas.Topics() {
		configs = append(configs, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: -1,
			ConfigEntries: sourceTopicConfigs})
	}
	configs = append(configs, kafka.TopicConfig{Topic: schemas.DLQTopic, NumPartitions: partitions, ReplicationFactor: -1,
		ConfigEntries: dlqTopicConfigs})
	rt := Transport(m, tc)
	defer CloseTransport(rt)
	cl := client(brokers, rt)
	for attempt := 1; ; attempt++ {
		resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: configs})
		var errs []error
		var again []kafka.TopicConfig
		if err != nil {
			errs = append(errs, fmt.Errorf("creating topics: %w", err))
			if transientCreate(err) {
				again = configs
			}
		} else {
			for _, c := range configs {
				if err := resp.Errors[c.Topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
					errs = append(errs, fmt.Errorf("creating topic %s: %w", c.Topic, err))
					if transientCreate(err) {
						again = append(again, c)
					}
				}
			}
		}
		if len(errs) == 0 || len(again) < len(errs) || attempt == createAttempts {
			return errors.Join(errs...)
		}
		configs = again
		select {
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

// createAttempts bounds how often EnsureTopics asks again after answers
// that a cluster gives while it starts or moves its controller (about 5 s
// in all), so that such a moment does not stop the hub from starting.
const createAttempts = 10

// transientCreate reports whether a topic creation that failed with err
// may succeed when asked again: the client did not know the controller
// yet (BrokerNotAvailable), or the cluster said so (kafka-go's temporary
// errors, NotController among them).
func transientCreate(err error) bool {
	var ke kafka.Error
	return errors.As(err, &ke) && (ke == kafka.BrokerNotAvailable || ke.Temporary())
}

// ProducerTimed lists the topics whose records carry their producers'
// timestamps (message.timestamp.type CreateTime), not the broker's.
func ProducerTimed(ctx context.Context, cl *kafka.Client, topics []string) ([]string, error) {
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: t, ConfigNames: []string{TimestampTypeConfig}})
	}
	resp, err := cl.DescribeConfigs(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("describing topics' %s: %w", TimestampTypeConfig, err)
	}
	var out []string
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("describing topic %s: %w", r.ResourceName, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == TimestampTypeConfig && e.ConfigValue != "LogAppendTime" {
				out = append(out, r.ResourceName)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// dlqRetention is the DLQ topic's retention.ms and retention.bytes as the
// broker reports them; -1 means no limit.
func dlqRetention(ctx context.Context, cl *kafka.Client) (ms, bytes int64, err error) {
	resp, err := cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: schemas.DLQTopic, ConfigNames: []string{"retention.ms", "retention.bytes"},
	}}})
	if err != nil {
		return 0, 0, fmt.Errorf("describing topic %s: %w", schemas.DLQTopic, err)
	}
	ms, bytes = -1, -1
	for _, r := range resp.Resources {
		if r.Error != nil {
			return 0, 0, fmt.Errorf("describing topic %s: %w", schemas.DLQTopic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			n, err := strconv.ParseInt(e.ConfigValue, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("reading %s of topic %s: %w", e.ConfigName, schemas.DLQTopic, err)
			}
			switch e.ConfigName {
			case "retention.ms":
				ms = n
			case "retention.bytes":
				bytes = n
			}
		}
	}
	return ms, bytes, nil
}

// warnIfDLQExpires logs a warning when the DLQ topic deletes records by
// age or size: a reject deleted before it is replayed is lost to the DLQ
// tools. The topic may be the operator's, so it is reported, not changed.
func (c *Consumer) warnIfDLQExpires(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	ms, bytes, err := dlqRetention(ctx, c.lag.client)
	switch {
	case errors.Is(ctx.Err(), context.Canceled): // stopping
	case err != nil:
		c.cfg.Logger.Warn("checking that the DLQ keeps rejected records", "topic", schemas.DLQTopic, "err", err)
	case ms >= 0 || bytes >= 0:
		args := []any{"topic", schemas.DLQTopic}
		if ms >= 0 {
			args = append(args, "retention", (time.Duration(ms) * time.Millisecond).String())
		}
		if bytes >= 0 {
			args = append(args, "retention_bytes", bytes)
		}
		c.cfg.Logger.Warn("the DLQ topic deletes rejected records at a limit, replayed or not; "+
			"set retention.ms=-1 and retention.bytes=-1 on it to keep them until an operator deletes them", args...)
	}
}

// probeTimeout bounds each request to the brokers that checks on them
// (Ping, the DLQ's retention): a broker that does not answer within it
// is not ready.
const probeTimeout = 5 * time.Second

// Ping asks the brokers, in the Kafka protocol and with the consumer's
// credentials (TLS, SASL), for the source topics: ready means each topic
// has a leader for every partition, and every leader answers as Kafka,
// lets the hub in and has its partition. A TCP connection alone would
// pass a wrong port or a broker that refuses the hub's credentials.
//
// Ingest can also stop while the brokers answer: not ready either is a
// group whose committed offset lies beyond a partition's end (as last
// measured by the lag tracker), a DLQ that has refused the rejects for
// longer than dlqGrace, which ingest waits behind, or a group whose
// members apply to different stores, as this instance found when it last
// assigned the partitions (groupstore.go).
//
// kafka-go answers Metadata requests from its transport's cache, which
// goes on listing brokers that have stopped, so the leaders are asked for
// their partitions' end offsets as well: that request always goes to them.
func (c *Consumer) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	md, err := c.lag.client.Metadata(ctx, &kafka.MetadataRequest{Topics: c.cfg.Topics})
	if err != nil {
		return fmt.Errorf("asking Kafka for the source topics: %w", err)
	}
	var errs []error
	ends := map[string][]kafka.OffsetRequest{}
	for _, t := range md.Topics {
		if t.Error != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Name, t.Error))
			continue
		}
		for _, p := range t.Partitions {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("topic %s partition %d: %w", t.Name, p.ID, p.Error))
				continue
			}
			ends[t.Name] = append(ends[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	if len(ends) == 0 {
		return errors.Join(errs...)
	}
	offs, err := c.lag.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: ends})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("asking Kafka for the source partitions: %w", err))...)
	}
	return errors.Join(append(errs, offsetErrors(offs), c.lag.problem(), c.dlqProblem(), c.stores.problem())...)
}

// offsetErrors joins the partitions' errors of a ListOffsets response.
func offsetErrors(resp *kafka.ListOffsetsResponse) error {
	var errs []error
	for _, topic := range slices.Sorted(maps.Keys(resp.Topics)) {
		for _, p := range resp.Topics[topic] {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("topic %s partition %d: %w", topic, p.Partition, p.Error))
			}
		}
	}
	return errors.Join(errs...)
}

// lagTracker periodically computes, per source partition, the high
// watermark minus the group's committed offset (or the partition's first
// offset, when retention deleted records the group had not read), notes
// partitions the group cannot read (see partitionProblem), and exposes the lag as the
// pophub_consumer_lag gauge, and the time of the last measurement as
// pophub_consumer_lag_timestamp_seconds.
//
// A lag that cannot be measured is unknown, not what it was: when an
// update fails, the lag is dropped (the gauge's series disappear and Lag
// is empty) until an update succeeds, and the timestamp stops advancing.
type lagTracker struct {
	cfg Config
	// client is built once and reused by every update: with TLS or SASL
	// it has a transport of its own, and one per update leaked its
	// goroutines and connections every five seconds.
	client *kafka.Client
	mu     sync.Mutex
	// lag is the last update's measurement; nil when it failed.
	lag map[string]map[int]int64
	// measuredAt is when an update last succeeded (zero before the
	// first); err is why the last update failed (nil when it did not).
	measuredAt time.Time
	err        error
	// problems are the source partitions the group cannot read, as
	// last measured; reported holds their texts, logged once each
	// while they last.
	problems []partitionProblem
	reported map[string]bool
	// held are the partitions whose committed records reach their last
	// stable offset, below the high watermark: the rest waits behind a
	// transaction its producer has not ended (see holds).
	held map[topicPartition]*heldPartition
}

// committedOffset is the group's committed offset of a partition, -1
// for none.
func (t *lagTracker) committedOffset(ctx context.Context, topic string, partition int) (int64, error) {
	resp, err := t.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: t.cfg.GroupID, Topics: map[string][]int{topic: {partition}}})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return 0, fmt.Errorf("fetching the committed offset of %s/%d: %w", topic, partition, err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Partition == partition {
			if p.Error != nil {
				return 0, fmt.Errorf("fetching the committed offset of %s/%d: %w", topic, partition, p.Error)
			}
			return p.CommittedOffset, nil
		}
	}
	return -1, nil
}

func newLagTracker(cfg Config, m metric.Meter) (*lagTracker, error) {
	t := &lagTracker{cfg: cfg, client: client(cfg.Brokers, Transport(cfg.SASL, cfg.TLS))}
	_, err := m.Int64ObservableGauge("pophub.consumer.lag", metric.WithUnit("{event}"),
		metric.WithDescription("Records in a source partition not yet committed by the hub's consumer group; absent while the lag cannot be measured."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			t.mu.Lock()
			defer t.mu.Unlock()
			for topic, parts := range t.lag {
				for p, n := range parts {
					o.Observe(n, metric.WithAttributes(attribute.String("topic", topic), attribute.Int("partition", p)))
				}
			}
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("creating lag gauge: %w", err)
	}
	_, err = m.Float64ObservableGauge("pophub.consumer.lag.timestamp", metric.WithUnit("s"),
		metric.WithDescription("When the consumer lag was last measured, in seconds since the Unix epoch; it stops advancing while the lag cannot be measured."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			t.mu.Lock()
			defer t.mu.Unlock()
			if !t.measuredAt.IsZero() {
				o.Observe(float64(t.measuredAt.UnixMilli()) / 1000)
			}
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("creating lag timestamp gauge: %w", err)
	}
	return t, nil
}

// run updates the lag every five seconds until ctx ends, then closes the
// tracker's connections.
func (t *lagTracker) run(ctx context.Context) {
	defer t.close()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		if err := t.update(ctx); err != nil && ctx.Err() == nil {
			t.cfg.Logger.Debug("measuring consumer lag", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Lag returns the lag per topic and partition as last measured; it is
// empty before the first measurement and while the lag cannot be measured
// (LagMeasured says since when and why).
func (c *Consumer) Lag() map[string]map[int]int64 {
	c.lag.mu.Lock()
	defer c.lag.mu.Unlock()
	out := make(map[string]map[int]int64, len(c.lag.lag))
	for t, parts := range c.lag.lag {
		out[t] = make(map[int]int64, len(parts))
		for p, n := range parts {
			out[t][p] = n
		}
	}
	return out
}

// LagMeasured returns when the lag was last measured (zero before the
// first measurement) and, when the latest attempt failed, why: the lag is
// then unknown, and Lag is empty.
func (c *Consumer) LagMeasured() (at time.Time, err error) {
	c.lag.mu.Lock()
	defer c.lag.mu.Unlock()
	return c.lag.measuredAt, c.lag.err
}

// close closes the tracker's connections; a later update opens new ones.
func (t *lagTracker) close() { CloseTransport(t.client.Transport) }

// update measures the lag and records the outcome: the new lag, or no lag
// and the error.
func (t *lagTracker) update(ctx context.Context) error {
	lag, problems, err := t.measure(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lag, t.err = lag, err
	if err == nil {
		t.measuredAt = time.Now()
		t.problems = problems
		t.report(problems)
	}
	return err
}

// problem is why the group cannot read some source partition, as last
// measured; nil when it can.
func (t *lagTracker) problem() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, p := range t.problems {
		if p.err == nil { // Ping asks for missing topics itself
			errs = append(errs, p)
		}
	}
	return errors.Join(errs...)
}

// measure asks the brokers for every source partition's first offset and
// high watermark and the group's committed offsets. A partition whose
// leader does not answer fails the whole measurement rather than showing a
// lag of zero.
//
// The lag is the high watermark minus the committed offset or the first
// offset, whichever is higher: records that retention deleted will never
// be read, so they are not pending. A committed offset beyond the high
// watermark is reported as a problem (see problems) and counts no lag.
func (t *lagTracker) measure(ctx context.Context) (map[string]map[int]int64, []partitionProblem, error) {
	cl := t.client
	meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: t.cfg.Topics})
	if err != nil {
		return nil, nil, fmt.Errorf("reading metadata: %w", err)
	}
	var problems []partitionProblem
	ends := map[string][]kafka.OffsetRequest{}
	starts := map[string][]kafka.OffsetRequest{}
	parts := map[string][]int{}
	for _, topic := range meta.Topics {
		if topic.Error != nil {
			problems = append(problems, partitionProblem{topic: topic.Name, partition: -1, err: topic.Error})
			continue
		}
		for _, p := range topic.Partitions {
			ends[topic.Name] = append(ends[topic.Name], kafka.LastOffsetOf(p.ID))
			starts[topic.Name] = append(starts[topic.Name], kafka.FirstOffsetOf(p.ID))
			parts[topic.Name] = append(parts[topic.Name], p.ID)
		}
	}
	// Committed offsets first, ends after: an end only grows, so a commit
	// made between the two requests cannot look beyond an end read
	// before it.
	committed, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: t.cfg.GroupID, Topics: parts})
	if err != nil {
		return nil, nil, fmt.Errorf("fetching committed offsets: %w", err)
	}
	// A group that has not committed yet may not exist: its lag is all
	// of every partition.
	if err := committed.Error; err != nil && !errors.Is(err, kafka.GroupIdNotFound) {
		return nil, nil, fmt.Errorf("fetching committed offsets: %w", err)
	}
	// Two requests, not one asking for both offsets of each partition:
	// kafka-go's transport left a goroutine behind for every such request.
	hw, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: ends})
	if err != nil {
		return nil, nil, fmt.Errorf("listing offsets: %w", err)
	}
	first, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: starts})
	if err != nil {
		return nil, nil, fmt.Errorf("listing first offsets: %w", err)
	}
	// The last stable offsets, asked for after the high watermarks, so
	// that one is never above the other for a moment's commit. An error
	// only leaves transactions unseen this time.
	stable := map[topicPartition]int64{}
	if lso, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: ends, IsolationLevel: kafka.ReadCommitted}); err == nil {
		for topic, offs := range lso.Topics {
			for _, o := range offs {
				if o.Error == nil {
					stable[topicPartition{topic, o.Partition}] = o.LastOffset
				}
			}
		}
	}
	held := map[topicPartition]heldPartition{}
	// A topic deleted since kafka-go's client cached the metadata shows
	// here: it is a problem of its own, not a failed measurement.
	for topic, offs := range hw.Topics {
		for _, o := range offs {
			if errors.Is(o.Error, kafka.UnknownTopicOrPartition) {
				problems = append(problems, partitionProblem{topic: topic, partition: -1, err: o.Error})
				delete(hw.Topics, topic)
				delete(parts, topic)
				break
			}
		}
	}
	if err := offsetErrors(hw); err != nil {
		return nil, nil, fmt.Errorf("listing offsets: %w", err)
	}
	firstOf := map[topicPartition]int64{}
	for topic, offs := range first.Topics {
		for _, o := range offs {
			if o.Error == nil {
				firstOf[topicPartition{topic, o.Partition}] = o.FirstOffset
			}
		}
	}
	lag := map[string]map[int]int64{}
	for topic, offs := range hw.Topics {
		lag[topic] = map[int]int64{}
		done := map[int]int64{}
		for _, c := range committed.Topics[topic] {
			if c.Error != nil {
				return nil, nil, fmt.Errorf("fetching committed offsets of topic %s partition %d: %w", topic, c.Partition, c.Error)
			}
			done[c.Partition] = c.CommittedOffset // -1: none
		}
		for _, o := range offs {
			c, ok := done[o.Partition]
			if !ok {
				c = -1
			}
			if c > o.LastOffset {
				problems = append(problems, partitionProblem{topic: topic, partition: o.Partition, committed: c, end: o.LastOffset})
			}
			lag[topic][o.Partition] = max(o.LastOffset-max(c, firstOf[topicPartition{topic, o.Partition}], 0), 0)
			tp := topicPartition{topic, o.Partition}
			read := max(c, firstOf[tp]) // where the group reads: without a commit, the log start
			if lso, ok := stable[tp]; ok && lso < o.LastOffset && read >= lso {
				held[tp] = heldPartition{stable: lso, records: o.LastOffset - lso}
			}
		}
	}
	t.holds(held)
	return lag, problems, nil
}

// heldPartition is a partition whose records past its last stable offset
// wait behind an open transaction: the hub, reading committed records
// only, has read up to it.
type heldPartition struct {
	stable  int64 // the last stable offset: the open transaction's first record
	records int64 // records from it to the high watermark
	since   time.Time
	warned  bool
}

// heldWarning is how long records may wait behind an open transaction
// before the hub says so: longer than a department's transactions take,
// shorter than Kafka's transaction.timeout.ms (1 min by default; a broker
// allows up to 15).
const heldWarning = time.Minute

// holds records the partitions now held behind open transactions. A
// hold that lasts heldWarning is logged, once, naming the partition, the
// offset and the records waiting: kafka-go's reader reports each fetch
// that finds nothing before the transaction as an unexpected EOF (see
// readerError), which alone points at the broker or the network rather
// than at a department's producer. Its end is logged too.
func (t *lagTracker) holds(now map[topicPartition]heldPartition) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.held == nil {
		t.held = map[topicPartition]*heldPartition{}
	}
	for tp, h := range t.held {
		if n, ok := now[tp]; ok && n.stable == h.stable {
			h.records = n.records
			continue
		}
		if h.warned {
			t.cfg.Logger.Info("records no longer wait behind a Kafka transaction", "topic", tp.topic, "partition", tp.partition,
				"offset", h.stable, "waited", time.Since(h.since).Round(time.Second).String())
		}
		delete(t.held, tp)
	}
	for tp, n := range now {
		h := t.held[tp]
		if h == nil {
			n.since = time.Now()
			t.held[tp] = &n
			continue
		}
		if !h.warned && time.Since(h.since) >= t.cfg.heldWarning {
			h.warned = true
			t.cfg.Logger.Warn("records wait behind a Kafka transaction its producer has not ended: the hub reads committed records only, "+
				"and reads these once the producer commits or aborts, or the broker aborts it (transaction.timeout.ms); "+
				"ask the department whose topic it is", "topic", tp.topic, "partition", tp.partition, "offset", h.stable,
				"records", h.records, "since", h.since.UTC().Format(time.RFC3339))
		}
	}
}

// heldAt reports whether a partition's reads stop at offset because of an
// open transaction, as last measured.
func (t *lagTracker) heldAt(topic string, partition int, offset int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.held[topicPartition{topic, partition}]
	return h != nil && h.stable == offset
}

// partitionProblem is a source topic or partition the group cannot read:
// a topic the brokers do not know (partition -1, err), or a committed
// offset beyond the partition's end, where kafka-go waits for records that
// may never come, silently.
type partitionProblem struct {
	topic          string
	partition      int
	err            error
	committed, end int64
}

func (p partitionProblem) Error() string {
	if p.err != nil {
		return fmt.Sprintf("source topic %s cannot be read: %v", p.topic, p.err)
	}
	return fmt.Sprintf("topic %s partition %d: the group's committed offset %d is beyond the partition's end %d, so new records are not read until the partition grows past it",
		p.topic, p.partition, p.committed, p.end)
}

// report logs each problem that the previous measurement did not have.
func (t *lagTracker) report(problems []partitionProblem) {
	now := map[string]bool{}
	for _, p := range problems {
		key := p.Error()
		now[key] = true
		if t.reported[key] {
			continue
		}
		if p.err != nil {
			t.cfg.Logger.Error("a source topic cannot be read; while one is missing, kafka-go's group reader rejoins the group "+
				"over and over and may read none of the source topics: create the topic (pophub creates missing ones at start) "+
				"or leave it out of the consumed topics", "topic", p.topic, "err", p.err)
			continue
		}
		t.cfg.Logger.Error("the consumer group's committed offset is beyond the partition's end (the topic was recreated or "+
			"the offset set by hand); new records on it are not read: reset the group's offset for this partition with "+
			"the Kafka tools (kafka-consumer-groups.sh --group G --topic T:P --reset-offsets --to-earliest --execute, with the hub stopped)",
			"group", t.cfg.GroupID, "topic", p.topic, "partition", p.partition, "committed", p.committed, "end", p.end)
	}
	t.reported = now
}
