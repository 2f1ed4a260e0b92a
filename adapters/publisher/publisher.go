// Package publisher is the library a department system uses to publish its
// record changes to the hub.
//
// A Publisher validates each event locally exactly as the hub will (an
// encode and schemas.Decode round trip), sends the valid ones to the
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
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
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

	"github.com/pophub/pophub/schemas"
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
	// Source, when set, is the only source this publisher sends: events of
	// another source are rejected (reason source_mismatch) and not sent.
	Source schemas.Source
	// BatchSize bounds the records of one produce request per partition
	// (default 1000); BatchTimeout is how long a partial batch waits for
	// more records (default 10ms).
	BatchSize    int
	BatchTimeout time.Duration
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

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
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
	if c.Compression != NoCompression && c.Compression != 0 && c.Compression.Codec() == nil {
		return fmt.Errorf("compression %d is not a Kafka compression codec", c.Compression)
	}
	return nil
}

// Publisher sends events to the hub. It is safe for concurrent use; each
// Publish call waits for its own records' acknowledgements.
type Publisher struct {
	cfg       Config
	tracer    trace.Tracer
	fileChunk int // lines of a file validated and sent at once
	w         *kafka.Writer
	closeOnce sync.Once
	closeErr  error
}

// New creates a publisher. It does not connect until the first Publish.
// The hub's topics must exist: the publisher never creates topics.
func New(cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring publisher: %w", err)
	}
	cfg.setDefaults()
	w := &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...),
		// nil is kafka-go's default transport.
		Transport: transport(cfg.SASL),
		// Murmur2 is the Java client's partitioner: every department's
		// client puts one citizen on the same partition.
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		Async:                  false,
		MaxAttempts:            cfg.MaxAttempts,
		BatchSize:              cfg.BatchSize,
		BatchBytes:             16 << 20,
		BatchTimeout:           cfg.BatchTimeout,
		Compression:            cfg.Compression,
		AllowAutoTopicCreation: false,
	}
	return &Publisher{cfg: cfg, w: w, fileChunk: max(cfg.BatchSize, 8192),
		tracer: cfg.TracerProvider.Tracer("github.com/pophub/pophub/adapters/publisher")}, nil
}

// transport authenticates with m when set.
func transport(m sasl.Mechanism) kafka.RoundTripper {
	if m == nil {
		return nil
	}
	return &kafka.Transport{SASL: m, DialTimeout: 10 * time.Second}
}

// EventID derives a stable event id from the department's own record key
// and version, so that sending the same version twice is idempotent:
// "<source>-<first 96 bits of SHA-256 in hex>". The record key is hashed
// because it may hold personal data.
func EventID(source schemas.Source, recordKey string, version int64) string {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(recordKey))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, version, 10))
	return string(source) + "-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// Result is the outcome for one event: Err is nil when the broker
// acknowledged it. A validation failure is a *schemas.RejectError
// (schemas.ReasonOf gives its reason); such an event was not sent.
type Result struct {
	ID  string
	Err error
}

// headerCarrier writes trace context into Kafka headers.
type headerCarrier struct{ h *[]kafka.Header }

