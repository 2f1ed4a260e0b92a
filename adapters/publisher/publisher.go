// Package publisher is the library a department system uses to publish its
// record changes to the hub.
//
// A Publisher validates each event locally exactly as the hub will (it
// encodes the event and judges it as schemas.Decode would judge that
// encoding: schemas.CheckEncoded), sends the valid ones to the
// department's topic pop.events.<source> keyed by the citizen ID with
// kafka-go, and reports a Result per event. Records are acknowledged by all
// in-sync replicas, retried, batched and compressed; they are partitioned
// with the Java client's murmur2 partitioner, so every department's client,
// in any language, puts one citizen on the same partition.
//
// Tracing: each produce (a Publish call, or a chunk of PublishFile) is a
// producer span "publish <topic>" ("publish" when its events go to several
// topics), a child of the span in the caller's ctx, or a new trace when
// there is none. Its W3C trace context travels in every record's headers
// (traceparent, tracestate), so a trace spans the department, Kafka, the
// hub and the subscribers. One span per produce rather than per event
// keeps a large import cheap; a single-event Publish names its event
// (cloudevents.event_id, source and type attributes). Record keys and
// event subjects are citizen IDs and never become attributes
// (messaging.kafka.message.key is deliberately not set).
//
// Event ids derived with EventID from the department's own record key and
// version make a re-send idempotent: the hub applies each (source, id)
// once, so after a crash or a timeout a department simply sends again.
//
//	pub, err := publisher.New(publisher.Config{Brokers: []string{"kafka:9092"}, Source: schemas.Housing})
//	…
//	defer pub.Close()
//	ev := schemas.Event{ID: publisher.EventID(schemas.Housing, lease.ID, lease.Version), Source: schemas.Housing,
//		Type: schemas.RentalRegistered, Subject: tenantID, Time: lease.SignedAt,
//		Payload: &schemas.RentalRegisteredData{LeaseID: lease.ID, AddressCode: lease.Address, Start: "2026-03-01"}}
//	results, err := pub.Publish(ctx, ev)
package publisher

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/internal/kafkaheaders"
	"github.com/pophub/pophub/internal/par"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// NoCompression, as Config.Compression, sends record batches uncompressed.
const NoCompression kafka.Compression = -1

// Config configures a Publisher. Only Brokers is required.
type Config struct {
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// SASL authenticates the department to brokers that ask for it (its
	// SCRAM-SHA-512 identity from the hub's access policy); nil for none.
	SASL sasl.Mechanism
	// TLS, when set, is the client configuration for brokers that speak
	// TLS, its RootCAs holding the hub's CA; nil connects in plaintext.
	TLS *tls.Config
	// Source, when set, is the only source this publisher sends: events of
	// another source are rejected (reason source_mismatch) and not sent.
	Source schemas.Source
	// BatchSize bounds the records of one produce request per partition
	// (default 1000); BatchTimeout is how long a partial batch waits for
	// more records (default 10ms).
	BatchSize    int
	BatchTimeout time.Duration
	// BatchBytes bounds the bytes of one record batch (the records of a
	// partition in one produce request), as kafka-go counts them before
	// compression (default DefaultBatchBytes). Brokers refuse a batch
	// larger than their message.max.bytes whole, every record of it
	// failing with [10] Message Size Too Large; raise BatchBytes only
	// with the brokers' (and topics') limit.
	BatchBytes int64
	// Compression of record batches: kafka.Snappy (default), kafka.Lz4,
	// kafka.Zstd, kafka.Gzip, or NoCompression.
	Compression kafka.Compression
	// MaxAttempts bounds the tries of a produce request (default 10).
	MaxAttempts int
	// Propagator injects the trace context of the publish span into
	// record headers (default W3C TraceContext).
	Propagator propagation.TextMapPropagator
	// TracerProvider starts the publish spans (default otel's global
	// provider, a no-op unless the program installed one; the caller's
	// trace context then passes to the records unchanged).
	TracerProvider trace.TracerProvider
	// Logger receives warnings about events the broker did not take
	// (default: discard). It never sees citizen IDs.
	Logger *slog.Logger
}

// DefaultBatchBytes is the default Config.BatchBytes: 1 MiB, just under
// the default message.max.bytes of Kafka brokers (1 MiB and 12 bytes),
// and kafka-go's own default. Counted before compression, it keeps every
// batch acceptable whatever the compression (none included) and
// BatchSize.
const DefaultBatchBytes = 1 << 20

// minBatchBytes is the least Config.BatchBytes: a valid event is a few
// kilobytes at most (the schemas bound every field), and kafka-go refuses
// a whole call holding a record larger than BatchBytes.
const minBatchBytes = 64 << 10

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = 10 * time.Millisecond
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	switch c.Compression {
	case 0:
		c.Compression = kafka.Snappy
	case NoCompression:
		c.Compression = 0
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports whether the configuration can work.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("at least one Kafka broker is required")
	}
	if c.Source != "" && !c.Source.Valid() {
		return fmt.Errorf("source %q is not a department source", c.Source)
	}
	if c.BatchBytes != 0 && c.BatchBytes < minBatchBytes {
		return fmt.Errorf("batch bytes %d: want at least %d, or 0 for the default", c.BatchBytes, minBatchBytes)
	}
	if c.Compression != NoCompression && c.Compression != 0 && c.Compression.Codec() == nil {
		return fmt.Errorf("compression %d is not a Kafka compression codec", c.Compression)
	}
	return nil
}

// Publisher sends events to the hub. It is safe for concurrent use; each
// Publish call waits for its own records' acknowledgements. Close may be
// called while calls are in flight: it waits for them.
type Publisher struct {
	cfg       Config
	tracer    trace.Tracer
	fileChunk int // lines of a file validated and sent at once
	listBad   int // most lines FileReport.Bad lists
	w         *kafka.Writer
	// transport is the publisher's own connection pool, shared by w and
	// meta; Close closes it, so that a closed publisher leaves no
	// connection or metadata-refresh goroutine behind.
	transport *kafka.Transport
	// topics maps each department source to its topic, so that no
	// record builds the name again.
	topics map[schemas.Source]string
	// meta reads partition counts from the writer's transport cache.
	meta *kafka.Client
	// mu guards closed; calls counts the Publish and PublishJSONL calls
	// in flight, which Close waits for before it closes w. A call enters
	// only while closed is false, so none reaches w once it is closed.
	// closing is closed with closed set: it stops the reading of
	// PublishJSONL calls in flight, which then send what they read.
	mu        sync.Mutex
	closed    bool
	closing   chan struct{}
	calls     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// ErrClosed is the error of every Result of a Publish call made after
// Close (the call returns it too), and of a PublishFile or PublishJSONL
// call made then: nothing of such a call is sent. Close waits for the
// calls in flight: a Publish call sends all its events, a PublishFile or
// PublishJSONL call stops reading, sends the lines it read, and returns an
// error that is ErrClosed to errors.Is, naming the last line read.
var ErrClosed = errors.New("the publisher is closed: nothing was sent")

// enter registers a call in flight; it returns false once Close was
// called. A call that entered must call p.calls.Done when it returns.
func (p *Publisher) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.calls.Add(1)
	return true
}

