package importer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/kafkaheaders"
	"github.com/pophub/pophub/schemas"
)

// checkpoint is the progress of an import into one Kafka cluster, kept
// next to the file.
//
// Invariant: every line up to LinesAcked was acknowledged by the brokers
// of Cluster or is in Rejected, and every record of a line not
// acknowledged (later, or in Rejected) sent before the checkpoint was
// written lies at or after Offsets in its partition. So a resume skips
// the lines up to LinesAcked that are not in Rejected, and reads the topic
// from Offsets on: the events found there are lines already sent (Kafka
// acknowledged them but the run stopped before it could checkpoint them).
//
// Rejected holds the lines up to LinesAcked that were rejected and not
// sent since. Whether a line is valid depends on when it is validated (a
// time in the future, the day after) and on the pophub that validates it
// (its table of region codes), so a line rejected then may be valid now:
// a resume, even of a complete checkpoint, sends such a line.
type checkpoint struct {
	Version    int            `json:"version"`
	File       string         `json:"file"`
	Size       int64          `json:"size"`
	SHA256     string         `json:"sha256"`
	Source     schemas.Source `json:"source"`
	Format     Format         `json:"format"`
	Mapping    string         `json:"mapping_sha256,omitempty"`
	Encoding   string         `json:"encoding,omitempty"`         // CSV: the one the file was read in
	Delimiter  string         `json:"delimiter,omitempty"`        // CSV: the cells' delimiter other than the comma
	Sheet      string         `json:"sheet,omitempty"`            // XLSX: the sheet read; see checkpointSheet
	Cluster    string         `json:"kafka_cluster_id,omitempty"` // from the cluster's metadata; see sameTopic
	LinesAcked int            `json:"lines_acknowledged"`
	Rejected   lineRanges     `json:"rejected_lines,omitempty"` // [first, last] line ranges, sorted
	Sent       int            `json:"sent"`
	Offsets    map[int]int64  `json:"offsets"` // partition → offset
	Complete   bool           `json:"complete"`
	Updated    time.Time      `json:"updated"`
}

// sameImport reports whether c checkpoints the import described by o: the
// same bytes, source, format, mapping, encoding and delimiter (a different
// mapping yields different events; a CSV file read in another encoding or
// delimiter, other names or cells, or valid lines where there were
// rejects). The sheet of a workbook is compared apart, to say so.
func (c *checkpoint) sameImport(o *checkpoint) bool {
	return c.Version == o.Version && c.Size == o.Size && c.SHA256 == o.SHA256 && c.Source == o.Source &&
		c.Format == o.Format && c.Mapping == o.Mapping && c.Encoding == o.Encoding && c.Delimiter == o.Delimiter
}

// sameTopic says why the checkpoint, of the same import, cannot be
// resumed on the topic of cluster whose partitions end at end, or "" if it
// can. Resuming skips lines the checkpoint counts as sent, so any doubt
// that they are on this topic means importing afresh: that only sends
// some lines again, whose events the hub recognises (their ids are
// derived from the lines) and drops. Hence a checkpoint that names no
// cluster (written before checkpoints did) or a cluster that gives no id
// is not resumed, and nor is one whose offsets the topic is behind: the
// topic was recreated, or is another cluster's that has the same id (a
// kfake broker started without kfake.ClusterID calls itself "kfake").
func (c *checkpoint) sameTopic(cluster string, end map[int]int64) string {
	switch {
	case c.Cluster == "":
		return "the checkpoint found does not say which Kafka cluster it is for"
	case cluster == "":
		return "the Kafka cluster gives no id to match the checkpoint found"
	case c.Cluster != cluster:
		return "the checkpoint found is for another Kafka cluster"
	}
	for p, off := range c.Offsets {
		if end[p] < off {
			return "the topic holds fewer records than the checkpoint found counted: it is another cluster's, or was recreated"
		}
	}
	return ""
}

