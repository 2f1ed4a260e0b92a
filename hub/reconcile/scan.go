package reconcile

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/sasl"
	"golang.org/x/sync/errgroup"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/schemas"
)

// KeyStore answers whether events were applied (hub.Store.KnownEvents, or
// HubClient over HTTP). It is called with at most hub.MaxKnownEvents keys.
type KeyStore interface {
	KnownEvents(ctx context.Context, keys []schemas.EventKey) ([]bool, error)
}

// Config configures Run.
type Config struct {
	// Brokers are the Kafka bootstrap brokers (required).
	Brokers []string
	// Group is the hub's consumer group (default "pophub").
	Group string
	// Sources to check (default all eight).
	Sources []schemas.Source
	// DLQTopic is the dead-letter topic (default schemas.DLQTopic).
	DLQTopic string
	// Store tells which events were applied (required).
	Store KeyStore
	// Timeout bounds each request to the broker (default 10s).
	Timeout time.Duration
	// FetchBytes bounds one fetch response (default 8 MiB).
	FetchBytes int
	// Parallel is how many partitions are scanned at once (default 8).
	Parallel int
	// SASL, when set, authenticates every connection to the brokers.
	SASL sasl.Mechanism
	// TLS, when set, is the client configuration for brokers that speak
	// TLS; nil connects in plaintext.
	TLS *tls.Config
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = "pophub"
	}
	if len(c.Sources) == 0 {
		c.Sources = schemas.Sources
	}
	if c.DLQTopic == "" {
		c.DLQTopic = schemas.DLQTopic
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.FetchBytes <= 0 {
		c.FetchBytes = 8 << 20
	}
	if c.Parallel <= 0 {
		c.Parallel = 8
	}
}

// Validate reports configuration errors.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("reconcile: no Kafka brokers"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("reconcile: no store"))
	}
	for _, s := range c.Sources {
		if !s.Valid() {
			errs = append(errs, fmt.Errorf("reconcile: unknown source %q", s))
		}
	}
	return errors.Join(errs...)
}

// Run reconciles the sources' topics against the DLQ and the store: it
// reads the group's committed offsets, scans every partition from its log
// start up to them, reads the whole DLQ, asks the store about the keys
// seen, and classifies every record (see Classify). Gaps are in the
// report; an error means the evidence could not be gathered.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	// A transport of its own, closed when the scan ends: kafka-go's
	// process-wide default would keep the scan's connections pooled.
	tr := &kafka.Transport{SASL: cfg.SASL, TLS: cfg.TLS, DialTimeout: cfg.Timeout}
	defer tr.CloseIdleConnections()
	r := &runner{cfg: cfg, client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.Timeout, Transport: tr}}
	return r.run(ctx)
}

type runner struct {
	cfg    Config
	client *kafka.Client
}

func (r *runner) run(ctx context.Context) (Report, error) {
	report := Report{Group: r.cfg.Group}
	topics := make([]string, len(r.cfg.Sources))
	for i, s := range r.cfg.Sources {
		topics[i] = schemas.Topic(s)
	}
	parts, err := r.partitions(ctx, topics)
	if err != nil {
		return report, err
	}
	// The committed offsets first: everything read afterwards (the log
	// end, the DLQ, the store) can only know more.
	committed, err := r.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: r.cfg.Group, Topics: parts})
	if err != nil {
		return report, fmt.Errorf("fetching the committed offsets of group %s: %w", r.cfg.Group, err)
	}
	switch {
	case errors.Is(committed.Error, kafka.GroupIdNotFound):
		committed.Topics = nil // a group that never committed (kfake says so)
	case committed.Error != nil:
		return report, fmt.Errorf("fetching the committed offsets of group %s: %w", r.cfg.Group, committed.Error)
	}
	spans, err := r.spans(ctx, parts)
	if err != nil {
		return report, err
	}
	for _, topic := range topics {
		sr := SourceReport{Source: schemas.SourceOfTopic(topic), Topic: topic}
		for _, p := range parts[topic] {
			sp := spans[topic][p]
			ps := PartitionSpan{Partition: p, LogStart: sp.first, End: sp.end, Committed: -1}
			for _, c := range committed.Topics[topic] {
				if c.Partition == p {
					if c.Error != nil {
						return report, fmt.Errorf("fetching the committed offset of %s/%d: %w", topic, p, c.Error)
					}
					ps.Committed = c.CommittedOffset
				}
			}
			sr.InFlight += max(ps.End-max(ps.Committed, ps.LogStart), 0)
			sr.ExpiredUnread += ps.ExpiredUnread()
			sr.Partitions = append(sr.Partitions, ps)
		}
		report.Sources = append(report.Sources, sr)
	}

	copies, n, err := r.readDLQ(ctx)
	if err != nil {
		return report, err
	}
	report.DLQRecords = n
	// One source at a time: keys are per source, so memory is bounded by
	// the largest source rather than the sum.
	for i := range report.Sources {
		recs, rejected, err := r.scanSources(ctx, report.Sources[i:i+1], copies)
		if err != nil {
			return report, err
		}
		isRejected := func(l Loc) bool { _, ok := rejected[l]; return ok }
		known, err := r.known(ctx, recs, rejected)
		if err != nil {
			return report, err
		}
		isKnown := func(k schemas.EventKey) bool { return known[k] }
		report.Tally(recs, Classify(recs, isRejected, isKnown))
	}
	return report, nil
}