// New creates a publisher. It does not connect until the first Publish.
// The hub's topics must exist: the publisher never creates topics.
func New(cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring publisher: %w", err)
	}
	cfg.setDefaults()
	tr := transport(cfg.SASL, cfg.TLS)
	w := &kafka.Writer{
		Addr:      kafka.TCP(cfg.Brokers...),
		Transport: tr,
		// Murmur2 is the Java client's partitioner: every department's
		// client puts one citizen on the same partition.
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		Async:                  false,
		MaxAttempts:            cfg.MaxAttempts,
		BatchSize:              cfg.BatchSize,
		BatchBytes:             cfg.BatchBytes,
		BatchTimeout:           cfg.BatchTimeout,
		Compression:            cfg.Compression,
		AllowAutoTopicCreation: false,
	}
	topics := make(map[schemas.Source]string, len(schemas.Sources))
	for _, s := range schemas.Sources {
		topics[s] = schemas.Topic(s)
	}
	return &Publisher{cfg: cfg, w: w, transport: tr, fileChunk: max(cfg.BatchSize, 8192), listBad: 1000, topics: topics, closing: make(chan struct{}),
		meta:   &kafka.Client{Addr: w.Addr, Transport: w.Transport, Timeout: 10 * time.Second},
		tracer: cfg.TracerProvider.Tracer("github.com/pophub/pophub/adapters/publisher")}, nil
}

// transport is a connection pool of the publisher's own, authenticating
// with m and speaking TLS with tc when set. It is never kafka-go's
// process-wide default, whose connections would outlive Close.
func transport(m sasl.Mechanism, tc *tls.Config) *kafka.Transport {
	return &kafka.Transport{SASL: m, TLS: tc, DialTimeout: 10 * time.Second}
}

// EventID derives a stable event id from the department's own record key
// and version, so that sending the same version twice is idempotent:
//
//	<source>-<hash>-<version>
//
// where <hash> is the first 96 bits (12 bytes) of the SHA-256 of the
// source, a NUL byte and the record key (the bytes of each as given, with
// nothing else), in lower-case hex, and <version> is the version as a
// uint64 XOR 1<<63 (its sign bit flipped), as 16 lower-case hex digits.
// The record key is hashed because it may hold personal data; the source
// goes into the hash so that two sources' keys never share one. The
// version is written so that the ids of one record's versions sort as the
// versions do, negative ones first: the hub breaks ties between changes
// that took effect at the same time by source, then event id, so a
// correction sent with the same time as the version it corrects (a
// lease's signing date does not change) takes effect.
//
// A system that derives ids itself, in any language, must write them
// exactly so, or the hub applies a version sent both ways twice. These
// are the ids it must get:
//
//	EventID("housing", "HRB-2026-0042", 1)  == "housing-6190c894d12e1bae077f4068-8000000000000001"
//	EventID("housing", "HRB-2026-0042", 0)  == "housing-6190c894d12e1bae077f4068-8000000000000000"
//	EventID("housing", "HRB-2026-0042", -5) == "housing-6190c894d12e1bae077f4068-7ffffffffffffffb"
func EventID(source schemas.Source, recordKey string, version int64) string {
	// The hashed input and the id are built on the stack when they fit;
	// the id string is then the only allocation.
	var in [256]byte
	b := append(in[:0], source...)
	b = append(b, 0)
	b = append(b, recordKey...)
	sum := sha256.Sum256(b)
	var out [80]byte
	id := append(out[:0], source...)
	id = append(id, '-')
	id = hex.AppendEncode(id, sum[:12])
	id = append(id, '-')
	// Flipping the sign bit orders negative versions before the others.
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(version)^1<<63)
	id = hex.AppendEncode(id, v[:])
	return string(id)
}

// ReasonDuplicateID is the reject reason (schemas.RejectError.Reason, on
// field id) of an event whose (source, id) an earlier valid event of the
// same Publish call, or an earlier line of the same file, has: the hub
// applies one event per (source, id) and would drop the later one as a
// repeat. The gateway and `pophub import` use the same reason.
const ReasonDuplicateID = "duplicate_id"

// Result is the outcome for one event: Err is nil when the broker
// acknowledged it. A validation failure is a *schemas.RejectError
// (schemas.ReasonOf gives its reason); such an event was not sent. An
// event whose topic the brokers do not have is not sent either: its Err
// is a *TopicMissingError. Retriable tells whether sending the event again
// may deliver it.
type Result struct {
	ID  string
	Err error
}

// ReasonTopicMissing begins the message of a TopicMissingError.
const ReasonTopicMissing = "topic_missing"

// TopicMissingError is the Result error of an event whose source's topic
// does not exist on the brokers (the publisher never creates topics). The
// event was not sent, and the other events of the call were: kafka-go
// would refuse the whole call for one unknown topic. Nothing is wrong
// with the event itself, so this is not a *schemas.RejectError: send it
// again once the hub's operators have created the topic.
//
// A Kafka user sees only the topics its ACLs let it describe, and kafka-go
// gives an unseen topic as unknown, so with SASL (Authenticated) the topic
// may exist and the user lack the grant to see it (under the hub's access
// policy, the identity's publish grants); the message says so.
type TopicMissingError struct {
	Topic         string
	Authenticated bool
}

func (e *TopicMissingError) Error() string {
	if e.Authenticated {
		return ReasonTopicMissing + ": topic " + e.Topic + " does not exist on the brokers, or this client's Kafka user may not describe it " +
			"(a user sees only the topics its ACLs grant; check its publish grants in the access policy); the event was not sent " +
			"(send it again once the topic exists and the user may write it)"
	}
	return ReasonTopicMissing + ": topic " + e.Topic + " does not exist on the brokers; the event was not sent (send it again once the topic exists)"
}