// checkpointOf returns the checkpoint of a fresh import of the file, of
// size and digest sum: what a checkpoint found must match to be resumed
// (see sameImport), but for the sheet of a workbook, which only reading
// it tells.
func (c *Config) checkpointOf(size int64, sum string) (*checkpoint, error) {
	ck := &checkpoint{Version: checkpointVersion, File: filepath.Base(c.File), Size: size, SHA256: sum, Source: c.Source, Format: c.Format}
	if c.Mapping != nil && c.Format != JSONL {
		ck.Mapping = c.Mapping.digest
	}
	if c.Format == CSV {
		var err error
		if ck.Encoding, err = csvEncoding(c.File, c.csvEncoding()); err != nil {
			return nil, fmt.Errorf("checking %s: %w", c.File, err)
		}
		if d := c.csvDelimiter(); d != ',' {
			ck.Delimiter = delimiterName(d)
		}
	}
	return ck, nil
}

// checkpointSheet returns the sheet of a workbook whose lines a
// checkpoint of this same import counts, when the mapping names none: the
// sheet it names, or, when it names none, the first sheet, which pophub
// read before checkpoints named the sheet. Reading it again resumes the
// checkpoint, however often the import stops, whichever sheet a fresh
// import would choose.
func checkpointSheet(cfg *Config) (resumeSheet, error) {
	if cfg.Format != XLSX || cfg.Mapping.Sheet != "" {
		return resumeSheet{}, nil
	}
	prev, err := loadCheckpoint(cfg.CheckpointFile)
	if err != nil || prev == nil || prev.Format != XLSX || prev.Version != checkpointVersion {
		return resumeSheet{}, err
	}
	st, err := os.Stat(cfg.File)
	if err != nil || st.Size() != prev.Size {
		return resumeSheet{}, nil // not this file: set aside later, if anything
	}
	sum, err := fileDigest(cfg.File)
	if err != nil {
		return resumeSheet{}, err
	}
	ck, err := cfg.checkpointOf(st.Size(), sum)
	if err != nil || !prev.sameImport(ck) {
		return resumeSheet{}, err
	}
	return resumeSheet{name: prev.Sheet, first: prev.Sheet == ""}, nil
}

// checkpointVersion is the version of the checkpoints written. Version 1
// recorded no Rejected lines: its lines up to LinesAcked may include
// rejected ones that are valid now, which resuming it would skip for
// good. So such a checkpoint is set aside, like any other doubt (see
// sameTopic): importing afresh sends lines again, which the hub drops,
// but never leaves a valid line unsent.
const checkpointVersion = 2

func loadCheckpoint(path string) (*checkpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	var c checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("reading checkpoint %s: %w", path, err)
	}
	return &c, nil
}

// save writes the checkpoint atomically: a crash leaves the old one or the
// new one, never half of one.
func (c *checkpoint) save(path string) error {
	c.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding checkpoint: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	return nil
}

// newWriter configures kafka-go as the publisher does (adapters/publisher):
// the Java client's murmur2 partitioner, acknowledgement by all in-sync
// replicas, no auto-created topics, batches of at most the brokers'
// default message.max.bytes before compression, which they never refuse. The importer does not send through
// publisher.Publish, which would validate each event a second time:
// validation is the costliest step, and the spool holds exactly what was
// validated.
func newWriter(cfg *Config) *kafka.Writer {
	return &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Transport:              cfg.kafkaTransport(),
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		MaxAttempts:            10,
		BatchSize:              cfg.BatchSize,
		BatchBytes:             publisher.DefaultBatchBytes,
		BatchTimeout:           cfg.BatchTimeout,
		Compression:            cfg.Compression,
		AllowAutoTopicCreation: false,
	}
}

// kafkaTransport is the import's connection pool to the brokers (TLS when
// configured): Run's own, whose connections it closes when it returns,
// rather than kafka-go's process-wide default, which would keep those of
// every import a program runs; outside Run, a new one.
func (c *Config) kafkaTransport() *kafka.Transport {
	if c.transport != nil {
		return c.transport
	}
	return &kafka.Transport{SASL: c.SASL, TLS: c.TLS, DialTimeout: 10 * time.Second}
}

