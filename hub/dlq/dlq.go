// Package dlq inspects and replays the hub's dead-letter topic,
// pop.events.dlq, where hub/ingest copies every record it could not apply
// with the headers pophub-reason, pophub-field, pophub-error, pophub-topic,
// pophub-partition and pophub-offset; a copy that was too large for the
// DLQ lacks its value (or more) and says so in pophub-dropped.
//
// The DLQ topic has several partitions (ingest writes rejects keyed by the
// citizen ID), so a DLQ record is named by an ID "partition:offset", e.g.
// "3:17"; a bare offset is accepted when the topic has one partition.
//
// # Copies of one reject
//
// Ingest may copy one reject to the DLQ more than once: a group rebalance
// (another hub instance joining or leaving, partitions added) or a crash
// has it read a batch again, and the batch's rejects are copied again,
// naming the same origin (pophub-topic, pophub-partition, pophub-offset).
// The tools count an original once: Records lists its first copy, naming
// the others in Record.Copies, Summarize counts it once, and Replay sends
// it once (see Unique and Seen). Copies of one original are byte for byte
// the same, so a copy is one that names the same origin and holds the
// same key and value: a source topic deleted and created again starts its
// offsets anew, and a new reject at an offset an old one had is a reject
// of its own, as is a new record at a DLQ ID that a DLQ topic deleted and
// created again gives out a second time.
//
// # Replay
//
// Replay writes chosen records back to the topic named in their
// pophub-topic header, with their original key, value and headers (the
// pophub-* reject headers removed, a header pophub-replay-of naming the
// DLQ record added; headers of the original named pophub-*, which ingest
// renamed orig-pophub-*, go back under that name), through a writer with
// the Murmur2 partitioner and acknowledgement from all in-sync replicas.
// An empty key, value or header value goes back null: kafka-go's reader
// decodes empty and null alike as nil, in ingest and here.
//
// Which DLQ records were replayed is kept in a ledger topic,
// pop.events.dlq.replayed (one partition, compacted, key = the DLQ record
// ID, value naming the original's topic, partition and offset, created on
// first use). Replay reads the whole ledger first and skips the records it
// names and the other copies of their originals, so running the same
// replay twice sends each record once. A ledger entry is written only after the broker acknowledged the
// replayed records: a replay that dies in between sends those records
// again next time, never loses one. Replay writes in chunks and records
// each chunk before the next; an interrupted replay (a canceled context)
// stops only between chunks, so it has recorded everything it sent. A consumer-group offset could not do
// this job, since it is one watermark per partition while replays pick
// arbitrary records; scanning the source topics for pophub-replay-of
// headers would read every department's whole history.
//
// A record sent twice anyway (that crash window, or two operators
// replaying at the same moment) is harmless: the hub applies each
// (source, event id) once and counts the second copy as a duplicate. A
// replayed record that is still bad lands in the DLQ again, carrying
// pophub-replay-of, so `dlq list` shows it as a replay of the first.
//
// A department can send pophub-replay-of on a record of its own, and
// ingest cannot tell that header from Replay's. So the header is only a
// claim (Record.ReplayClaim) until the ledger confirms it: the DLQ record
// it names is in the ledger, replayed to this record's topic, and holds
// this record's key and value. A confirmed claim is Record.ReplayOf, and
// Replay drops its header (the new replay names its own DLQ record); an
// unconfirmed one stays among the record's own headers and goes back
// with them.
//
// Privacy: record keys and values hold citizen IDs. Record carries them
// for Replay; anything printed goes through Mask, which keeps the first
// four and last four characters of every ID-shaped run of digits.
package dlq

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/schemas"
)

// HeaderReplayOf is set on every replayed record: the ID of the DLQ record
// it was replayed from.
const HeaderReplayOf = ingest.HeaderReplayOf

// LedgerTopic is the default ledger of replayed DLQ records.
const LedgerTopic = schemas.DLQTopic + ".replayed"