// Retriable reports whether an event whose Result carries err may be
// delivered by sending it again unchanged, with the same publisher, once
// whatever passing trouble kept it out is over: a timeout, a connection
// lost, a partition's leader moving, a broker short of in-sync replicas,
// ctx done. It is false for what stays until someone changes the event,
// the brokers or the publisher: a reject (*schemas.RejectError), a
// TopicMissingError, a broker's refusal Kafka does not deem retriable
// (kafka-go's Error.Temporary is false), such as [10] Message Size Too
// Large (the topic's max.message.bytes below the batch), [29] Topic
// Authorization Failed or [58] SASL Authentication Failed, and ErrClosed:
// a closed publisher never sends again (a new one may). A retry loop
// should stop at these and tell someone.
//
// A connection closed without an answer stays retriable, as a connection
// lost is, though a broker refusing the login that way (the hub's
// embedded broker on a wrong password or an unknown user, where Kafka
// answers [58] first) or requiring TLS of a client without it closes it
// just so: the client cannot tell them apart, and the error says it may be
// either. A loop retrying it should give up after a while.
func Retriable(err error) bool {
	if err == nil {
		return false
	}
	var re *schemas.RejectError
	var tm *TopicMissingError
	var ke kafka.Error
	switch {
	case errors.As(err, &re), errors.As(err, &tm), errors.Is(err, ErrClosed):
		return false
	case errors.As(err, &ke):
		return ke.Temporary()
	}
	return true
}

// Publish validates events and sends the valid ones, waiting until the
// broker acknowledged them (or gave up). It returns one Result per event,
// in order. After Close, every Result is ErrClosed and nothing is sent. Invalid events are not sent; their Result says why; so are
// events of a source whose topic does not exist (TopicMissingError), the
// others being sent. The returned error is set only when sending failed
// as a whole (broker unreachable, ctx done), then every valid event's
// Result carries it too; or when none of the valid events was delivered
// (the broker refused every record, or their topics do not exist), then
// each Result says why. Either way none of the valid events may be
// assumed delivered — send them again; the hub ignores the repeats.
//
// The hub applies one event per (source, id): an event whose source and id
// an earlier valid event of the call has, with other content, would be
// dropped by the hub as a repeat, so it is not sent and its Result is a
// reject (ReasonDuplicateID, naming the earlier event). An event that is
// the same as the earlier one (the same encoding) is a harmless repeat and
// sent like any other: the hub applies it once and counts the repeat, as
// it does for a resend of a later call.
//
// Records of one partition are sent in one WriteMessages, in the order of
// events. A large call is validated and sent in groups of partitions: a
// group's records are on their way (waiting out BatchTimeout, compressed,
// produced) while the next group is validated.
func (p *Publisher) Publish(ctx context.Context, events ...schemas.Event) ([]Result, error) {
	results := make([]Result, len(events))
	if !p.enter() {
		for i := range events {
			results[i] = Result{ID: events[i].ID, Err: ErrClosed}
		}
		return results, ErrClosed
	}
	defer p.calls.Done()
	// A call whose ids may repeat is validated whole before anything is
	// sent: which event of an id is the first valid one is known only
	// then, and groups of partitions would send events of one id apart.
	shared := mayShareIDs(events)
	if len(events) >= groupedMin && !shared {
		if groups, missing := p.partitionGroups(ctx, events); groups != nil {
			return results, p.publishGroups(ctx, events, groups, missing, results)
		}
	}
	msgs, used := p.validateAll(events, results)
	if shared {
		markDuplicateIDs(events, msgs, results)
	}
	err := p.send(ctx, msgs, results, func(i int) *schemas.Event { return &events[i] })
	if err == nil {
		used.release()
	}
	return results, err
}

// mayShareIDs reports whether two events may have one id. It compares
// 64-bit hashes of the ids, hashed on all cores and put in an
// open-addressing table of twice their number, so that the common call,
// every id its own, pays a few nanoseconds an event (a map insert an
// event was a tenth of the time validation takes on two cores). A false
// alarm (two sources' events of one id, or a collision) only makes
// markDuplicateIDs look closer.
func mayShareIDs(events []schemas.Event) bool {
	if len(events) < 2 {
		return false
	}
	seed := maphash.MakeSeed()
	hashes := make([]uint64, len(events))
	par.Ranges(len(events), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			// 0 marks an empty slot of the table: no hash may be 0.
			hashes[i] = maphash.String(seed, events[i].ID) | 1
		}
	})
	size := 1 << bits.Len(uint(2*len(events)-1))
	table, mask := make([]uint64, size), uint64(size-1)
	for _, h := range hashes {
		j := (h >> 1) & mask
		for table[j] != 0 {
			if table[j] == h {
				return true
			}
			j = (j + 1) & mask
		}
		table[j] = h
	}
	return false
}

// markDuplicateIDs rejects every valid event whose source and id an
// earlier valid event has with another record; one with the same record
// is left to be sent. The records are compared as encoded for the
// validation, not encoded again.
func markDuplicateIDs(events []schemas.Event, msgs []kafka.Message, results []Result) {
	type key struct {
		source schemas.Source
		id     string
	}
	first := make(map[key]int, len(events))
	for i := range events {
		if results[i].Err != nil {
			continue
		}
		k := key{events[i].Source, events[i].ID}
		j, seen := first[k]
		switch {
		case !seen:
			first[k] = i
		case bytes.Equal(msgs[i].Value, msgs[j].Value):
			// A harmless repeat, sent as it came.
		default:
			results[i].Err = &schemas.RejectError{Reason: ReasonDuplicateID, Field: "id",
				Detail: fmt.Sprintf("events[%d] has this id with other content: the hub applies one event per source and id and would drop this one; give this change an id of its own", j)}
		}
	}
}

// groupedMin is the number of events from which Publish sends in groups
// of partitions, and sendGroups the number of groups.
const (
	groupedMin = 2048
	sendGroups = 4
)