// brokerError adds to err, from the first request to the brokers, what a
// connection closed without an answer most likely means: kafka-go only
// says EOF when a broker that requires SASL drops a client that does not
// log in, or the hub's own broker one whose login it refuses.
//
// With SASL, a topic the user may not describe looks missing: a Kafka
// user sees only the topics its ACLs grant, and kafka-go gives an unseen
// topic as unknown.
func (c *Config) brokerError(err error) error {
	switch {
	case c.SASL == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		return fmt.Errorf("%w (the broker closed the connection: does it require SASL credentials?)", err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		// The hub's own broker refuses a login so, where Kafka answers
		// [58]; a client cannot tell it from a connection lost.
		return fmt.Errorf("%w (the broker closed the connection: a connection lost, or the Kafka credentials refused: are they right?)", err)
	case c.SASL != nil && errors.Is(err, kafka.UnknownTopicOrPartition):
		return fmt.Errorf("%w (or the Kafka user may not describe the topic: a user sees only the topics its ACLs grant; check its publish grants in the access policy)", err)
	}
	return err
}

// startSending prepares the sending of an import whose file digest is in
// rep: it loads the checkpoint and, when it is of the same import into
// the same cluster's topic (see sameTopic), resumes from it (reading the
// ids of what an earlier run sent past it), else sets it aside
// (Report.SetAside) and checkpoints the start. It returns nil when the
// checkpoint says the file was imported completely before, no line
// rejected.
func startSending(ctx context.Context, cfg *Config, rep *Report) (*sender, error) {
	st, err := os.Stat(cfg.File)
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", cfg.File, err)
	}
	topic := schemas.Topic(cfg.Source)
	ck, err := cfg.checkpointOf(st.Size(), rep.SHA256)
	if err != nil {
		return nil, err
	}
	ck.Sheet = rep.Sheet
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 30 * time.Second, Transport: cfg.kafkaTransport()}

	prev, err := loadCheckpoint(cfg.CheckpointFile)
	if err != nil {
		return nil, err
	}
	if prev != nil && cfg.Format == XLSX && prev.Format == XLSX && prev.Sheet == "" && (cfg.resume.first || cfg.Mapping.Sheet != "") {
		// Written before checkpoints named the sheet, of the one this
		// run reads too: the mapping's, else the first.
		prev.Sheet = ck.Sheet
	}
	var end map[int]int64
	if ck.Cluster, end, err = topicState(ctx, client, topic); err != nil {
		return nil, cfg.brokerError(err)
	}
	switch {
	case prev == nil:
	case prev.Version < checkpointVersion:
		rep.SetAside = "the checkpoint found was written by an earlier pophub, which did not record the lines it rejected (some may be valid now)"
	case !prev.sameImport(ck):
		rep.SetAside = "the checkpoint found is of another version of the file, mapping or encoding"
	case prev.Sheet != ck.Sheet:
		rep.SetAside = fmt.Sprintf("the checkpoint found counts the lines of the workbook's sheet %q, and this run reads sheet %q: name the sheet in the mapping (sheet:) to choose it", prev.Sheet, ck.Sheet)
	default:
		rep.SetAside = prev.sameTopic(ck.Cluster, end)
	}
	var seen map[string]bool // events already on the topic past the checkpoint
	switch {
	case prev != nil && rep.SetAside == "":
		rep.Resumed, rep.Resumable = true, true
		if prev.Complete && len(prev.Rejected) == 0 {
			cfg.Logger.InfoContext(ctx, "importing: this file was imported completely before", "file", cfg.File)
			return nil, nil
		}
		// An unfinished import, or a complete one some of whose lines
		// were rejected: those valid now are sent.
		ck.LinesAcked, ck.Sent, ck.Offsets, ck.Rejected, ck.Complete = prev.LinesAcked, prev.Sent, prev.Offsets, prev.Rejected, prev.Complete
		if seen, err = scanIDs(ctx, client, topic, prev.Offsets); err != nil {
			return nil, fmt.Errorf("reading what an earlier run sent: %w", err)
		}
		cfg.Logger.InfoContext(ctx, "importing: resuming", "file", cfg.File, "lines_acknowledged", prev.LinesAcked,
			"lines_rejected_before", prev.Rejected.count(), "events_past_checkpoint", len(seen))
	case prev != nil:
		cfg.Logger.WarnContext(ctx, "importing: the checkpoint is set aside; starting over", "checkpoint", cfg.CheckpointFile, "reason", rep.SetAside)
		fallthrough
	default:
		// Checkpoint the start, so that a run stopped in its first chunk
		// is resumed like any other.
		ck.Offsets = end
		if err := ck.save(cfg.CheckpointFile); err != nil {
			return nil, err
		}
	}
	s := &sender{cfg: cfg, rep: rep, client: client, topic: topic, ck: ck, seen: seen,
		fromAcked: ck.LinesAcked, fromRejected: ck.Rejected, unsent: ck.Rejected}
	if ck.LinesAcked < math.MaxInt {
		s.unsent = s.unsent.union(lineRanges{{ck.LinesAcked + 1, math.MaxInt}})
	}
	return s, nil
}

