package dlq

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
)

// Selection chooses the records Replay sends: exactly one of IDs, a
// filter (Source, Reason, or both, which narrow each other) and All.
// Source alone is All for one department: after a fix for one source, its
// rejects go back without the others', which may still be bad.
type Selection struct {
	IDs    []ID
	Source schemas.Source
	Reason string
	All    bool
}

// ErrSelection is Validate's error when not exactly one choice is made.
var ErrSelection = errors.New("choose the records to replay: DLQ record IDs, a source and/or a reason, or all")

// Validate checks that exactly one choice is made and that the source and
// the reason are known, as Filter.Validate does for Records: a typo must
// not look like a source without rejects.
func (s Selection) Validate() error {
	n := 0
	if len(s.IDs) > 0 {
		n++
	}
	if s.Source != "" || s.Reason != "" {
		n++
	}
	if s.All {
		n++
	}
	if n != 1 {
		return ErrSelection
	}
	return s.filter().Validate()
}

// filter is the Filter of a selection by source and reason; of All, the
// empty one.
func (s Selection) filter() Filter { return Filter{Source: s.Source, Reason: s.Reason} }

// ReplayResult says what Replay did (or, dry, would do).
type ReplayResult struct {
	// Chosen are the selected records, in the order of the selection
	// (IDs) or of rejection (source, reason, all), each original once (see
	// Unique): of several copies of one original, the first.
	Chosen []Record
	// Sent are the records written back to their topics (to be written,
	// in a dry run).
	Sent []Record
	// Skipped are chosen records the ledger says were replayed before:
	// the record, or another copy of its original.
	Skipped []Record
	DryRun  bool
}

// ledgerEntry is the value of a ledger record; its key is the DLQ ID.
// Partition and Offset, with Topic, name the original, so that another
// copy of it is not replayed again; entries written before they were
// recorded lack them.
type ledgerEntry struct {
	Topic     string `json:"topic"`
	Partition *int   `json:"partition,omitempty"`
	Offset    *int64 `json:"offset,omitempty"`
	// Sum is the digest of the key and value sent (replaySum), by which a
	// replay rejected again is told from a department's claim once the
	// DLQ record it replayed has been deleted; entries written before it
	// was recorded lack it.
	Sum        string    `json:"sum,omitempty"`
	ReplayedAt time.Time `json:"replayed_at"`
}

// replaySum is the digest of a record's key and value that the ledger
// keeps: no personal data, only enough to recognise the record again.
func replaySum(key, value []byte) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(key)))
	h.Write(n[:])
	h.Write(key)
	h.Write(value)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// replayed is what the ledger says was replayed: DLQ record IDs, the
// topics they were replayed to, and the originals the entries name.
type replayed struct {
	ids    map[string]bool
	topics map[string]string // by DLQ record ID; absent for an entry not naming it
	sums   map[string]string // by DLQ record ID; absent for an entry without one
	// origins holds, by origin, the sums of the records replayed from
	// it, "" for an entry without one.
	origins map[Origin]map[string]bool
}

// has reports whether r, another copy of its original that Records or
// Unique found (r.Copies), or any copy the ledger names by its origin was
// replayed. An entry that records the digest of what it sent matches only
// a record with that key and value: a topic deleted and created again
// gives its offsets out anew, and the new reject at an old position (the
// source topic's or the DLQ's) is not the one replayed. An entry without
// one matches by position alone.
func (d replayed) has(r Record) bool {
	sum := replaySum(r.Key, r.Value)
	byID := func(id ID) bool {
		s, ok := d.sums[id.String()]
		return d.ids[id.String()] && (!ok || s == sum)
	}
	if byID(r.ID) || slices.ContainsFunc(r.Copies, byID) {
		return true
	}
	o, ok := r.Origin()
	return ok && (d.origins[o][""] || d.origins[o][sum])
}