// partitionGroups splits the indexes of events into groups that share no
// partition, each in the order of events, the largest first. The
// partitions are the writer's own: its balancer over the partition counts
// of the transport's metadata cache, which the writer reads too. It also
// returns the topics that metadata finds missing (missingOf). It returns
// nil when that metadata cannot be had (the send then says why).
func (p *Publisher) partitionGroups(ctx context.Context, events []schemas.Event) (groups [][]int, missing map[string]bool) {
	md, err := p.meta.Metadata(ctx, &kafka.MetadataRequest{Topics: p.allTopics()})
	if err != nil {
		return nil, nil
	}
	// Topic-partitions are numbered from base[topic]; tp 0 takes the
	// events of unknown topics (not sent, or refused by the writer).
	base := make(map[string]int, len(md.Topics))
	count := make(map[string]int, len(md.Topics))
	next, most := 1, 0
	for _, t := range md.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			base[t.Name], count[t.Name] = next, len(t.Partitions)
			next += len(t.Partitions)
			most = max(most, len(t.Partitions))
		}
	}
	partitions := make([]int, most)
	for i := range partitions {
		partitions[i] = i
	}
	// Each source's first topic-partition and partition count, looked up
	// once rather than in two maps an event.
	type placement struct{ base, count int }
	bySource := make(map[schemas.Source]placement, len(schemas.Sources))
	for _, s := range schemas.Sources {
		topic := p.topic(s)
		bySource[s] = placement{base[topic], count[topic]}
	}
	tpOf := make([]int, len(events))
	par.Ranges(len(events), 4096, func(lo, hi int) {
		var key []byte
		for i := lo; i < hi; i++ {
			// Not a department source: no placement (the writer refuses
			// its topic).
			pl := bySource[events[i].Source]
			tp := 0
			if pl.count > 0 {
				key = append(key[:0], events[i].Subject...)
				tp = pl.base + p.w.Balancer.Balance(kafka.Message{Key: key}, partitions[:pl.count]...)
			}
			tpOf[i] = tp
		}
	})
	size := make([]int, next)
	for _, tp := range tpOf {
		size[tp]++
	}
	// The largest topic-partitions first, each to the smallest group.
	order := make([]int, next)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return size[b] - size[a] })
	groupOf := make([]int, next)
	load := make([]int, sendGroups)
	for _, tp := range order {
		g := 0
		for j := range load {
			if load[j] < load[g] {
				g = j
			}
		}
		groupOf[tp] = g
		load[g] += size[tp]
	}
	groups = make([][]int, sendGroups)
	for g := range groups {
		groups[g] = make([]int, 0, load[g])
	}
	for i, tp := range tpOf {
		g := groupOf[tp]
		groups[g] = append(groups[g], i)
	}
	slices.SortStableFunc(groups, func(a, b []int) int { return len(b) - len(a) })
	return slices.DeleteFunc(groups, func(g []int) bool { return len(g) == 0 }), missingOf(md)
}

// publishGroups validates and sends events group by group: each group in
// one WriteMessages, started as soon as the group is validated, while the
// next one is. One span covers the whole produce.
func (p *Publisher) publishGroups(ctx context.Context, events []schemas.Event, groups [][]int, missing map[string]bool, results []Result) error {
	topic := "" // the events' topic, "" when they go to several
	for i := range events {
		if t := p.topic(events[i].Source); i == 0 {
			topic = t
		} else if t != topic {
			topic = ""
			break
		}
	}
	ctx, span := p.startSpan(ctx, topic, len(events), nil)
	defer span.End()
	var headers []kafka.Header
	p.cfg.Propagator.Inject(ctx, kafkaheaders.Carrier{Headers: &headers})

	now := time.Now() // the clock the hub's checks of "not in the future" read
	var wg sync.WaitGroup
	errs := make([]error, len(groups))
	sent := 0
	var valid []int // of every group: the events that passed validation
	for g, idx := range groups {
		group := make([]kafka.Message, len(idx)) // group[j] is the record of events[idx[j]]
		var used spentBlocks
		par.Ranges(len(idx), 256, func(lo, hi int) {
			var a arena
			for j := lo; j < hi; j++ {
				i := idx[j]
				results[i].ID = events[i].ID
				results[i].Err = p.validate(&a, &events[i], &group[j], now)
			}
			used.add(&a)
		})
		sending := make([]int, 0, len(idx))
		for j, i := range idx {
			if results[i].Err != nil {
				continue
			}
			valid = append(valid, i)
			if missing[group[j].Topic] {
				results[i].Err = &TopicMissingError{Topic: group[j].Topic, Authenticated: p.cfg.SASL != nil}
				continue
			}
			if n := len(sending); n != j {
				group[n] = group[j]
			}
			group[len(sending)].Headers = headers
			sending = append(sending, i)
		}
		group = group[:len(sending)]
		if len(group) == 0 {
			continue
		}
		sent += len(group)
		wg.Go(func() {
			if errs[g] = p.write(ctx, span, group, sending, results); errs[g] == nil {
				used.release()
			}
		})
	}
	wg.Wait()
	span.SetAttributes(attribute.Int("messaging.batch.message_count", sent))
	err := errors.Join(errs...)
	if err == nil {
		return noneDelivered(results, valid)
	}
	// As documented: when sending failed as a whole, no valid event may
	// be taken as delivered.
	for _, idx := range groups {
		for _, i := range idx {
			if results[i].Err == nil {
				results[i].Err = fmt.Errorf("sending to Kafka: %w", err)
			}
		}
	}
	return err
}

// send produces, in one WriteMessages, msgs[i] for every i whose result
// has no error yet, and records the outcome in results. It moves those
// records to the front of msgs. event gives the event of msgs[i], for the
// span of a single-event produce.
func (p *Publisher) send(ctx context.Context, msgs []kafka.Message, results []Result, event func(i int) *schemas.Event) error {
	idx := make([]int, 0, len(msgs)) // the index in results of each record sent
	topic := ""                      // the records' topic, "" when they go to several
	for i := range msgs {
		if results[i].Err != nil {
			continue
		}
		t := msgs[i].Topic
		if len(idx) == 0 {
			topic = t
		} else if t != topic {
			topic = ""
		}
		msgs[len(idx)] = msgs[i]
		idx = append(idx, i)
	}
	msgs = msgs[:len(idx)]
	if len(msgs) == 0 {
		return nil
	}
	valid := idx
	msgs, idx = p.dropMissingTopics(ctx, topic, msgs, idx, results)
	if len(msgs) == 0 {
		return noneDelivered(results, valid)
	}
	if len(idx) < len(valid) {
		topic = commonTopic(msgs)
	}
	ctx, span := p.startSpan(ctx, topic, len(msgs), func() *schemas.Event { return event(idx[0]) })
	defer span.End()
	// One trace context for the produce: every record shares its headers.
	var headers []kafka.Header
	p.cfg.Propagator.Inject(ctx, kafkaheaders.Carrier{Headers: &headers})
	for i := range msgs {
		msgs[i].Headers = headers
	}
	if err := p.write(ctx, span, msgs, idx, results); err != nil {
		return err
	}
	return noneDelivered(results, valid)
}

// commonTopic is the topic of every record of msgs, or "" when they go to
// several.
func commonTopic(msgs []kafka.Message) string {
	for i := range msgs {
		if msgs[i].Topic != msgs[0].Topic {
			return ""
		}
	}
	return msgs[0].Topic
}