// sentBefore reports whether an earlier run sent line, by the checkpoint
// resumed from: a line it acknowledged and did not reject.
func (s *sender) sentBefore(line int) bool {
	return line <= s.fromAcked && !s.fromRejected.has(line)
}

// pending counts the spooled events to send: those past the checkpointed
// line and not already on the topic. It also drops from s.seen the events
// on the topic that are not lines of this file still ahead (another
// system's, on the same topic), so that once the run has passed the lines
// left in it, checkpoints move on to new offsets.
func (s *sender) pending(spool io.Reader) (int, error) {
	r := bufio.NewReaderSize(spool, 1<<20)
	n := 0
	ahead := map[string]bool{}
	for {
		e, err := readSpool(r)
		if err == io.EOF {
			s.seen = ahead
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		switch {
		case s.sentBefore(e.line):
		case s.seen[e.id]:
			ahead[e.id] = true
		default:
			n++
		}
	}
}

// sender sends an import's valid events.
type sender struct {
	cfg    *Config
	rep    *Report
	client *kafka.Client
	topic  string
	ck     *checkpoint // as last saved
	// seen holds the events an earlier run sent past the checkpoint that
	// this run has not passed yet. While it is not empty, checkpoints keep
	// the old offsets: those events lie between them and the topic's end.
	seen map[string]bool
	// The checkpoint resumed from (zero for a fresh import): lines up to
	// fromAcked were sent, but for fromRejected. unsent is the lines no
	// earlier run sent: fromRejected and those after fromAcked.
	fromAcked    int
	fromRejected lineRanges
	unsent       lineRanges
}

// run sends the events next yields, in line order, a chunk at a time,
// skipping what an earlier run sent and checkpointing after acknowledged
// chunks; once next says io.EOF, it checkpoints the import as complete.
func (s *sender) run(ctx context.Context, next func() (spooled, error), prog *progress) error {
	cfg := s.cfg
	w := newWriter(cfg)
	defer w.Close()
	var headers []kafka.Header
	propagation.TraceContext{}.Inject(ctx, kafkaheaders.Carrier{Headers: &headers})

	lastSave := time.Now()
	msgs := make([]kafka.Message, 0, cfg.ChunkSize)
	sent := s.ck.Sent
	for n, eof := 0, false; !eof; n++ {
		msgs = msgs[:0]
		now := time.Now()   // the records' timestamp
		first, last := 0, 0 // lines of the chunk
		for len(msgs) < cfg.ChunkSize {
			e, err := next()
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				return err
			}
			if s.sentBefore(e.line) {
				s.rep.AlreadySent++
				continue
			}
			if s.seen[e.id] {
				delete(s.seen, e.id)
				s.rep.AlreadySent++
				continue
			}
			if first == 0 {
				first = e.line
			}
			last = e.line
			msgs = append(msgs, kafka.Message{Topic: s.topic, Key: e.key, Value: e.value, Headers: headers, Time: now})
		}
		if len(msgs) == 0 {
			break
		}
		// A failure leaves the saved checkpoint, which is valid: the
		// records acknowledged since (of this chunk too, perhaps) lie past
		// its offsets, where the next run looks for them.
		s.rep.Resumable = true
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return fmt.Errorf("sending lines %d–%d: %w", first, last, err)
		}
		s.rep.Sent += len(msgs)
		sent += len(msgs)
		prog.set(int64(s.rep.Sent), int64(s.rep.Sent))
		if cfg.hookOK != nil {
			if err := cfg.hookOK(n); err != nil {
				return err // a crash: no checkpoint
			}
		}
		if time.Since(lastSave) >= cfg.CheckpointInterval && !eof {
			if err := s.save(ctx, last, sent, false); err != nil {
				return err
			}
			lastSave = time.Now()
		}
	}
	return s.save(ctx, math.MaxInt, sent, true)
}