// rejectHeaders are the headers ingest adds to a DLQ record, plus the one
// Replay adds; Replay strips them all before writing a record back, but
// for a pophub-replay-of the ledger does not confirm (Record.ReplayClaim).
var rejectHeaders = []string{ingest.HeaderReason, ingest.HeaderField, ingest.HeaderError,
	ingest.HeaderTopic, ingest.HeaderPartition, ingest.HeaderOffset, ingest.HeaderDropped, HeaderReplayOf}

// Config configures a Client. The zero value with Brokers set is usable.
type Config struct {
	// Brokers are the Kafka bootstrap brokers (required).
	Brokers []string
	// Topic is the DLQ topic. Default schemas.DLQTopic.
	Topic string
	// LedgerTopic records replayed DLQ records. Default LedgerTopic.
	LedgerTopic string
	// Timeout bounds each request to the broker. Default 10s.
	Timeout time.Duration
	// ReplayChunk is how many records Replay writes at a time: it records
	// each acknowledged chunk in the ledger before writing the next, and
	// stops for a canceled context only between chunks, so an interrupted
	// replay has recorded all it sent. Default 2000.
	ReplayChunk int
	// TLS, when set, is the client configuration for brokers that speak
	// TLS; nil connects in plaintext.
	TLS *tls.Config
	// SASL, when set, authenticates every connection to the brokers:
	// under an access policy, an administrator's SCRAM-SHA-512 identity
	// (only administrators may read the DLQ and write back to the source
	// topics). Nil for brokers that ask for none.
	SASL sasl.Mechanism
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = schemas.DLQTopic
	}
	if c.LedgerTopic == "" {
		c.LedgerTopic = LedgerTopic
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.ReplayChunk <= 0 {
		c.ReplayChunk = 2000
	}
}

// Validate reports configuration errors.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("dlq: no Kafka brokers")
	}
	return nil
}

// Client reads and replays the DLQ. It keeps no connection open between
// calls and is safe for concurrent use; concurrent replays may send a
// record twice (see the package comment), which the hub tolerates.
type Client struct {
	cfg    Config
	client *kafka.Client
}

// New returns a client for the DLQ described by cfg. It does not contact
// the brokers.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A transport of its own rather than kafka-go's process-wide default:
	// its pooled connections are to these brokers only, and none is left
	// for another client to pick up after the brokers went away.
	cl := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.Timeout,
		Transport: &kafka.Transport{TLS: cfg.TLS, SASL: cfg.SASL, DialTimeout: cfg.Timeout}}
	return &Client{cfg: cfg, client: cl}, nil
}

// ID names a DLQ record: its partition and offset in the DLQ topic.
// Partition is -1 when parsed from a bare offset and not yet resolved.
type ID struct {
	Partition int
	Offset    int64
}

// String formats the ID as "partition:offset".
func (id ID) String() string {
	return strconv.Itoa(id.Partition) + ":" + strconv.FormatInt(id.Offset, 10)
}

// ParseID parses "partition:offset" or a bare "offset" (Partition -1,
// resolved by the client when the DLQ has a single partition).
func ParseID(s string) (ID, error) {
	p, o, found := strings.Cut(strings.TrimSpace(s), ":")
	if !found {
		p, o = "-1", p
	}
	part, perr := strconv.Atoi(p)
	off, oerr := strconv.ParseInt(o, 10, 64)
	if perr != nil || oerr != nil || part < -1 || (found && part < 0) || off < 0 {
		return ID{}, fmt.Errorf("parsing DLQ record %q: want PARTITION:OFFSET (as `dlq list` prints) or OFFSET", s)
	}
	return ID{Partition: part, Offset: off}, nil
}