// allTopics are the topics of the department sources.
func (p *Publisher) allTopics() []string {
	topics := make([]string, 0, len(schemas.Sources))
	for _, s := range schemas.Sources {
		topics = append(topics, p.topics[s])
	}
	return topics
}

// missingTopics returns which of topics the brokers do not have. kafka-go
// refuses a whole WriteMessages for one unknown topic, blaming every
// event of it, so those topics' events are kept out of the write. The
// metadata comes from the transport's cache, which the writer reads
// before every write anyway: in the common case no round trip. When it
// cannot be had, no topic is taken as missing: the write then says why.
func (p *Publisher) missingTopics(ctx context.Context, topics []string) map[string]bool {
	md, err := p.meta.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil
	}
	return missingOf(md)
}

// missingOf returns the topics md reports unknown.
func missingOf(md *kafka.MetadataResponse) map[string]bool {
	var missing map[string]bool
	for _, t := range md.Topics {
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			if missing == nil {
				missing = map[string]bool{}
			}
			missing[t.Name] = true
		}
	}
	return missing
}

// dropMissingTopics sets the Result of each record of msgs (msgs[j] is
// the record of event idx[j]) whose topic the brokers do not have to a
// TopicMissingError, and returns the other records and their indexes.
// topic is the records' one topic, "" when they go to several.
func (p *Publisher) dropMissingTopics(ctx context.Context, topic string, msgs []kafka.Message, idx []int, results []Result) ([]kafka.Message, []int) {
	topics := []string{topic}
	if topic == "" {
		topics = topics[:0]
		for i := range msgs {
			if !slices.Contains(topics, msgs[i].Topic) {
				topics = append(topics, msgs[i].Topic)
			}
		}
	}
	missing := p.missingTopics(ctx, topics)
	if len(missing) == 0 {
		return msgs, idx
	}
	keptMsgs, keptIdx := msgs[:0:0], make([]int, 0, len(idx))
	for j := range msgs {
		if missing[msgs[j].Topic] {
			results[idx[j]].Err = &TopicMissingError{Topic: msgs[j].Topic, Authenticated: p.cfg.SASL != nil}
			continue
		}
		keptMsgs = append(keptMsgs, msgs[j])
		keptIdx = append(keptIdx, idx[j])
	}
	return keptMsgs, keptIdx
}

// noneDelivered is the call's error when it had valid events (valid
// indexes results) and none was delivered: every record refused by the
// broker, or every topic missing. Each Result says why; the call's error
// wraps the first, so that a caller that looks only at it (or a file's
// publish, which stops there) does not take a call that delivered nothing
// for a success.
func noneDelivered(results []Result, valid []int) error {
	if len(valid) == 0 {
		return nil
	}
	for _, i := range valid {
		if results[i].Err == nil {
			return nil
		}
	}
	return fmt.Errorf("none of the %d events was delivered: %w", len(valid), results[valid[0]].Err)
}

// write produces msgs in one WriteMessages and records the outcome of
// msgs[j] in results[idx[j]]. It returns an error when sending failed as
// a whole.
func (p *Publisher) write(ctx context.Context, span trace.Span, msgs []kafka.Message, idx []int, results []Result) error {
	err := p.w.WriteMessages(ctx, msgs...)
	var werrs kafka.WriteErrors
	switch {
	case err == nil:
	case errors.As(err, &werrs) && len(werrs) == len(msgs):
		failed := 0
		for j, e := range werrs {
			if e != nil {
				results[idx[j]].Err = fmt.Errorf("sending to Kafka: %w", p.closedHint(e))
				failed++
			}
		}
		span.SetAttributes(attribute.Int("pophub.publish.failed", failed))
		span.SetStatus(codes.Error, "the broker did not take some events")
		p.cfg.Logger.WarnContext(ctx, "publishing: the broker did not take some events", "failed", failed, "delivered", len(msgs)-failed, "error", werrs[firstNonNil(werrs)])
	default:
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// Interrupted: kafka-go may give what the cancelled attempt
			// met instead (a refused connection), and the caller must be
			// able to tell an interruption from a broker's failure.
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		err = p.closedHint(err)
		for _, i := range idx {
			results[i].Err = fmt.Errorf("sending to Kafka: %w", err)
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, "sending failed")
		p.cfg.Logger.WarnContext(ctx, "publishing: sending failed", "events", len(msgs), "error", err)
		return fmt.Errorf("sending %d events: %w", len(msgs), err)
	}
	return nil
}

// closedHint adds to err what a connection closed without an answer may
// mean: a connection lost, or all a client sees of a broker that wants TLS
// or a login, or refuses its login without a word (the hub's own broker
// does). kafka-go gives it either for the whole write or, when the
// connection closes mid-produce, for each message.
func (p *Publisher) closedHint(err error) error {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	if p.cfg.SASL == nil {
		return fmt.Errorf("%w (the broker closed the connection: a connection lost, which sending again may mend, "+
			"or a broker that wants a login or TLS: does it require TLS or SASL credentials?)", err)
	}
	return fmt.Errorf("%w (the broker closed the connection: a connection lost, which sending again may mend, "+
		"or credentials refused: are they right, and does the broker require TLS?)", err)
}

// startSpan starts the producer span of one produce of n records; single
// gives the event when n is 1 (and may be nil otherwise). Attributes are set only on a recording
// span; none names a citizen.
func (p *Publisher) startSpan(ctx context.Context, topic string, n int, single func() *schemas.Event) (context.Context, trace.Span) {
	name := "publish"
	if topic != "" {
		name += " " + topic
	}
	ctx, span := p.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer))
	if !span.IsRecording() {
		return ctx, span
	}
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.operation.name", "publish"),
	}
	if topic != "" {
		attrs = append(attrs, attribute.String("messaging.destination.name", topic))
	}
	if n == 1 {
		ev := single()
		attrs = append(attrs,
			// A department may build its event ids from citizen IDs.
			attribute.String("messaging.message.id", citizenid.MaskText(ev.ID)),
			attribute.String("cloudevents.event_id", citizenid.MaskText(ev.ID)),
			attribute.String("cloudevents.event_source", string(ev.Source)),
			attribute.String("cloudevents.event_type", string(ev.Type)))
	} else {
		attrs = append(attrs, attribute.Int("messaging.batch.message_count", n))
	}
	span.SetAttributes(attrs...)
	return ctx, span
}

func firstNonNil(errs kafka.WriteErrors) int {
	for i, e := range errs {
		if e != nil {
			return i
		}
	}
	return 0
}