// Replay writes the selected records back to the topics they were
// rejected from, skipping those the ledger names, and then records them in
// the ledger. With dryRun it only reports what it would send.
//
// Copies of one original (see Unique) count as one: of those chosen, the
// first is sent, and none if the ledger names any copy of it (by ID, or by
// origin in entries that record it, and by the digest of its key and value
// in entries that record that) as replayed.
//
// It checks everything before sending anything: an ID the DLQ does not
// hold (ErrUnknownRecord), a record without a source topic in
// pophub-topic, or a copy that lacks parts of the original (Dropped: it
// was too large for the DLQ, and sending it would apply a truncated
// record) fails the whole replay; for such a copy the error says whether
// the source topic still holds the original, or its retention deleted it,
// or that it could not be checked. It writes in chunks of
// Config.ReplayChunk records and records each acknowledged chunk in the
// ledger before writing the next. On a failed write it records in the
// ledger the records the broker did acknowledge and returns the error;
// canceling ctx stops it between chunks. Either way the result's Sent are
// the records acknowledged so far, and calling Replay again sends the rest.
func (c *Client) Replay(ctx context.Context, sel Selection, dryRun bool) (ReplayResult, error) {
	res := ReplayResult{DryRun: dryRun}
	if err := sel.Validate(); err != nil {
		return res, err
	}
	spans, err := c.offsets(ctx, c.cfg.Topic)
	if err != nil {
		return res, err
	}
	done, err := c.ledger(ctx)
	if err != nil {
		return res, err
	}
	keysRead := len(sel.IDs) > 0 // see checkOriginals
	if keysRead {
		ids := make([]ID, 0, len(sel.IDs))
		for _, id := range sel.IDs {
			id, err := resolve(id, spans)
			if err != nil {
				return res, err
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		res.Chosen, err = c.records(ctx, spans, ids)
		if err == nil {
			err = c.confirmReplays(ctx, spans, res.Chosen, nil, &done)
		}
		res.Chosen = Unique(res.Chosen)
		if err == nil {
			c.checkOriginals(ctx, res.Chosen, true)
		}
	} else {
		res.Chosen, err = c.Records(ctx, sel.filter())
		if err == nil {
			c.checkOriginals(ctx, res.Chosen, false)
		}
	}
	if err != nil {
		return res, err
	}

	var bad []string
	for _, r := range res.Chosen {
		switch {
		case r.Topic == "":
			bad = append(bad, fmt.Sprintf("DLQ record %s has no %s header, so its original topic is unknown", r.ID, "pophub-topic"))
		case r.Source() == "":
			bad = append(bad, fmt.Sprintf("DLQ record %s names topic %q, which is not a source topic", r.ID, r.Topic))
		case r.Dropped != "" && r.OriginalGone:
			bad = append(bad, fmt.Sprintf("DLQ record %s is a copy without its %s (too large for the DLQ), and %s partition %d no longer holds the original at offset %d "+
				"(deleted by the topic's retention, or with the topic): the original's %s is lost", r.ID, r.Dropped, r.Topic, r.Partition, r.Offset, r.Dropped))
		case r.Dropped != "" && r.OriginalUnknown != "":
			bad = append(bad, fmt.Sprintf("DLQ record %s is a copy without its %s (too large for the DLQ); whether %s partition %d still holds the original at offset %d "+
				"is unknown (%s)", r.ID, r.Dropped, r.Topic, r.Partition, r.Offset, r.OriginalUnknown))
		case r.Dropped != "" && !keysRead && !strings.Contains(r.Dropped, "key"):
			bad = append(bad, fmt.Sprintf("DLQ record %s is a copy without its %s (too large for the DLQ); %s partition %d still holds offset %d, "+
				"the original's only until the topic's retention deletes it, unless the topic was deleted and created again (`pophub dlq show %s` tells)",
				r.ID, r.Dropped, r.Topic, r.Partition, r.Offset, r.ID))
		case r.Dropped != "":
			bad = append(bad, fmt.Sprintf("DLQ record %s is a copy without its %s (too large for the DLQ); the original is in %s partition %d at offset %d "+
				"only until the topic's retention deletes it", r.ID, r.Dropped, r.Topic, r.Partition, r.Offset))
		}
	}
	if len(bad) > 0 {
		return res, fmt.Errorf("cannot replay: %s (replay the others by ID)", strings.Join(bad, "; "))
	}

	for _, r := range res.Chosen {
		if done.has(r) {
			res.Skipped = append(res.Skipped, r)
		} else {
			res.Sent = append(res.Sent, r)
		}
	}
	if dryRun || len(res.Sent) == 0 {
		return res, nil
	}
	if err := c.ensureLedger(ctx); err != nil {
		return res, err
	}

	todo := res.Sent
	res.Sent = nil
	w := c.writer("")
	// Closing a synchronous writer only drops its connections: every
	// record it wrote was acknowledged or failed by then, so a failed
	// Close does not make the count of sent records wrong.
	defer w.Close()
	for len(todo) > 0 {
		// Cancellation is honoured only here, between chunks: a chunk once
		// started is written and recorded to the end, so that what the
		// broker acknowledged is always in the ledger and in res.Sent.
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("replaying records: stopped after %d of %d: %w", len(res.Sent), len(res.Sent)+len(todo), err)
		}
		chunk := todo[:min(len(todo), c.cfg.ReplayChunk)]
		todo = todo[len(chunk):]
		acked, werr := c.send(ctx, w, chunk)
		res.Sent = append(res.Sent, acked...)
		if lerr := c.recordDetached(ctx, acked); lerr != nil {
			return res, errors.Join(werr, lerr)
		}
		if werr != nil {
			return res, werr
		}
	}
	return res, nil
}

// send writes one chunk of records back to their topics and returns those
// the broker acknowledged: all of them, the ones a kafka.WriteErrors does
// not fail, or none when the error does not say. The write is not
// canceled with ctx (only bounded in time), because a write abandoned
// halfway leaves records on the topic that nobody knows to record in the
// ledger.
func (c *Client) send(ctx context.Context, w *kafka.Writer, chunk []Record) ([]Record, error) {
	msgs, now := make([]kafka.Message, len(chunk)), time.Now()
	for i, r := range chunk {
		headers := append(restoreNames(r.Headers), kafka.Header{Key: HeaderReplayOf, Value: []byte(r.ID.String())})
		msgs[i] = kafka.Message{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: headers, Time: now}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.chunkTimeout())
	defer cancel()
	err := w.WriteMessages(wctx, msgs...)
	if err == nil {
		return chunk, nil
	}
	var we kafka.WriteErrors
	if !errors.As(err, &we) || len(we) != len(msgs) {
		return nil, fmt.Errorf("writing replayed records: %w", err)
	}
	var acked []Record
	for i, e := range we {
		if e == nil {
			acked = append(acked, chunk[i])
		}
	}
	return acked, fmt.Errorf("writing replayed records: %d of %d refused: %w", len(chunk)-len(acked), len(chunk), err)
}

// chunkTimeout bounds writing one chunk, or recording it in the ledger,
// once the caller's context no longer does: a few broker round trips,
// kafka-go's retries with their backoff included.
func (c *Client) chunkTimeout() time.Duration { return 3 * c.cfg.Timeout }

// recordDetached records acked in the ledger even if ctx was canceled
// meanwhile (an interrupted replay must still record what it sent), within
// chunkTimeout.
func (c *Client) recordDetached(ctx context.Context, acked []Record) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.chunkTimeout())
	defer cancel()
	return c.record(lctx, acked)
}