// Record is one DLQ record, decoded. Key, Value and Headers are the
// original record's and hold citizen IDs: print them only through Mask.
type Record struct {
	ID   ID
	Time time.Time // when ingest wrote it to the DLQ

	Key, Value []byte
	// Headers are the original record's headers, without the pophub-*
	// headers ingest and Replay add.
	Headers []kafka.Header

	Reason string // pophub-reason
	Field  string // pophub-field, may be empty
	Error  string // pophub-error; never holds a citizen ID
	// Topic, Partition and Offset locate the original record. Topic is
	// empty and Partition and Offset are -1 when the header is missing.
	Topic     string
	Partition int
	Offset    int64
	// ReplayOf is the DLQ record this one is a failed replay of, if any,
	// as the replay ledger confirms (see ReplayClaim).
	ReplayOf string
	// ReplayClaim is a pophub-replay-of the record carries that the
	// ledger does not confirm: a department may send that header on its
	// own record, well-formed, and ingest cannot tell it from Replay's.
	// It is then the record's own header, kept in Headers, and Replay
	// sends it back. Decode alone, which reads no ledger, puts any claim
	// here; Records and Record move a confirmed one to ReplayOf.
	ReplayClaim string
	// Dropped (pophub-dropped) names what ingest left out of a copy too
	// large for the DLQ: "value", or "key,value,headers".
	// Such a record
	// cannot be replayed; the original is at Topic, Partition and Offset
	// only until the source topic's retention deletes it. Empty for a
	// whole copy.
	Dropped string
	// OriginalGone is set on a copy with Dropped whose source partition
	// no longer holds Offset, as Record and Replay found (Records does not
	// look): the topic's retention deleted the original (or the topic
	// went), and what the copy left out is lost. Record and a replay by ID
	// set it too when the partition holds another record with another key
	// at Offset (a topic deleted and created again): a copy without its
	// value kept the key.
	OriginalGone bool
	// OriginalUnknown, when not empty, says why Record or Replay could not
	// check a copy with Dropped against its source partition
	// (no leader during an election, a broker slow to answer): whether
	// the original is still there is unknown, and OriginalGone is false.
	// The look is best effort, so it never fails a listing.
	OriginalUnknown string
	// Copies are the other DLQ records that copy the same original (the
	// same Topic, Partition and Offset, key and value), later than this
	// one: ingest reads a batch again after a group rebalance or a crash
	// and copies its rejects again. Records lists such a reject once, here.
	Copies []ID
}

// Source is the department whose topic the original record was on, or ""
// when pophub-topic is missing or not a source topic.
func (r Record) Source() schemas.Source { return schemas.SourceOfTopic(r.Topic) }

// Origin locates an original record: its topic, partition and offset.
// Every DLQ copy of one original names the same origin.
type Origin struct {
	Topic     string
	Partition int
	Offset    int64
}

// Origin returns where r's original is, and false when r's headers do not
// say (a copy without them is a reject of its own).
func (r Record) Origin() (Origin, bool) {
	if r.Topic == "" || r.Partition < 0 || r.Offset < 0 {
		return Origin{}, false
	}
	return Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}, true
}

// copyOf identifies an original: where it was and what it held. The
// origin alone is not enough, since a topic deleted and created again
// gives its offsets out anew.
type copyOf struct {
	Origin
	sum string // replaySum of the key and value
}

// original returns what identifies r's original, and false when r's
// headers do not say where it was.
func (r Record) original() (copyOf, bool) {
	o, ok := r.Origin()
	if !ok {
		return copyOf{}, false
	}
	return copyOf{Origin: o, sum: replaySum(r.Key, r.Value)}, true
}

// Unique returns recs with each original once: the first copy in the
// order given, the IDs of the later ones appended to its Copies. A copy
// names the same origin and holds the same key and value. Records without
// an origin are kept, each as its own.
func Unique(recs []Record) []Record {
	first := map[copyOf]int{} // index in out
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		o, ok := r.original()
		if !ok {
			out = append(out, r)
			continue
		}
		if i, seen := first[o]; seen {
			// Clipped on entry, so this append never writes into
			// the caller's Copies.
			out[i].Copies = append(out[i].Copies, r.ID)
			out[i].Copies = append(out[i].Copies, r.Copies...)
			continue
		}
		first[o] = len(out)
		r.Copies = slices.Clip(r.Copies)
		out = append(out, r)
	}
	return out
}

