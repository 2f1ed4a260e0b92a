// Package publisher is the library a department system uses to publish its
// record changes to the hub: it validates each event locally against the
// contract, sends it to pop.events.<source> keyed by the citizen ID with
// kafka-go (acknowledged by all in-sync replicas, retried, batched), and
// reports a result per event.
//
// Event ids derived with EventID from the department's own record key and
// version make a re-send idempotent: the hub applies each (source, id) once.
package publisher

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/pophub/pophub/schemas"
)

// Config configures a Publisher.
type Config struct {
	// Brokers are the Kafka bootstrap addresses (required).
	Brokers []string
	// Source, when set, is the only source this publisher may send; events
	// of another source are reported as errors.
	Source schemas.Source
	// BatchSize and BatchTimeout bound producer batching (defaults 1000, 10ms).
	BatchSize    int
	BatchTimeout time.Duration
	// Compression of record batches (default none, which every broker
	// accepts; kafka.Snappy, kafka.Lz4 or kafka.Zstd where supported).
	Compression kafka.Compression
	// Propagator injects the trace context of Publish's ctx into record
	// headers (default W3C TraceContext).
	Propagator propagation.TextMapPropagator
	Logger     *slog.Logger
}

// Publisher sends events to the hub. It is safe for concurrent use.
type Publisher struct {
	cfg       Config
	w         *kafka.Writer
	closeOnce sync.Once
	closeErr  error
}

// New creates a publisher.
func New(cfg Config) (*Publisher, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("publisher: at least one Kafka broker is required")
	}
	if cfg.Source != "" && !cfg.Source.Valid() {
		return nil, fmt.Errorf("publisher: %q is not a department source", cfg.Source)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 10 * time.Millisecond
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.TraceContext{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...),
		// Murmur2 is the Java client's partitioner: every department's
		// client puts one citizen on the same partition.
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		MaxAttempts:            10,
		BatchSize:              cfg.BatchSize,
		BatchBytes:             16 << 20,
		BatchTimeout:           cfg.BatchTimeout,
		Compression:            cfg.Compression,
		AllowAutoTopicCreation: false,
	}
	return &Publisher{cfg: cfg, w: w}, nil
}

// EventID derives a stable event id from the department's own record key
// and version, so that sending the same version twice is idempotent. The
// record key is hashed: it may hold personal data.
func EventID(source schemas.Source, recordKey string, version int64) string {
	h := sha256.Sum256([]byte(string(source) + "\x00" + recordKey + "\x00" + strconv.FormatInt(version, 10)))
	return string(source) + "-" + hex.EncodeToString(h[:12])
}

// Result is the outcome for one event: Err is nil when the broker
// acknowledged it.
type Result struct {
	ID  string
	Err error
}

// headerCarrier writes trace context into Kafka headers.
type headerCarrier struct{ h *[]kafka.Header }

func (c headerCarrier) Get(string) string { return "" }
func (c headerCarrier) Set(k, v string)   { *c.h = append(*c.h, kafka.Header{Key: k, Value: []byte(v)}) }
func (c headerCarrier) Keys() []string    { return nil }

// Publish validates and sends events, waiting for the broker's
// acknowledgement. Invalid events are not sent; their Result carries the
// reason. The returned error is set only when sending failed as a whole.
func (p *Publisher) Publish(ctx context.Context, events ...schemas.Event) ([]Result, error) {
	results := make([]Result, len(events))
	msgs := make([]kafka.Message, 0, len(events))
	idx := make([]int, 0, len(events))
	var headers []kafka.Header
	p.cfg.Propagator.Inject(ctx, headerCarrier{&headers})
	for i, ev := range events {
		results[i].ID = ev.ID
		value, err := p.validate(ev)
		if err != nil {
			results[i].Err = err
			continue
		}
		msgs = append(msgs, kafka.Message{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: value, Headers: headers})
		idx = append(idx, i)
	}
	if len(msgs) == 0 {
		return results, nil
	}
	err := p.w.WriteMessages(ctx, msgs...)
	var werrs kafka.WriteErrors
	switch {
	case err == nil:
	case errors.As(err, &werrs) && len(werrs) == len(msgs):
		for j, e := range werrs {
			if e != nil {
				results[idx[j]].Err = fmt.Errorf("sending to Kafka: %w", e)
			}
		}
	default:
		for _, i := range idx {
			results[i].Err = fmt.Errorf("sending to Kafka: %w", err)
		}
		return results, fmt.Errorf("sending %d events: %w", len(msgs), err)
	}
	return results, nil
}

// validate encodes the event and checks it exactly as the hub will.
func (p *Publisher) validate(ev schemas.Event) ([]byte, error) {
	if p.cfg.Source != "" && ev.Source != p.cfg.Source {
		return nil, fmt.Errorf("event source %q: this publisher sends only %q", ev.Source, p.cfg.Source)
	}
	value, err := schemas.Encode(ev)
	if err != nil {
		return nil, err
	}
	if _, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(ev.Source), Value: value}); err != nil {
		return nil, err
	}
	return value, nil
}

// FileReport summarises PublishFile.
type FileReport struct {
	Read      int
	Published int
	Bad       []LineError
}

// LineError is a bad line of a file.
type LineError struct {
	Line int
	Err  error
}

// PublishFile publishes a JSONL file of CloudEvents (one event per line),
// in batches. Bad lines are reported with their line number and skipped.
func (p *Publisher) PublishFile(ctx context.Context, path string) (FileReport, error) {
	var rep FileReport
	f, err := os.Open(path)
	if err != nil {
		return rep, fmt.Errorf("opening events file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var batch []schemas.Event
	var lines []int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, err := p.Publish(ctx, batch...)
		if err != nil {
			return err
		}
		for i, r := range results {
			if r.Err != nil {
				rep.Bad = append(rep.Bad, LineError{Line: lines[i], Err: r.Err})
			} else {
				rep.Published++
			}
		}
		batch, lines = batch[:0], lines[:0]
		return nil
	}
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if len(text) == 0 {
			continue
		}
		rep.Read++
		ev, err := schemas.Decode(schemas.Input{Value: text})
		if err != nil {
			rep.Bad = append(rep.Bad, LineError{Line: line, Err: err})
			continue
		}
		if p.cfg.Source != "" && ev.Source != p.cfg.Source {
			rep.Bad = append(rep.Bad, LineError{Line: line, Err: fmt.Errorf("event source %q is not %q", ev.Source, p.cfg.Source)})
			continue
		}
		batch = append(batch, ev)
		lines = append(lines, line)
		if len(batch) == p.cfg.BatchSize {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("reading events file: %w", err)
	}
	return rep, flush()
}

// Close flushes and closes the producer. Safe to call twice.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.w.Close() })
	return p.closeErr
}