// renamedPrefix is what ingest puts in front of a department's own
// pophub-* header on a DLQ copy (hub/ingest's renamedPrefix).
const renamedPrefix = "orig-"

// restoreNames returns a copy of a DLQ record's original headers with the
// names the department gave them: ingest renamed its pophub-* headers
// orig-pophub-* so that the DLQ tools would not take them for the hub's,
// and the replayed record is to be the department's record as sent. If it
// is rejected again, ingest renames them again, once; Replay's own
// pophub-replay-of, appended after them, is the last and the one ingest
// keeps. A pophub-replay-of the ledger did not confirm (Record.ReplayClaim)
// is among the headers, the department's own, and goes back too, after
// the others; ingest renames it on the next reject.
func restoreNames(headers []kafka.Header) []kafka.Header {
	out := make([]kafka.Header, len(headers), len(headers)+1)
	for i, h := range headers {
		if name, ok := strings.CutPrefix(h.Key, renamedPrefix); ok && strings.HasPrefix(name, "pophub-") {
			h.Key = name
		}
		out[i] = h
	}
	return out
}

// writer writes with the Java client's partitioner (the one departments
// use, so a citizen's records stay on one partition) and waits for all
// in-sync replicas. An empty topic means each message names its own.
func (c *Client) writer(topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:                   kafka.TCP(c.cfg.Brokers...),
		Transport:              c.client.Transport,
		Topic:                  topic,
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           10 * time.Millisecond,
		WriteTimeout:           c.cfg.Timeout,
		ReadTimeout:            c.cfg.Timeout,
		AllowAutoTopicCreation: false,
	}
}