// Seen remembers the originals of the DLQ records given to it (origin,
// key and value, as Unique tells them), for a reader that counts the DLQ
// a few records at a time (a status page) and, like Records, counts each
// original once. Ingest writes the copies of one original with its key,
// so they are in one DLQ partition while the partition count stays the
// same.
type Seen map[copyOf]struct{}

// First reports whether r is the first copy of its original s was given,
// and remembers it; a record without an origin is always first.
func (s Seen) First(r Record) bool {
	o, ok := r.original()
	if !ok {
		return true
	}
	if _, seen := s[o]; seen {
		return false
	}
	s[o] = struct{}{}
	return true
}

// Decode reads message m of DLQ partition p, as Records does, for readers
// of the DLQ's own (a status page counting it incrementally). The hub's
// headers follow the original record's, starting with its pophub-reason (the last one), and only those
// are read: ingest renames a department's own pophub-* headers, but copies
// written before it did keep them, ahead of the hub's, and a department's
// pophub-dropped must not make Replay refuse a whole copy nor its
// pophub-reason show as the hub's. The one exception is pophub-replay-of:
// such copies carry the one Replay wrote among the original's headers, so
// it is read from there when the hub's headers lack it. A record without
// pophub-reason is read whole, the last of each header counting.
//
// The pophub-replay-of read is only a claim (ReplayClaim), its header kept
// in Headers: ingest keeps a well-formed one the record carried, which
// Replay wrote or a department did. Records and Record confirm it against
// the replay ledger.
func Decode(p int, m kafka.Message) Record {
	r := Record{ID: ID{Partition: p, Offset: m.Offset}, Time: m.Time, Key: m.Key, Value: m.Value, Partition: -1, Offset: -1}
	own := 0 // index of the hub's first header
	for i, h := range m.Headers {
		if h.Key == ingest.HeaderReason {
			own = i
		}
	}
	claim := -1 // index of the pophub-replay-of read: the hub's last, else the original's last
	for i, h := range m.Headers {
		if h.Key == HeaderReplayOf && (i >= own || claim < own) {
			claim = i
		}
	}
	if claim >= 0 {
		r.ReplayClaim = string(m.Headers[claim].Value)
	}
	for i, h := range m.Headers {
		v := string(h.Value)
		if i == claim {
			r.Headers = append(r.Headers, h)
			continue
		}
		if i < own {
			if !slices.Contains(rejectHeaders, h.Key) {
				r.Headers = append(r.Headers, h)
			}
			continue
		}
		switch h.Key {
		case ingest.HeaderReason:
			r.Reason = v
		case ingest.HeaderField:
			r.Field = v
		case ingest.HeaderError:
			r.Error = v
		case ingest.HeaderTopic:
			r.Topic = v
		case ingest.HeaderPartition:
			if n, err := strconv.Atoi(v); err == nil {
				r.Partition = n
			}
		case ingest.HeaderOffset:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				r.Offset = n
			}
		case ingest.HeaderDropped:
			r.Dropped = v
		}
		if !slices.Contains(rejectHeaders, h.Key) {
			r.Headers = append(r.Headers, h)
		}
	}
	return r
}

// confirmReplays moves to ReplayOf the replay claims of recs that the
// ledger confirms (see confirm), reading the ledger, unless d is given,
// and the claimed records not in have.
func (c *Client) confirmReplays(ctx context.Context, spans map[int]Span, recs []Record, have map[ID]Record, d *replayed) error {
	if !slices.ContainsFunc(recs, func(r Record) bool { return r.ReplayClaim != "" }) {
		return nil
	}
	if d == nil {
		l, err := c.ledger(ctx)
		if err != nil {
			return err
		}
		d = &l
	}
	for i := range recs {
		r := &recs[i]
		id, err := ParseID(r.ReplayClaim)
		if r.ReplayClaim == "" || err != nil || id.Partition < 0 || d.topics[id.String()] == "" {
			continue
		}
		x, ok := have[id]
		if !ok {
			if _, err := resolve(id, spans); err != nil {
				// Not in the DLQ any more (an operator deleted it):
				// the ledger's entry alone confirms it.
				d.confirmGone(r, id)
				continue
			}
			xs, err := c.records(ctx, spans, []ID{id})
			if err != nil {
				return fmt.Errorf("reading DLQ record %s, which record %s says it is a replay of: %w", id, r.ID, err)
			}
			x = xs[0]
		}
		d.confirm(r, x)
	}
	return nil
}