// partitions lists each topic's partitions.
func (r *runner) partitions(ctx context.Context, topics []string) (map[string][]int, error) {
	meta, err := r.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("reading topic metadata: %w", err)
	}
	out := map[string][]int{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("reading metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			out[t.Name] = append(out[t.Name], p.ID)
		}
		slices.Sort(out[t.Name])
	}
	for _, t := range topics {
		if len(out[t]) == 0 {
			return nil, fmt.Errorf("reading metadata of %s: no partitions", t)
		}
	}
	return out, nil
}

// span is a partition's offsets: [first, end).
type span struct{ first, end int64 }

func (r *runner) spans(ctx context.Context, parts map[string][]int) (map[string]map[int]span, error) {
	reqs := map[string][]kafka.OffsetRequest{}
	for t, ps := range parts {
		for _, p := range ps {
			reqs[t] = append(reqs[t], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
		}
	}
	resp, err := r.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: reqs})
	if err != nil {
		return nil, fmt.Errorf("listing offsets: %w", err)
	}
	out := map[string]map[int]span{}
	for t, offs := range resp.Topics {
		out[t] = map[int]span{}
		for _, o := range offs {
			if o.Error != nil {
				return nil, fmt.Errorf("listing offsets of %s/%d: %w", t, o.Partition, o.Error)
			}
			out[t][o.Partition] = span{first: max(o.FirstOffset, 0), end: max(o.LastOffset, 0)}
		}
	}
	for t, ps := range parts {
		for _, p := range ps {
			if _, ok := out[t][p]; !ok {
				return nil, fmt.Errorf("listing offsets of %s/%d: no answer", t, p)
			}
		}
	}
	return out, nil
}