// ledger returns the DLQ records replayed so far, and their originals.
func (c *Client) ledger(ctx context.Context) (replayed, error) {
	entries := map[string][]byte{} // by DLQ ID: the latest value
	spans, err := c.offsets(ctx, c.cfg.LedgerTopic)
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		return ledgerOf(entries), nil
	}
	if err != nil {
		return replayed{}, fmt.Errorf("reading the replay ledger: %w", err)
	}
	for p, s := range spans {
		err := c.read(ctx, c.cfg.LedgerTopic, p, s.First, s.End, func(m kafka.Message) error {
			if m.Value != nil { // a nil value (tombstone) forgets a replay
				entries[string(m.Key)] = m.Value
			} else {
				delete(entries, string(m.Key))
			}
			return nil
		})
		if err != nil {
			return replayed{}, fmt.Errorf("reading the replay ledger: %w", err)
		}
	}
	return ledgerOf(entries), nil
}

// ledgerOf reads the ledger's latest entries by DLQ ID. An entry whose
// value does not name an origin (an older one, or not JSON) still names
// its DLQ record.
func ledgerOf(entries map[string][]byte) replayed {
	d := replayed{ids: map[string]bool{}, topics: map[string]string{}, sums: map[string]string{}, origins: map[Origin]map[string]bool{}}
	for id, v := range entries {
		d.ids[id] = true
		var e ledgerEntry
		if json.Unmarshal(v, &e) != nil || e.Topic == "" {
			continue
		}
		d.topics[id] = e.Topic
		if e.Sum != "" {
			d.sums[id] = e.Sum
		}
		if e.Partition != nil && e.Offset != nil {
			o := Origin{Topic: e.Topic, Partition: *e.Partition, Offset: *e.Offset}
			if d.origins[o] == nil {
				d.origins[o] = map[string]bool{}
			}
			d.origins[o][e.Sum] = true
		}
	}
	return d
}

// ensureLedger creates the ledger topic (one partition, compacted) if it
// does not exist.
func (c *Client) ensureLedger(ctx context.Context) error {
	resp, err := c.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: c.cfg.LedgerTopic, NumPartitions: 1, ReplicationFactor: -1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
	}}})
	if err == nil {
		err = resp.Errors[c.cfg.LedgerTopic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("creating the replay ledger %s: %w", c.cfg.LedgerTopic, err)
	}
	return nil
}

// record writes ledger entries for recs.
func (c *Client) record(ctx context.Context, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		e := ledgerEntry{Topic: r.Topic, Sum: replaySum(r.Key, r.Value), ReplayedAt: now}
		if o, ok := r.Origin(); ok {
			e.Partition, e.Offset = &o.Partition, &o.Offset
		}
		v, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encoding ledger entry: %w", err)
		}
		msgs[i] = kafka.Message{Key: []byte(r.ID.String()), Value: v, Time: now}
	}
	w := c.writer(c.cfg.LedgerTopic)
	err := w.WriteMessages(ctx, msgs...)
	if err = errors.Join(err, w.Close()); err != nil {
		return fmt.Errorf("recording %d replayed records in the ledger (a rerun sends them again; the hub drops the duplicates): %w", len(recs), err)
	}
	return nil
}