// confirm moves r's replay claim to ReplayOf, and drops its header, when
// it names x, an earlier DLQ record of another origin, that the ledger
// records as replayed to r's topic and that holds r's key and value (what
// Replay sends, and all of them a copy too large for the DLQ kept). A
// department can still claim a replay of x on a record it sends with x's
// key and value to x's topic after x was replayed: the record is then
// the one Replay sent, and the claim as good as true.
func (d replayed) confirm(r *Record, x Record) {
	if x.ID != r.ID && !x.Time.After(r.Time) && d.topics[x.ID.String()] == r.Topic && x.Topic == r.Topic {
		xo, _ := x.Origin()
		if ro, ok := r.Origin(); ok && ro == xo {
			return // a copy of x's original, not a replay of it
		}
		if (strings.Contains(r.Dropped, "key") || string(r.Key) == string(x.Key)) &&
			(strings.Contains(r.Dropped, "value") || string(r.Value) == string(x.Value)) {
			r.confirmClaim()
		}
	}
}

// confirmGone is confirm for a claimed DLQ record no longer in the DLQ,
// by the ledger's entry alone: it names r's topic and, where it records
// the digest of the key and value Replay sent (entries from when it was
// recorded on), that is r's. An entry without one confirms by the topic:
// the key and value are gone with the record.
func (d replayed) confirmGone(r *Record, id ID) {
	if d.topics[id.String()] != r.Topic {
		return
	}
	if sum := d.sums[id.String()]; sum != "" && r.Dropped == "" && sum != replaySum(r.Key, r.Value) {
		return
	}
	r.confirmClaim()
}

// confirmClaim makes r's replay claim its ReplayOf and drops the header
// that carried it.
func (r *Record) confirmClaim() {
	i := slices.IndexFunc(r.Headers, func(h kafka.Header) bool {
		return h.Key == HeaderReplayOf && string(h.Value) == r.ReplayClaim
	})
	if i >= 0 {
		r.Headers = slices.Delete(slices.Clone(r.Headers), i, i+1)
	}
	r.ReplayOf, r.ReplayClaim = r.ReplayClaim, ""
}

// Filter selects records by source and reason; empty fields match all.
type Filter struct {
	Source schemas.Source
	Reason string
}

// Validate rejects unknown sources and reasons, so that a typo does not
// look like an empty DLQ.
func (f Filter) Validate() error {
	if f.Source != "" && !f.Source.Valid() {
		return fmt.Errorf("unknown source %q (want one of %s)", f.Source, joinSources())
	}
	if f.Reason != "" && !slices.Contains(schemas.Reasons, f.Reason) {
		return fmt.Errorf("unknown reason %q (want one of %s)", f.Reason, strings.Join(schemas.Reasons, ", "))
	}
	return nil
}

func (f Filter) match(r Record) bool {
	return (f.Source == "" || r.Source() == f.Source) && (f.Reason == "" || r.Reason == f.Reason)
}

func joinSources() string {
	var s []string
	for _, src := range schemas.Sources {
		s = append(s, string(src))
	}
	return strings.Join(s, ", ")
}

// Span is the offsets a partition holds: [First, End).
type Span struct{ First, End int64 }

// offsets returns each partition's offset span of topic.
func (c *Client) offsets(ctx context.Context, topic string) (map[int]Span, error) {
	return Spans(ctx, c.client, topic)
}