// save checkpoints the lines up to last, whose events have been
// acknowledged, with the topic's end offsets taken now, after their
// acknowledgement and before any later line is sent; or, while lines an
// earlier run sent may lie ahead, with the old offsets.
func (s *sender) save(ctx context.Context, last, sent int, complete bool) error {
	ck := *s.ck
	ck.LinesAcked, ck.Sent, ck.Complete = max(s.fromAcked, last), sent, complete || s.ck.Complete
	ck.Rejected = s.rejectedUpTo(last, ck.LinesAcked)
	if len(s.seen) == 0 {
		offs, err := endOffsets(ctx, s.client, s.topic)
		if err != nil {
			return err
		}
		ck.Offsets = offs
	}
	if err := ck.save(s.cfg.CheckpointFile); err != nil {
		return err
	}
	*s.ck = ck
	return nil
}

// rejectedUpTo is what a checkpoint of the lines up to acked, this run
// having had the lines up to last acknowledged, records as rejected: the
// lines an earlier run rejected that this run has not reached, and the
// lines up to last this run rejected that no earlier run sent (one
// rejected now that an earlier run sent stays sent). Validation has
// judged every line up to last: it hands on a line only after the lines
// before it.
func (s *sender) rejectedUpTo(last, acked int) lineRanges {
	var ahead lineRanges
	if last < acked {
		ahead = s.fromRejected.clip(last+1, acked)
	}
	var now lineRanges
	if s.rep.lines != nil {
		now = s.rep.lines.upTo(min(last, acked)).intersect(s.unsent)
	}
	return ahead.union(now)
}

// endOffsets returns the end offset of every partition of topic.
func endOffsets(ctx context.Context, client *kafka.Client, topic string) (map[int]int64, error) {
	_, end, err := topicState(ctx, client, topic)
	return end, err
}

// topicState returns the cluster's id ("" if it gives none) and the end
// offset of every partition of topic.
func topicState(ctx context.Context, client *kafka.Client, topic string) (string, map[int]int64, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return "", nil, fmt.Errorf("reading metadata of %s: %w", topic, err)
	}
	var reqs []kafka.OffsetRequest
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return "", nil, fmt.Errorf("reading metadata of %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafka.LastOffsetOf(p.ID))
		}
	}
	if len(reqs) == 0 {
		return "", nil, fmt.Errorf("reading metadata of %s: %w", topic, kafka.UnknownTopicOrPartition)
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return "", nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64, len(reqs))
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return "", nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return md.ClusterID, out, nil
}

// scanIDs reads the ids of the events on topic from the given offsets to
// the current end.
func scanIDs(ctx context.Context, client *kafka.Client, topic string, from map[int]int64) (map[string]bool, error) {
	end, err := endOffsets(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	parts := make([]int, 0, len(end))
	for p := range end {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	ids := map[string]bool{}
	for _, p := range parts {
		off := from[p] // a partition added since starts at 0
		for off < end[p] {
			res, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: p, Offset: off,
				MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
			if err == nil {
				err = res.Error
			}
			if err != nil {
				return nil, fmt.Errorf("fetching %s/%d from %d: %w", topic, p, off, err)
			}
			next, err := readIDs(res.Records, off, end[p], ids)
			if err != nil {
				return nil, fmt.Errorf("reading %s/%d: %w", topic, p, err)
			}
			if next == off {
				break // nothing more to read (a gap, or control records)
			}
			off = next
		}
	}
	return ids, nil
}

// readIDs adds the event ids of the records in [from, end) to ids and
// returns the offset after the last record read.
func readIDs(rr kafka.RecordReader, from, end int64, ids map[string]bool) (int64, error) {
	next := from
	for {
		rec, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return next, nil
		}
		if err != nil {
			return next, err
		}
		if rec.Offset < from || rec.Offset >= end {
			continue // batches may start before the offset asked for
		}
		next = rec.Offset + 1
		v, err := kafka.ReadAll(rec.Value)
		if err != nil {
			return next, err
		}
		var ev struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(v, &ev) == nil && ev.ID != "" {
			ids[ev.ID] = true
		}
	}
}