// validateAll validates events into their records, setting the results'
// ids and validation errors; the record of an invalid event is left zero.
// Decoding costs a microsecond or two an event, about as much as
// producing it, so large batches are validated on all cores.
func (p *Publisher) validateAll(events []schemas.Event, results []Result) ([]kafka.Message, *spentBlocks) {
	msgs := make([]kafka.Message, len(events))
	now := time.Now()
	var used spentBlocks
	par.Ranges(len(events), 256, func(lo, hi int) {
		var a arena
		for i := lo; i < hi; i++ {
			results[i].ID = events[i].ID
			results[i].Err = p.validate(&a, &events[i], &msgs[i], now)
		}
		used.add(&a)
	})
	return msgs, &used
}

// validate encodes the event into its record (msg, zero on entry), in a's
// memory, and checks the record exactly as the hub will: what
// schemas.Decode of the value, from the source's topic, under the citizen
// ID as key, would say (schemas.CheckEncoded, which judges a typed payload
// without parsing the JSON back). now is the present the check judges
// times against, read once per call: reading the clock for every event
// cost nearly a tenth of the check.
func (p *Publisher) validate(a *arena, ev *schemas.Event, msg *kafka.Message, now time.Time) error {
	if p.cfg.Source != "" && ev.Source != p.cfg.Source {
		return &schemas.RejectError{Reason: schemas.ReasonSourceMismatch, Field: "source",
			Detail: fmt.Sprintf("this publisher sends only %q events, not %s", p.cfg.Source, schemas.QuoteValue(string(ev.Source)))}
	}
	value, err := a.encode(ev)
	if err != nil {
		return &schemas.RejectError{Reason: schemas.ReasonInvalidData, Field: "data", Detail: err.Error()}
	}
	topic, key := p.topic(ev.Source), a.copy(string(ev.Subject))
	if err := schemas.CheckEncoded(ev, schemas.Input{Topic: topic, Key: key, Value: value, Now: now}); err != nil {
		return err
	}
	// Field by field into the zero record: assigning a whole
	// kafka.Message (two hundred bytes, with pointers) cost a tenth of the
	// check.
	msg.Topic, msg.Key, msg.Value, msg.Time = topic, key, value, now
	return nil
}

// topic is the topic of source s.
func (p *Publisher) topic(s schemas.Source) string {
	if t, ok := p.topics[s]; ok {
		return t
	}
	return schemas.Topic(s)
}

// arena carves records' keys and values out of large blocks, so that a
// batch costs a few allocations rather than two an event. A block is
// never written again once handed out, so every slice stays valid for as
// long as its record is referenced. An arena is not safe for concurrent
// use: each worker has its own.
//
// Publish gives its blocks back (release) once the broker has
// acknowledged their records, and the next call's arenas take them again
// rather than new zeroed memory: clearing fresh blocks and collecting the
// old ones cost a tenth of the validation.
type arena struct {
	buf  []byte
	used [][]byte // the blocks of arenaBlock bytes handed out
}

// arenaBlock is the size of a block: a few hundred records.
const arenaBlock = 64 << 10

// blocks holds blocks (*[]byte) whose records were acknowledged.
var blocks sync.Pool

// reserve makes room for n more bytes in the current block.
func (a *arena) reserve(n int) {
	if a.buf != nil && cap(a.buf)-len(a.buf) >= n {
		return
	}
	if n > arenaBlock {
		a.buf = make([]byte, 0, n)
		return
	}
	if b, ok := blocks.Get().(*[]byte); ok {
		a.buf = (*b)[:0]
	} else {
		a.buf = make([]byte, 0, arenaBlock)
	}
	a.used = append(a.used, a.buf)
}

// spentBlocks collects the blocks of a call's arenas, filled on several
// cores, to release them together.
type spentBlocks struct {
	mu   sync.Mutex
	used [][]byte
}

// add takes over the blocks a handed out.
func (s *spentBlocks) add(a *arena) {
	s.mu.Lock()
	s.used = append(s.used, a.used...)
	s.mu.Unlock()
	*a = arena{}
}

// release gives the blocks back for other arenas to reuse. Only once
// nothing refers to their records any more: the broker acknowledged them
// (kafka-go may still be sending those of a failed or cancelled write).
// Validation errors never point into a block: they are built of copies.
func (s *spentBlocks) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.used {
		blocks.Put(&b)
	}
	s.used = nil
}

// encode appends the event's encoding (schemas.Encode's) and returns it.
func (a *arena) encode(ev *schemas.Event) ([]byte, error) {
	// Room for the envelope around the data; should the encoding need
	// more after all, append moves it to a new array, which becomes the
	// block, and what was handed out stays where it was.
	a.reserve(512 + len(ev.ID) + len(ev.Subject) + 2*len(ev.Data))
	start := len(a.buf)
	b, err := ev.AppendJSON(a.buf)
	if err != nil {
		return nil, err
	}
	a.buf = b
	return b[start:len(b):len(b)], nil
}

// copy returns s copied into the arena (non-nil even when empty).
func (a *arena) copy(s string) []byte { return arenaCopy(a, s) }

// copyBytes is copy of a []byte.
func (a *arena) copyBytes(b []byte) []byte { return arenaCopy(a, b) }