// Spans returns each partition's offset span of topic, asking through cl.
// A missing topic yields kafka.UnknownTopicOrPartition.
func Spans(ctx context.Context, cl *kafka.Client, topic string) (map[int]Span, error) {
	meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("reading metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 {
		return nil, fmt.Errorf("reading metadata of %s: %w", topic, kafka.UnknownTopicOrPartition)
	}
	if err := meta.Topics[0].Error; err != nil {
		return nil, fmt.Errorf("reading metadata of %s: %w", topic, err)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", topic, outOfTime(ctx, err))
	}
	out := map[int]Span{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			err := po.Error
			if errors.Is(err, kafka.Unknown) {
				err = outOfTime(ctx, err)
			}
			return nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, po.Partition, err)
		}
		out[po.Partition] = Span{First: max(po.FirstOffset, 0), End: max(po.LastOffset, 0)}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("listing offsets of %s: no partitions", topic)
	}
	return out, nil
}

// outOfTime is err, or the context's deadline when the call's time is
// up. kafka-go ends a request at the context's deadline with an i/o
// timeout, which may come before the context says it is done, and marks
// each partition of a request that so failed with the bare code -1
// (Unknown, "an unexpected server error occurred"): that reads as a
// broker fault where the caller only ran out of time.
func outOfTime(ctx context.Context, err error) error {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// ReaderMaxWait is the MaxWait of the DLQ's partition readers. kafka-go
// gives a fetch answer only MaxWait to start arriving before it drops the
// connection and asks again: at 100 ms a broker slower or farther away
// than that (a busy broker, a round trip across provinces) was asked again
// for ever. Records still come at once (MinBytes 1).
const ReaderMaxWait = 2 * time.Second

// CloseReader closes r in the background: a reader's Close waits for the
// fetch it has in flight past the last record read, a long poll of up to
// ReaderMaxWait, which a command reading many partitions should not wait
// for each time.
func CloseReader(r *kafka.Reader) { go r.Close() }

// read calls fn for each record of topic/partition in [from, to).
func (c *Client) read(ctx context.Context, topic string, partition int, from, to int64, fn func(kafka.Message) error) error {
	if from >= to {
		return nil
	}
	// A reader dials for itself, not through the client's transport: it
	// needs the same TLS and SASL in a dialer of its own.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.cfg.Brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: ReaderMaxWait,
		Dialer: &kafka.Dialer{Timeout: c.cfg.Timeout, DualStack: true, TLS: c.cfg.TLS, SASLMechanism: c.cfg.SASL}})
	defer CloseReader(r)
	if err := r.SetOffset(from); err != nil {
		return fmt.Errorf("seeking %s/%d to %d: %w", topic, partition, from, err)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		m, err := r.FetchMessage(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("reading %s/%d at %d: %w", topic, partition, from, err)
		}
		if m.Offset >= to {
			return nil
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset+1 >= to {
			return nil
		}
		from = m.Offset + 1
	}
}

// Records reads the whole DLQ and returns the records f selects, ordered
// by time of rejection (then partition and offset), each original once:
// the first copy, naming the later ones in Copies (see Unique). The first
// copy decides whether f selects an original. A record's replay claim is
// its ReplayOf only when the ledger confirms it (see the package comment).
func (c *Client) Records(ctx context.Context, f Filter) ([]Record, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	spans, err := c.offsets(ctx, c.cfg.Topic)
	if err != nil {
		return nil, err
	}
	var all []Record
	for p, s := range spans {
		err := c.read(ctx, c.cfg.Topic, p, s.First, s.End, func(m kafka.Message) error {
			all = append(all, Decode(p, m))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading the DLQ: %w", err)
		}
	}
	have := make(map[ID]Record, len(all))
	for _, r := range all {
		have[r.ID] = r
	}
	if err := c.confirmReplays(ctx, spans, all, have, nil); err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b Record) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID.Partition, b.ID.Partition), cmp.Compare(a.ID.Offset, b.ID.Offset))
	})
	return slices.DeleteFunc(Unique(all), func(r Record) bool { return !f.match(r) }), nil
}