// scanSources reads every partition's records in [log start, committed),
// a few partitions at a time, and returns them in topic, partition and
// offset order, with the locations of those that a DLQ record in copies
// copies.
func (r *runner) scanSources(ctx context.Context, sources []SourceReport, copies rejectIndex) ([]Record, map[Loc]struct{}, error) {
	var mu sync.Mutex
	var out []Record
	rejected := map[Loc]struct{}{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Parallel)
	for _, s := range sources {
		src := s.Source
		for _, p := range s.Partitions {
			if p.Committed <= p.LogStart {
				continue
			}
			topic, part, from, to := s.Topic, p.Partition, p.LogStart, p.Committed
			g.Go(func() error {
				var recs []Record
				var rej []Loc
				err := r.scan(gctx, topic, part, from, to, func(off int64, key []byte, _ []kafka.Header, value []byte) {
					rec := Record{Loc: Loc{Topic: topic, Partition: part, Offset: off}}
					if copies.has(rec.Loc, key, value) {
						rej = append(rej, rec.Loc)
					}
					// The hub's own test: kafka-go hands it records of
					// control batches, which the scan does not see, and it
					// cannot tell them from data records of their shape.
					rec.Control = ingest.IsControl(key, value)
					rec.Key, rec.HasKey = EnvelopeKey(src, value)
					recs = append(recs, rec)
				})
				if err != nil {
					return err
				}
				mu.Lock()
				out = append(out, recs...)
				for _, l := range rej {
					rejected[l] = struct{}{}
				}
				mu.Unlock()
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	SortRecords(out)
	return out, rejected, nil
}

// EnvelopeKey reads the (source, id) of a record value with a minimal,
// tolerant JSON read: only "id" and "source" are looked at. ok is false
// when the value is not a JSON object with a non-empty string id and the
// source src (the hub rejects such a record, so it must be in the DLQ).
func EnvelopeKey(src schemas.Source, value []byte) (schemas.EventKey, bool) {
	var env struct {
		ID     *string `json:"id"`
		Source *string `json:"source"`
	}
	if err := json.Unmarshal(value, &env); err != nil || env.ID == nil || env.Source == nil || *env.ID == "" || schemas.Source(*env.Source) != src {
		return schemas.EventKey{}, false
	}
	return schemas.EventKey{Source: src, ID: *env.ID}, true
}

// fetchAttempts is how many times a fetch is tried when the broker is
// slow or busy (a timeout, a retriable Kafka error) before the scan gives
// up: a reconciliation of millions of records should not fail on one
// slow answer.
const fetchAttempts = 4

// fetch reads records of topic/partition from offset from, trying again
// with growing pauses after a transient failure.
func (r *runner) fetch(ctx context.Context, topic string, partition int, from int64) (*kafka.FetchResponse, error) {
	pause := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		resp, err := r.client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: partition, Offset: from,
			MinBytes: 1, MaxBytes: int64(r.cfg.FetchBytes), MaxWait: 500 * time.Millisecond})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err == nil {
			return resp, nil
		}
		if attempt == fetchAttempts || !transient(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause *= 2
	}
}

// transient reports whether a failed request may succeed when tried
// again: a network timeout, or a Kafka error the protocol calls
// retriable (a leader moving, a broker not yet ready).
func transient(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var ke kafka.Error
	return errors.As(err, &ke) && ke.Temporary()
}

// scan calls fn for every record of topic/partition in [from, to), in
// offset order, with fetch requests straight to the partition's leader.
// An offset with no record (compaction, transaction markers) is skipped.
func (r *runner) scan(ctx context.Context, topic string, partition int, from, to int64, fn func(offset int64, key []byte, headers []kafka.Header, value []byte)) error {
	for from < to {
		resp, err := r.fetch(ctx, topic, partition, from)
		if err != nil {
			return fmt.Errorf("reading %s/%d at %d: %w", topic, partition, from, err)
		}
		n := 0
		for {
			rec, err := resp.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading %s/%d at %d: %w", topic, partition, from, err)
			}
			if rec.Offset < from {
				continue
			}
			if rec.Offset >= to {
				from = to
				break
			}
			var key, value []byte
			if rec.Key != nil {
				if key, err = protocol.ReadAll(rec.Key); err != nil {
					return fmt.Errorf("reading %s/%d at %d: %w", topic, partition, rec.Offset, err)
				}
			}
			if rec.Value != nil {
				if value, err = protocol.ReadAll(rec.Value); err != nil {
					return fmt.Errorf("reading %s/%d at %d: %w", topic, partition, rec.Offset, err)
				}
			}
			fn(rec.Offset, key, rec.Headers, value)
			from = rec.Offset + 1
			n++
		}
		if n == 0 && from < to {
			if resp.HighWatermark <= from {
				return fmt.Errorf("reading %s/%d: the log ends at %d, before offset %d", topic, partition, resp.HighWatermark, to)
			}
			from++ // an offset without a data record
		}
	}
	return nil
}

// rejectCopy is what reconciliation keeps of a DLQ record: enough to tell
// whether the source record at the location it names is the one it
// copies. A topic deleted and created again gives its offsets out anew,
// so the location alone may name a newer record, which the old copy must
// not account for.
type rejectCopy struct {
	sum     contentDigest // contentSum of the copy's key and value, or of its key alone
	dropped string        // pophub-dropped: what the copy left out
}

// contentDigest is the first 16 bytes of a SHA-256: the index holds one
// per reject, millions for a large DLQ, and 128 bits keep a chance
// collision between the few copies that name one location out of reach.
type contentDigest [16]byte

// of reports whether the source record with key and value is the one c
// copies: the same key and value, or as much of them as the copy kept (a
// copy without its key and value has only its location to go by).
func (c rejectCopy) of(key, value []byte) bool {
	switch {
	case strings.Contains(c.dropped, "key"):
		return true
	case strings.Contains(c.dropped, "value"):
		return c.sum == contentSum(key, nil)
	}
	return c.sum == contentSum(key, value)
}

// contentSum digests a record's key and value. Kafka's null and empty
// read alike, as the hub reads them.
func contentSum(key, value []byte) contentDigest {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(key))))
	h.Write(key)
	h.Write(value)
	return contentDigest(h.Sum(nil))
}