func (c headerCarrier) Get(key string) string {
	for _, h := range *c.h {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c headerCarrier) Set(k, v string) {
	for i, h := range *c.h {
		if h.Key == k {
			(*c.h)[i].Value = []byte(v)
			return
		}
	}
	*c.h = append(*c.h, kafka.Header{Key: k, Value: []byte(v)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(*c.h))
	for i, h := range *c.h {
		keys[i] = h.Key
	}
	return keys
}

// Publish validates events and sends the valid ones, waiting until the
// broker acknowledged them (or gave up). It returns one Result per event,
// in order. Invalid events are not sent; their Result says why. The
// returned error is set only when sending failed as a whole (broker
// unreachable, ctx done): then every valid event's Result carries it too,
// and none of them may be assumed delivered — send them again; the hub
// ignores the repeats.
func (p *Publisher) Publish(ctx context.Context, events ...schemas.Event) ([]Result, error) {
	results := make([]Result, len(events))
	values := p.validateAll(events, results)
	return results, p.send(ctx, events, values, results)
}

// send produces the events whose result has no error yet, with their
// encoded values, and records the outcome in results.
func (p *Publisher) send(ctx context.Context, events []schemas.Event, values [][]byte, results []Result) error {
	msgs := make([]kafka.Message, 0, len(events))
	idx := make([]int, 0, len(events))
	topic := "" // the records' topic, "" when they go to several
	for i, ev := range events {
		if results[i].Err != nil {
			continue
		}
		t := schemas.Topic(ev.Source)
		if len(msgs) == 0 {
			topic = t
		} else if t != topic {
			topic = ""
		}
		msgs = append(msgs, kafka.Message{Topic: t, Key: []byte(ev.Subject), Value: values[i]})
		idx = append(idx, i)
	}
	if len(msgs) == 0 {
		return nil
	}
	ctx, span := p.startSpan(ctx, topic, msgs, events, idx)
	defer span.End()
	var headers []kafka.Header
	p.cfg.Propagator.Inject(ctx, headerCarrier{&headers})
	for i := range msgs {
		msgs[i].Headers = headers
	}
	err := p.w.WriteMessages(ctx, msgs...)
	var werrs kafka.WriteErrors
	switch {
	case err == nil:
	case errors.As(err, &werrs) && len(werrs) == len(msgs):
		failed := 0
		for j, e := range werrs {
			if e != nil {
				results[idx[j]].Err = fmt.Errorf("sending to Kafka: %w", e)
				failed++
			}
		}
		span.SetAttributes(attribute.Int("pophub.publish.failed", failed))
		span.SetStatus(codes.Error, "the broker did not take some events")
		p.cfg.Logger.WarnContext(ctx, "publishing: the broker did not take some events", "failed", failed, "sent", len(msgs), "error", werrs[firstNonNil(werrs)])
	default:
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

// startSpan starts the producer span of one produce. Attributes are set
// only on a recording span; none names a citizen.
func (p *Publisher) startSpan(ctx context.Context, topic string, msgs []kafka.Message, events []schemas.Event, idx []int) (context.Context, trace.Span) {
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
	if len(msgs) == 1 {
		ev := events[idx[0]]
		attrs = append(attrs,
			attribute.String("messaging.message.id", ev.ID),
			attribute.String("cloudevents.event_id", ev.ID),
			attribute.String("cloudevents.event_source", string(ev.Source)),
			attribute.String("cloudevents.event_type", string(ev.Type)))
	} else {
		attrs = append(attrs, attribute.Int("messaging.batch.message_count", len(msgs)))
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

// validateAll validates events into their encoded values, setting the
// results' ids and validation errors. Decoding costs several microseconds
// an event, far more than producing it, so large batches are validated on
// all cores.
func (p *Publisher) validateAll(events []schemas.Event, results []Result) [][]byte {
	values := make([][]byte, len(events))
	parallel(len(events), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			results[i].ID = events[i].ID
			values[i], results[i].Err = p.validate(events[i])
		}
	})
	return values
}

// parallel runs fn over [0, n) split into ranges, one per core when n is
// large enough to be worth it.
func parallel(n int, fn func(lo, hi int)) {
	const chunk = 256
	workers := min(runtime.GOMAXPROCS(0), (n+chunk-1)/chunk)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		wg.Go(func() { fn(lo, min(lo+per, n)) })
	}
	wg.Wait()
}

// validate encodes the event and checks it exactly as the hub will.
func (p *Publisher) validate(ev schemas.Event) ([]byte, error) {
	if p.cfg.Source != "" && ev.Source != p.cfg.Source {
		return nil, &schemas.RejectError{Reason: schemas.ReasonSourceMismatch, Field: "source",
			Detail: fmt.Sprintf("this publisher sends only %q events, not %q", p.cfg.Source, ev.Source)}
	}
	value, err := schemas.Encode(ev)
	if err != nil {
		return nil, &schemas.RejectError{Reason: schemas.ReasonInvalidData, Field: "data", Detail: err.Error()}
	}
	if _, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: value}); err != nil {
		return nil, err
	}
	return value, nil
}

// FileReport summarises PublishFile.
type FileReport struct {
	// Read counts the non-blank lines.
	Read int
	// Published counts the events the broker acknowledged.
	Published int
	// Bad lists the lines not published, in line order.
	Bad []LineError
}

// LineError is a line of a file that was not published: invalid (a
// *schemas.RejectError) or not acknowledged.
type LineError struct {
	Line int
	Err  error
}

// PublishFile publishes a JSONL file of CloudEvents (one event per line,
// as `pophub synth` writes them), validating one chunk of lines while the
// previous one is being sent; records keep the file's order within each
// partition. Blank lines are skipped; a byte order mark and CRLF line
// ends are accepted. Bad lines are reported with their line number and not
// sent. The error is set only if the file cannot be read or sending failed
// as a whole; the report then covers the chunks sent before the failure,
// and the file can simply be published again (the hub applies each event
// once).
func (p *Publisher) PublishFile(ctx context.Context, path string) (FileReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileReport{}, fmt.Errorf("opening events file: %w", err)
	}
	defer f.Close()
	return p.PublishJSONL(ctx, f)
}