// originalCheckTimeout bounds each request checkOriginals makes to a
// source topic, and originalCheckBudget the whole check. The look is best
// effort: a source partition without a leader or a slow broker must not
// hold up dlq show or dlq replay for the client's whole Timeout, only
// leave the original unknown.
const (
	originalCheckTimeout = 2 * time.Second
	originalCheckBudget  = 5 * time.Second
)

// checkOriginals sets OriginalGone on the copies in recs that left parts
// out whose source partition no longer holds the original, and
// OriginalUnknown on those it could not check. A copy written whole
// needs no original, so only those copies cost a look at their source
// topics: one offsets request per topic, which tells an original that
// retention deleted, and, with readKeys, a read of the record at the
// origin for a copy that kept its key, which tells one whose topic was
// deleted and created again (its offset now holds another key). dlq show
// and a replay by ID read keys; a replay by source, reason or all, which
// refuses every such copy anyway, does not read the originals of possibly
// thousands.
// After a read of a topic failed, its other keys are not read.
func (c *Client) checkOriginals(ctx context.Context, recs []Record, readKeys bool) {
	ctx, cancel := context.WithTimeout(ctx, originalCheckBudget)
	defer cancel()
	type source struct {
		spans   map[int]Span // nil for a topic that is gone
		err     error        // of the offsets request
		readErr error        // of an earlier read of a key
	}
	sources := map[string]*source{}
	for i := range recs {
		r := &recs[i]
		o, ok := r.Origin()
		if r.Dropped == "" || !ok {
			continue
		}
		src := sources[o.Topic]
		if src == nil {
			src = &source{}
			tctx, cancel := context.WithTimeout(ctx, originalCheckTimeout)
			src.spans, src.err = c.offsets(tctx, o.Topic)
			cancel()
			if errors.Is(src.err, kafka.UnknownTopicOrPartition) {
				src.err = nil // the topic went, and every original with it
			}
			sources[o.Topic] = src
		}
		if src.err != nil {
			r.OriginalUnknown = "could not check the source partition: " + src.err.Error()
			continue
		}
		p, ok := src.spans[o.Partition]
		if !ok || o.Offset < p.First || o.Offset >= p.End {
			r.OriginalGone = true
			continue
		}
		if !readKeys || strings.Contains(r.Dropped, "key") {
			continue // not read, or nothing to tell the original from another record by
		}
		if src.readErr != nil {
			r.OriginalUnknown = "could not read the record at the original's offset: an earlier read of " + o.Topic + " failed (" + src.readErr.Error() + ")"
			continue
		}
		key, held, err := c.keyAt(ctx, o)
		if err != nil {
			src.readErr = err
			r.OriginalUnknown = "could not check the source partition: " + err.Error()
			continue
		}
		r.OriginalGone = !held || string(key) != string(r.Key)
	}
}

// keyAt returns the key of the record at o, an offset its partition's
// span holds (nil for a record without one, as Decode reads a null key),
// and false when no record has that offset any more (compaction removed
// it, or a transaction marker has it).
func (c *Client) keyAt(ctx context.Context, o Origin) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, originalCheckTimeout)
	defer cancel()
	resp, err := c.client.Fetch(ctx, &kafka.FetchRequest{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset,
		MinBytes: 1, MaxBytes: 1, MaxWait: originalCheckTimeout}) // the broker still answers the batch at o, however large
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s/%d at %d: %w", o.Topic, o.Partition, o.Offset, outOfTime(ctx, err))
	}
	for {
		rec, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			if resp.HighWatermark <= o.Offset {
				// A leader that does not hold the offset yet (one just
				// elected, catching up) proves nothing.
				return nil, false, fmt.Errorf("reading %s/%d at %d: the partition's leader answers up to offset %d only", o.Topic, o.Partition, o.Offset, resp.HighWatermark)
			}
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("reading %s/%d at %d: %w", o.Topic, o.Partition, o.Offset, err)
		}
		if rec.Offset < o.Offset {
			continue // the answer starts at its batch's first offset
		}
		if rec.Offset > o.Offset {
			return nil, false, nil
		}
		if rec.Key == nil {
			return nil, true, nil
		}
		key, err := io.ReadAll(rec.Key)
		if err != nil {
			return nil, false, fmt.Errorf("reading the key at %s/%d@%d: %w", o.Topic, o.Partition, o.Offset, err)
		}
		return key, true, nil
	}
}

