package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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

// EnsureTopics creates the eight source topics and the DLQ topic where they
// are missing, authenticating with m and speaking TLS with tc when not
// nil. It is idempotent; existing topics are left as they are.
func EnsureTopics(ctx context.Context, brokers []string, partitions int, m sasl.Mechanism, tc *tls.Config) error {
	if partitions < 1 {
		partitions = 1
	}
	var configs []kafka.TopicConfig
	for _, t := range append(schemas.Topics(), schemas.DLQTopic) {
		configs = append(configs, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: -1})
	}
	rt := Transport(m, tc)
	defer CloseTransport(rt)
	resp, err := client(brokers, rt).CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: configs})
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	var errs []error
	for topic, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("creating topic %s: %w", topic, err))
		}
	}
	return errors.Join(errs...)
}

// Ping asks the brokers, in the Kafka protocol and with the consumer's
// credentials (TLS, SASL), for the metadata of the source topics: ready
// means a broker answers as Kafka, lets the hub in, and has the topics,
// each with a leader for every partition. A TCP connection alone would
// pass a wrong port or a broker that refuses the hub's credentials.
func (c *Consumer) Ping(ctx context.Context) error {
	md, err := c.lag.client.Metadata(ctx, &kafka.MetadataRequest{Topics: c.cfg.Topics})
	if err != nil {
		return fmt.Errorf("asking Kafka for the source topics: %w", err)
	}
	var errs []error
	for _, t := range md.Topics {
		if t.Error != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Name, t.Error))
			continue
		}
		for _, p := range t.Partitions {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("topic %s partition %d: %w", t.Name, p.ID, p.Error))
			}
		}
	}
	return errors.Join(errs...)
}

// lagTracker periodically computes, per source partition, the high
// watermark minus the group's committed offset, and exposes it as the
// pophub_consumer_lag gauge.
type lagTracker struct {
	cfg Config
	// client is built once and reused by every update: with TLS or SASL
	// it has a transport of its own, and one per update leaked its
	// goroutines and connections every five seconds.
	client *kafka.Client
	mu     sync.Mutex
	lag    map[string]map[int]int64
}

func newLagTracker(cfg Config, m metric.Meter) (*lagTracker, error) {
	t := &lagTracker{cfg: cfg, client: client(cfg.Brokers, Transport(cfg.SASL, cfg.TLS)), lag: map[string]map[int]int64{}}
	_, err := m.Int64ObservableGauge("pophub.consumer.lag", metric.WithUnit("{event}"),
		metric.WithDescription("Records in a source partition not yet committed by the hub's consumer group."),
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

// Lag returns the last measured lag per topic and partition.
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

// close closes the tracker's connections; a later update opens new ones.
func (t *lagTracker) close() { CloseTransport(t.client.Transport) }

func (t *lagTracker) update(ctx context.Context) error {
	cl := t.client
	meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: t.cfg.Topics})
	if err != nil {
		return fmt.Errorf("reading metadata: %w", err)
	}
	ends := map[string][]kafka.OffsetRequest{}
	parts := map[string][]int{}
	for _, topic := range meta.Topics {
		for _, p := range topic.Partitions {
			ends[topic.Name] = append(ends[topic.Name], kafka.LastOffsetOf(p.ID))
			parts[topic.Name] = append(parts[topic.Name], p.ID)
		}
	}
	hw, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: ends})
	if err != nil {
		return fmt.Errorf("listing offsets: %w", err)
	}
	committed, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: t.cfg.GroupID, Topics: parts})
	if err != nil {
		return fmt.Errorf("fetching committed offsets: %w", err)
	}
	lag := map[string]map[int]int64{}
	for topic, offs := range hw.Topics {
		lag[topic] = map[int]int64{}
		done := map[int]int64{}
		for _, c := range committed.Topics[topic] {
			done[c.Partition] = max(c.CommittedOffset, 0)
		}
		for _, o := range offs {
			lag[topic][o.Partition] = max(o.LastOffset-done[o.Partition], 0)
		}
	}
	t.mu.Lock()
	t.lag = lag
	t.mu.Unlock()
	return nil
}