// rejectIndex holds the DLQ's copies by the location they name. Nearly
// every location has one original, copied once or more alike, so the
// first copy is kept inline and only the rare different ones (a topic
// deleted and created again, rejected at a reused offset) in more.
type rejectIndex struct {
	first map[Loc]rejectCopy
	more  map[Loc][]rejectCopy
}

// add records c as a copy of the record at l.
func (x rejectIndex) add(l Loc, c rejectCopy) {
	if f, ok := x.first[l]; !ok {
		x.first[l] = c
	} else if f != c && !slices.Contains(x.more[l], c) {
		x.more[l] = append(x.more[l], c)
	}
}

// has reports whether a copy at l is of the record with key and value.
func (x rejectIndex) has(l Loc, key, value []byte) bool {
	f, ok := x.first[l]
	return ok && (f.of(key, value) || slices.ContainsFunc(x.more[l], func(c rejectCopy) bool { return c.of(key, value) }))
}

// readDLQ reads the whole DLQ and indexes its records by the location of
// the record each is a copy of. It returns how many records it read.
func (r *runner) readDLQ(ctx context.Context) (rejectIndex, int64, error) {
	parts, err := r.partitions(ctx, []string{r.cfg.DLQTopic})
	if err != nil {
		return rejectIndex{}, 0, err
	}
	spans, err := r.spans(ctx, parts)
	if err != nil {
		return rejectIndex{}, 0, err
	}
	var mu sync.Mutex
	out := rejectIndex{first: map[Loc]rejectCopy{}, more: map[Loc][]rejectCopy{}}
	var total int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Parallel)
	for p, sp := range spans[r.cfg.DLQTopic] {
		g.Go(func() error {
			type located struct {
				Loc
				rejectCopy
			}
			var locs []located
			err := r.scan(gctx, r.cfg.DLQTopic, p, sp.first, sp.end, func(_ int64, key []byte, headers []kafka.Header, value []byte) {
				if l, dropped, ok := dlqLoc(headers); ok {
					c := rejectCopy{sum: contentSum(key, value), dropped: dropped}
					if strings.Contains(dropped, "value") {
						c.sum = contentSum(key, nil)
					}
					locs = append(locs, located{l, c})
				}
			})
			if err != nil {
				return fmt.Errorf("reading the DLQ: %w", err)
			}
			mu.Lock()
			defer mu.Unlock()
			total += sp.end - sp.first
			for _, l := range locs {
				out.add(l.Loc, l.rejectCopy)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rejectIndex{}, 0, err
	}
	return out, total, nil
}

// dlqLoc reads where a DLQ record came from, and what it left out of the
// record (pophub-dropped). A record replayed and rejected again carries
// the headers twice; the last ones name the latest rejected record.
func dlqLoc(headers []kafka.Header) (l Loc, dropped string, ok bool) {
	l = Loc{Partition: -1, Offset: -1}
	for _, h := range headers {
		switch h.Key {
		case ingest.HeaderDropped:
			dropped = string(h.Value)
		case ingest.HeaderTopic:
			l.Topic = string(h.Value)
		case ingest.HeaderPartition:
			if n, err := strconv.Atoi(string(h.Value)); err == nil {
				l.Partition = n
			}
		case ingest.HeaderOffset:
			if n, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				l.Offset = n
			}
		}
	}
	return l, dropped, l.Topic != "" && l.Partition >= 0 && l.Offset >= 0
}

// known asks the store about every distinct key of the records not
// rejected, hub.MaxKnownEvents at a time.
func (r *runner) known(ctx context.Context, recs []Record, rejected map[Loc]struct{}) (map[schemas.EventKey]bool, error) {
	out := map[schemas.EventKey]bool{}
	var keys []schemas.EventKey
	for _, rec := range recs {
		if _, rej := rejected[rec.Loc]; rej || !rec.HasKey {
			continue
		}
		if _, ok := out[rec.Key]; !ok {
			out[rec.Key] = false
			keys = append(keys, rec.Key)
		}
	}
	for i := 0; i < len(keys); i += hub.MaxKnownEvents {
		chunk := keys[i:min(i+hub.MaxKnownEvents, len(keys))]
		ans, err := r.cfg.Store.KnownEvents(ctx, chunk)
		if err != nil {
			return nil, fmt.Errorf("asking the store about %d events: %w", len(chunk), err)
		}
		if len(ans) != len(chunk) {
			return nil, fmt.Errorf("asking the store about %d events: %d answers", len(chunk), len(ans))
		}
		for j, k := range chunk {
			out[k] = ans[j]
		}
	}
	return out, nil
}