// ErrUnknownRecord is returned for an ID the DLQ does not hold.
var ErrUnknownRecord = errors.New("no such DLQ record")

// resolve fills in a bare offset's partition and checks that the DLQ holds
// the record.
func resolve(id ID, spans map[int]Span) (ID, error) {
	if id.Partition < 0 {
		if len(spans) != 1 {
			return id, fmt.Errorf("DLQ record %d: the DLQ has %d partitions, give PARTITION:OFFSET as `dlq list` prints", id.Offset, len(spans))
		}
		for p := range spans {
			id.Partition = p
		}
	}
	s, ok := spans[id.Partition]
	if !ok {
		return id, fmt.Errorf("DLQ record %s: %w (the DLQ has no partition %d)", id, ErrUnknownRecord, id.Partition)
	}
	if id.Offset < s.First || id.Offset >= s.End {
		if s.First == s.End {
			return id, fmt.Errorf("DLQ record %s: %w (partition %d is empty)", id, ErrUnknownRecord, id.Partition)
		}
		return id, fmt.Errorf("DLQ record %s: %w (partition %d holds offsets %d to %d)", id, ErrUnknownRecord, id.Partition, s.First, s.End-1)
	}
	return id, nil
}

// Record reads one DLQ record, its replay claim checked as Records checks
// it.
func (c *Client) Record(ctx context.Context, id ID) (Record, error) {
	spans, err := c.offsets(ctx, c.cfg.Topic)
	if err != nil {
		return Record{}, err
	}
	recs, err := c.records(ctx, spans, []ID{id})
	if err != nil {
		return Record{}, err
	}
	if err := c.confirmReplays(ctx, spans, recs, nil, nil); err != nil {
		return Record{}, err
	}
	c.checkOriginals(ctx, recs, true)
	return recs[0], nil
}

// records reads the given records, in the order given.
func (c *Client) records(ctx context.Context, spans map[int]Span, ids []ID) ([]Record, error) {
	out := make([]Record, len(ids))
	for i, id := range ids {
		id, err := resolve(id, spans)
		if err != nil {
			return nil, err
		}
		found := false
		err = c.read(ctx, c.cfg.Topic, id.Partition, id.Offset, id.Offset+1, func(m kafka.Message) error {
			if m.Offset == id.Offset {
				out[i], found = Decode(id.Partition, m), true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading DLQ record %s: %w", id, err)
		}
		if !found {
			return nil, fmt.Errorf("DLQ record %s: %w", id, ErrUnknownRecord)
		}
	}
	return out, nil
}

// Summary counts records by source and reason. Records whose pophub-topic
// is missing or not a source topic count under source "".
type Summary struct {
	Total int
	// Copies counts the DLQ records beyond the first of their original
	// (Record.Copies), which Total and the counts leave out.
	Copies   int
	BySource map[schemas.Source]int
	ByReason map[string]int
	// Counts is by source, then reason.
	Counts map[schemas.Source]map[string]int
}

// Summarize counts recs, as Records returns them: each original once.
func Summarize(recs []Record) Summary {
	s := Summary{BySource: map[schemas.Source]int{}, ByReason: map[string]int{}, Counts: map[schemas.Source]map[string]int{}}
	for _, r := range recs {
		src := r.Source()
		s.Total++
		s.Copies += len(r.Copies)
		s.BySource[src]++
		s.ByReason[r.Reason]++
		if s.Counts[src] == nil {
			s.Counts[src] = map[string]int{}
		}
		s.Counts[src][r.Reason]++
	}
	return s
}