func arenaCopy[T string | []byte](a *arena, s T) []byte {
	a.reserve(len(s))
	start := len(a.buf)
	a.buf = append(a.buf, s...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

// FileReport summarises PublishFile.
type FileReport struct {
	// Read counts the non-blank lines.
	Read int
	// Published counts the events the broker acknowledged.
	Published int
	// BadLines counts the lines not published but repeats; Bad lists the
	// first thousand of them, in line order, so that a file of millions of
	// bad lines is not held in memory.
	BadLines int
	Bad      []LineError
	// Repeated counts the lines that repeat an earlier line's event
	// exactly; Repeats lists the first thousand, in line order. They are
	// not sent (the earlier line was) and, unlike bad lines, call for no
	// fix: the hub would apply the event once anyway. They are reported
	// so that the department sees its export overlaps.
	Repeated int
	Repeats  []LineRepeat
}

// LineRepeat is a line of a file that repeats the event of line First
// (the same source and id and the same event as encoded for sending),
// and so was not sent.
type LineRepeat struct {
	Line, First int
}

// LineError is a line of a file that was not published: invalid (a
// *schemas.RejectError, or ErrLineTooLong) or not acknowledged.
type LineError struct {
	Line int
	Err  error
}

// MaxLineBytes bounds a line of a file PublishFile reads, its line end
// included. A valid event is a few kilobytes at most (the schemas bound
// every text field) and Kafka takes about a megabyte a record, so a
// longer line can never be sent: it is read past without being held, and
// reported as ErrLineTooLong.
const MaxLineBytes = 1 << 20

// ErrLineTooLong is the LineError of a line longer than MaxLineBytes.
var ErrLineTooLong = errors.New("line longer than 1 MiB")

// PublishFile publishes a JSONL file of CloudEvents (one event per line,
// as `pophub synth` writes them), validating one chunk of lines while the
// previous one is being sent; records keep the file's order within each
// partition. Blank lines are skipped; a byte order mark and CRLF line
// ends are accepted. Bad lines, among them lines longer than
// MaxLineBytes, are reported with their line number and not sent. So is
// a line whose source and id an earlier valid line has (ReasonDuplicateID,
// naming that line), which the hub would drop as a repeat: one with other
// content is a correction that needs an id of its own; one with the same
// event is a harmless repeat, counted and listed apart (Repeated,
// Repeats), not as a bad line. The error is set only if the file cannot
// be read, sending failed as a whole, or the call was stopped; the report
// then covers the chunks sent before, and the file can simply be published
// again (the hub applies each event once).
//
// The call stops reading when ctx is done, even while the file has nothing
// to give (a named pipe whose writer is quiet, or has not opened it yet),
// and returns ctx's error: the lines read and not yet sent are counted as
// read only. Close stops it reading too: the lines read before are sent,
// and the error is ErrClosed to errors.Is, naming the last line read.
func (p *Publisher) PublishFile(ctx context.Context, path string) (FileReport, error) {
	if !p.enter() {
		return FileReport{}, ErrClosed
	}
	defer p.calls.Done()
	f, err := p.open(ctx, path)
	if err != nil {
		return FileReport{}, err
	}
	// Closing the file also ends a read of a named pipe under way when
	// the call stopped reading.
	defer f.Close()
	return p.publishJSONL(ctx, f)
}

// PublishJSONL is PublishFile reading from r. After Close it reads
// nothing and returns ErrClosed.
//
// r is read in a goroutine of its own, so that the call returns as soon as
// ctx is done or Close stops it, even while r's Read blocks (a pipe, a
// socket, standard input). That goroutine then starts no other Read, but
// one under way goes on until r returns, and what it returns is dropped:
// close r (an *os.File, a net.Conn) after the call to end it at once.
func (p *Publisher) PublishJSONL(ctx context.Context, r io.Reader) (FileReport, error) {
	if !p.enter() {
		return FileReport{}, ErrClosed
	}
	defer p.calls.Done()
	return p.publishJSONL(ctx, r)
}

// publishJSONL is PublishJSONL once the call has entered.
func (p *Publisher) publishJSONL(ctx context.Context, r io.Reader) (FileReport, error) {
	var rep FileReport
	// Lines go in chunks: while one chunk is being sent (which takes at
	// least BatchTimeout), the next is read and validated.
	chunks := make(chan []fileLine, 1)
	var sent FileReport // Published, Bad and Repeats, written by the sender only
	var sendErr error
	var failed atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for chunk := range chunks {
			if sendErr != nil {
				continue
			}
			if sendErr = p.sendLines(ctx, chunk, &sent); sendErr != nil {
				failed.Store(true)
			}
		}
	}()
	finish := func(err error) (FileReport, error) {
		close(chunks)
		<-done
		rep.Published, rep.BadLines, rep.Bad = sent.Published, sent.BadLines, sent.Bad
		rep.Repeated, rep.Repeats = sent.Repeated, sent.Repeats
		if err == nil {
			err = sendErr
		}
		return rep, err
	}

	in := newStoppableReader(ctx, p.closing, r)
	defer in.stop()
	// A line, its line end included, fits the buffer or is too long.
	br := bufio.NewReaderSize(in, MaxLineBytes)
	chunkSize := p.fileChunk
	var pending []fileLine
	var text arena // the lines of the pending chunk
	seen := newLineIDs()
	for line := 1; ; line++ {
		raw, readErr := readLine(br, &text)
		var lineErr error // the line's own
		if readErr == ErrLineTooLong {
			lineErr, readErr = readErr, nil
		}
		switch {
		case readErr == errClosing:
			// Close waits for this call: the lines read go out, and
			// the line read in part, and the rest, are not read.
			if len(pending) > 0 && !failed.Load() {
				p.decodeLines(pending)
				seen.mark(pending)
				chunks <- pending
			}
			rep, err := finish(nil)
			return rep, &closedReadingError{line: line - 1, send: err}
		case readErr != nil && ctx.Err() != nil && errors.Is(readErr, ctx.Err()):
			// Interrupted: nothing more is sent, the lines read but
			// not sent are counted as read only.
			return finish(fmt.Errorf("stopped reading after line %d: %w", line-1, readErr))
		case readErr != nil && readErr != io.EOF:
			return finish(fmt.Errorf("reading events file: %w", readErr))
		}
		raw = bytes.TrimRight(raw, "\r\n")
		if line == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
		}
		if lineErr != nil || len(bytes.TrimSpace(raw)) > 0 {
			rep.Read++
			if pending == nil {
				pending = make([]fileLine, 0, chunkSize)
			}
			pending = append(pending, fileLine{n: line, text: raw, err: lineErr})
		}
		if len(pending) == chunkSize || readErr == io.EOF && len(pending) > 0 {
			if failed.Load() {
				break
			}
			p.decodeLines(pending)
			seen.mark(pending)
			chunks <- pending
			pending, text = nil, arena{}
		}
		if readErr == io.EOF {
			break
		}
	}
	return finish(nil)
}

// readLine reads a line, with its '\n' if it has one, into a. A line
// longer than br's buffer is read past, and its error is ErrLineTooLong
// (or the error that ended it, but io.EOF).
func readLine(br *bufio.Reader, a *arena) ([]byte, error) {
	frag, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return a.copyBytes(frag), err
	}
	for err == bufio.ErrBufferFull {
		_, err = br.ReadSlice('\n')
	}
	if err == nil || err == io.EOF {
		err = ErrLineTooLong
	}
	return nil, err
}

// fileLine is a line of a file and, once decoded, its event and record.
// A line that repeats an earlier one exactly has repeatOf set to that
// line, and err to errRepeat so that it is not sent.
type fileLine struct {
	n        int
	text     []byte
	ev       schemas.Event
	msg      kafka.Message
	err      error
	repeatOf int
}