// PublishJSONL is PublishFile reading from r.
func (p *Publisher) PublishJSONL(ctx context.Context, r io.Reader) (FileReport, error) {
	var rep FileReport
	// Lines go in chunks: while one chunk is being sent (which takes at
	// least BatchTimeout), the next is read and validated.
	chunks := make(chan []fileLine, 1)
	var sent FileReport // Published and Bad, written by the sender only
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
		rep.Published, rep.Bad = sent.Published, sent.Bad
		if err == nil {
			err = sendErr
		}
		return rep, err
	}

	br := bufio.NewReaderSize(r, 1<<20)
	chunkSize := p.fileChunk
	var pending []fileLine
	for line := 1; ; line++ {
		text, readErr := br.ReadBytes('\n')
		if readErr != nil && readErr != io.EOF {
			return finish(fmt.Errorf("reading events file: %w", readErr))
		}
		text = bytes.TrimRight(text, "\r\n")
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
		}
		if len(bytes.TrimSpace(text)) > 0 {
			rep.Read++
			pending = append(pending, fileLine{n: line, text: text})
		}
		if len(pending) == chunkSize || readErr == io.EOF && len(pending) > 0 {
			if failed.Load() {
				break
			}
			p.decodeLines(pending)
			chunks <- pending
			pending = nil
		}
		if readErr == io.EOF {
			break
		}
	}
	return finish(nil)
}

// fileLine is a line of a file and, once decoded, its event.
type fileLine struct {
	n     int
	text  []byte
	ev    schemas.Event
	value []byte
	err   error
}

// decodeLines validates lines, on all cores.
func (p *Publisher) decodeLines(lines []fileLine) {
	parallel(len(lines), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			l := &lines[i]
			l.ev, l.value, l.err = p.decodeLine(l.text)
		}
	})
}

// sendLines sends the valid lines and adds the outcome to rep, in line
// order.
func (p *Publisher) sendLines(ctx context.Context, lines []fileLine, rep *FileReport) error {
	evs := make([]schemas.Event, len(lines))
	values := make([][]byte, len(lines))
	results := make([]Result, len(lines))
	for i, l := range lines {
		evs[i], values[i], results[i] = l.ev, l.value, Result{ID: l.ev.ID, Err: l.err}
	}
	if err := p.send(ctx, evs, values, results); err != nil {
		return err
	}
	for i, r := range results {
		if r.Err != nil {
			rep.Bad = append(rep.Bad, LineError{Line: lines[i].n, Err: r.Err})
		} else {
			rep.Published++
		}
	}
	return nil
}

// decodeLine validates a line as the hub will and returns the event in its
// canonical encoding, which is what is sent (it goes to its source's topic
// keyed by its subject, so the hub's topic and key checks hold).
func (p *Publisher) decodeLine(text []byte) (schemas.Event, []byte, error) {
	ev, err := schemas.Decode(schemas.Input{Value: text})
	if err != nil {
		return ev, nil, err
	}
	if p.cfg.Source != "" && ev.Source != p.cfg.Source {
		return ev, nil, &schemas.RejectError{Reason: schemas.ReasonSourceMismatch, Field: "source",
			Detail: fmt.Sprintf("this file is published as %q events, not %q", p.cfg.Source, ev.Source)}
	}
	value, err := schemas.Encode(ev)
	if err != nil {
		return ev, nil, &schemas.RejectError{Reason: schemas.ReasonInvalidData, Field: "data", Detail: err.Error()}
	}
	return ev, value, nil
}

// Close flushes and closes the producer. It is safe to call more than
// once; Publish must not be called after Close.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		if err := p.w.Close(); err != nil {
			p.closeErr = fmt.Errorf("closing Kafka writer: %w", err)
		}
	})
	return p.closeErr
}