// errRepeat keeps a repeated line from being sent; sendLines counts the
// line as a repeat, not as a bad line.
var errRepeat = errors.New("repeats an earlier line")

// lineIDs remembers the source and id of every line of a file that was
// valid, to report a later line with the same ones, which the hub would
// drop as a repeat: as a correction the hub would ignore when its event
// differs, as a harmless repeat when it is the same (as `pophub import`
// reports a JSONL file's). Per line it keeps a 128-bit hash of the id (two
// independently seeded maphashes), not the id, and a 64-bit digest of the
// event as encoded for sending: a file of ten million lines would
// otherwise hold ten million strings for the garbage collector to scan.
// Two ids of one file share a hash with odds of about n²/2¹²⁹.
type lineIDs struct {
	seeds [2]maphash.Seed
	// by source: a publisher without Config.Source may send a file of
	// several sources, and (source, id) is what the hub keys on.
	first map[schemas.Source]map[[2]uint64]firstLine
}

// firstLine is the first valid line of a source and id.
type firstLine struct {
	line int
	sum  uint64 // maphash of its record's value
}

func newLineIDs() *lineIDs {
	return &lineIDs{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		first: map[schemas.Source]map[[2]uint64]firstLine{}}
}

// mark sets the error of every valid line, in order, whose source and id
// an earlier valid line of the file has, so that it is not sent; one with
// the same event is marked as a repeat of that line.
func (s *lineIDs) mark(lines []fileLine) {
	var src schemas.Source
	var first map[[2]uint64]firstLine
	for i := range lines {
		l := &lines[i]
		if l.err != nil {
			continue
		}
		if first == nil || l.ev.Source != src {
			src = l.ev.Source
			if first = s.first[src]; first == nil {
				first = make(map[[2]uint64]firstLine)
				s.first[src] = first
			}
		}
		k := [2]uint64{maphash.String(s.seeds[0], l.ev.ID), maphash.String(s.seeds[1], l.ev.ID)}
		sum := maphash.Bytes(s.seeds[0], l.msg.Value)
		f, seen := first[k]
		switch {
		case !seen:
			first[k] = firstLine{line: l.n, sum: sum}
		case f.sum == sum:
			l.err, l.repeatOf = errRepeat, f.line
		default:
			l.err = &schemas.RejectError{Reason: ReasonDuplicateID, Field: "id",
				Detail: fmt.Sprintf("line %d has the same event id and other content: the hub applies one event per source and id and would ignore this one; give this change an id of its own", f.line)}
		}
	}
}

// decodeLines validates lines, on all cores; a line with an error
// already (too long to read) is left as it is.
func (p *Publisher) decodeLines(lines []fileLine) {
	now := time.Now()
	par.Ranges(len(lines), 256, func(lo, hi int) {
		var a arena
		for i := lo; i < hi; i++ {
			if l := &lines[i]; l.err == nil {
				l.ev, l.err = p.decodeLine(&a, l.text, &l.msg, now)
			}
		}
	})
}

// sendLines sends the valid lines and adds the outcome to rep, in line
// order.
func (p *Publisher) sendLines(ctx context.Context, lines []fileLine, rep *FileReport) error {
	msgs := make([]kafka.Message, len(lines))
	results := make([]Result, len(lines))
	for i := range lines {
		msgs[i], results[i] = lines[i].msg, Result{ID: lines[i].ev.ID, Err: lines[i].err}
	}
	if err := p.send(ctx, msgs, results, func(i int) *schemas.Event { return &lines[i].ev }); err != nil {
		return err
	}
	for i, r := range results {
		if lines[i].repeatOf > 0 {
			rep.Repeated++
			if len(rep.Repeats) < p.listBad {
				rep.Repeats = append(rep.Repeats, LineRepeat{Line: lines[i].n, First: lines[i].repeatOf})
			}
		} else if r.Err != nil {
			rep.BadLines++
			if len(rep.Bad) < p.listBad {
				rep.Bad = append(rep.Bad, LineError{Line: lines[i].n, Err: r.Err})
			}
		} else {
			rep.Published++
		}
	}
	return nil
}

// decodeLine validates a line as the hub will and makes its record: the
// event in its canonical encoding (what is sent) on its source's topic,
// keyed by its subject, so the hub's topic and key checks hold.
func (p *Publisher) decodeLine(a *arena, text []byte, msg *kafka.Message, now time.Time) (schemas.Event, error) {
	ev, err := schemas.Decode(schemas.Input{Value: text, Now: now})
	// An event of another source than the publisher's is reported as
	// that, whatever else is wrong with it (a type of the publisher's
	// source, a bad subject): the source is the attribute to fix, or the
	// file to publish elsewhere. Decode sets the source once it has read
	// the attribute; a value that is not JSON has none to speak of.
	wrongSource := p.cfg.Source != "" && ev.Source != "" && ev.Source != p.cfg.Source &&
		(err == nil || schemas.ReasonOf(err) != schemas.ReasonNotJSON)
	if err != nil && !wrongSource {
		return ev, err
	}
	if wrongSource {
		return ev, &schemas.RejectError{Reason: schemas.ReasonSourceMismatch, Field: "source",
			Detail: fmt.Sprintf("this file is published as %q events, not %s", p.cfg.Source, schemas.QuoteValue(string(ev.Source)))}
	}
	value, err := a.encode(&ev)
	if err != nil {
		return ev, &schemas.RejectError{Reason: schemas.ReasonInvalidData, Field: "data", Detail: err.Error()}
	}
	*msg = kafka.Message{Topic: p.topic(ev.Source), Key: a.copy(string(ev.Subject)), Value: value, Time: now}
	return ev, nil
}

// Close flushes and closes the producer: it waits until the Publish,
// PublishFile and PublishJSONL calls in flight have returned, their
// records acknowledged or given up (cancel their contexts to end them
// sooner), then closes the Kafka writer and its connections to the brokers. A Publish call in flight sends
// all its events. A PublishFile or PublishJSONL call in flight stops
// reading its input (at once, even while its reader has nothing to give):
// it sends the lines it read and returns an error that is ErrClosed to
// errors.Is and names the last line read; the lines after it are neither
// read nor sent. Calls made after Close has been called send nothing and
// return ErrClosed. It is safe to call more than once, and from several
// goroutines: each call returns once the publisher is closed.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.closing)
		p.mu.Unlock()
		p.calls.Wait()
		if err := p.w.Close(); err != nil {
			p.closeErr = fmt.Errorf("closing Kafka writer: %w", err)
		}
		p.transport.CloseIdleConnections()
	})
	return p.closeErr
}
