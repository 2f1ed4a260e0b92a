// Package reconcile proves, independently of the hub's counters, that no
// department record was lost between Kafka and the store: for every source
// topic partition, each record from the log start up to the hub consumer
// group's committed offset is either applied (its (source, id) is in the
// store and this is its first occurrence), a duplicate (its key is in the
// store and an earlier record carried it), or rejected (the DLQ holds a
// copy naming its topic, partition and offset and holding its key and
// value: a topic deleted and created again gives its offsets out anew,
// and an old reject must not account for a new record). Anything else is
// a gap: the hub committed past a record that reached neither the store
// nor the DLQ. So are the offsets retention deleted before the group committed
// past them (committed offset below the log start): "expired unread",
// records the hub never read, or read without committing, and that can no
// longer be checked.
//
// The evidence comes from three places the hub writes to, never from what
// it counted: the source topics themselves (scanned with kafka-go), the
// DLQ topic (indexed by the pophub-topic, pophub-partition and
// pophub-offset headers, with a digest of each copy's key and value) and
// the store's idempotency keys
// (hub.Store.KnownEvents, over HTTP for the command line).
//
// Classify is the pure rule; Run gathers the evidence and classifies it.
//
// Consistency: Run reads the committed offsets first, then the DLQ and the
// store. The hub writes a batch's rejects to the DLQ and commits its
// events to the store before it commits the batch's offsets, and neither
// the DLQ nor the store forgets, so every record below an offset read
// earlier is accounted for by what is read later, while the hub keeps
// running. Records past the committed offsets are reported as in flight,
// never as gaps.
//
// Limits: records that retention deleted (below the log start) cannot be
// checked; those below the committed offset were read and pass unseen,
// those at or past it are counted as expired unread, offsets rather than
// records (a compacted-away offset or transaction marker among them counts
// too). A key whose first occurrence was deleted makes its remaining
// occurrence count as applied rather than as a duplicate (the sum is still
// exact). Memory grows with the records of the largest source below the
// committed offsets (about 100 bytes each); sources are checked one after
// another. Transaction markers and compacted-away offsets are skipped, not
// counted; a data record the hub takes for a transaction marker by its
// shape (ingest.IsControl: the hub skips it without a DLQ copy) is counted
// as skipped. Privacy: a gap names its topic, partition, offset and event id
// (ID-shaped digit runs masked), never the record key or value.
package reconcile

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Loc locates a record in a topic.
type Loc struct {
	Topic     string
	Partition int
	Offset    int64
}

func (l Loc) String() string {
	return l.Topic + "/" + strconv.Itoa(l.Partition) + "@" + strconv.FormatInt(l.Offset, 10)
}

// Record is a source record as reconciliation sees it: where it is, and
// the (source, id) of the event it carries. HasKey is false when the value
// is not a decodable CloudEvents envelope with an id and the topic's
// source: the hub must have rejected it. Control is true when the hub
// takes the record for a transaction marker (ingest.IsControl) and skips
// it.
type Record struct {
	Loc
	Key     schemas.EventKey
	HasKey  bool
	Control bool
}

// Class is what became of a record.
type Class uint8

// The classes. Every record below the committed offsets has exactly one.
const (
	Applied Class = iota + 1
	Duplicate
	Rejected
	Gap
	Skipped
)

func (c Class) String() string {
	switch c {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	case Gap:
		return "gap"
	case Skipped:
		return "skipped"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Classify decides each record's class, in the order given (by topic,
// partition and offset; the order only decides which occurrence of a key
// counts as applied):
//
//   - skipped: the hub takes it for a transaction marker (Control) and
//     skips it, as it does the markers of control batches;
//   - rejected: the DLQ holds a copy of it (rejected says which: see Run);
//   - gap: not rejected, and it has no key or its key is not in the store;
//   - applied: not rejected, its key is in the store, and no earlier
//     unrejected record carried the key;
//   - duplicate: not rejected, its key is in the store, and an earlier
//     unrejected record carried it.
//
// A rejected record does not claim its key: the hub never applied it, so
// a later valid record with the same key is the one applied.
func Classify(recs []Record, rejected func(Loc) bool, known func(schemas.EventKey) bool) []Class {
	out := make([]Class, len(recs))
	seen := make(map[schemas.EventKey]struct{}, len(recs))
	for i, r := range recs {
		switch {
		case r.Control:
			out[i] = Skipped
		case rejected(r.Loc):
			out[i] = Rejected
		case !r.HasKey || !known(r.Key):
			out[i] = Gap
		default:
			if _, dup := seen[r.Key]; dup {
				out[i] = Duplicate
			} else {
				seen[r.Key] = struct{}{}
				out[i] = Applied
			}
		}
	}
	return out
}

// SortRecords orders records by topic, partition and offset.
func SortRecords(recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
}

// Report is the outcome of a reconciliation, one entry per source topic.
type Report struct {
	Group   string
	Sources []SourceReport
	// DLQRecords counts the DLQ records read (those of other topics
	// included).
	DLQRecords int64
}

// SourceReport is one source topic's equation: Records = Applied +
// Duplicates + Rejected + Skipped + len(Gaps). Its lost records are
// len(Gaps) + ExpiredUnread.
type SourceReport struct {
	Source     schemas.Source
	Topic      string
	Records    int64
	Applied    int64
	Duplicates int64
	Rejected   int64
	// Skipped counts the data records the hub took for transaction
	// markers by their shape and skipped (ingest.IsControl); the markers
	// of control batches are not records here.
	Skipped int64
	Gaps    []GapRecord
	// ExpiredUnread counts the offsets retention deleted before the group
	// committed past them: from each partition's committed offset up to
	// its log start, when that is higher. The hub never read them (or
	// never committed reading them) and nothing can check them now, so
	// they count as lost. They are outside Records, which ends at the
	// committed offsets.
	ExpiredUnread int64
	// InFlight counts offsets at or past the committed offsets (up to the
	// high watermark when read): records the hub has not committed yet.
	InFlight   int64
	Partitions []PartitionSpan
}

// PartitionSpan is what was checked of one partition: [LogStart,
// Committed) was scanned; Committed is -1 when the group has committed
// nothing there; End is the high watermark.
type PartitionSpan struct {
	Partition int
	LogStart  int64
	Committed int64
	End       int64
}

// ExpiredUnread counts the offsets [Committed, LogStart) that retention
// deleted before the group committed past them; 0 when the group has
// committed nothing on the partition (the hub reads from the log start
// then, and whether the deleted records were ever meant for it is
// unknown).
func (p PartitionSpan) ExpiredUnread() int64 {
	if p.Committed < 0 {
		return 0
	}
	return max(p.LogStart-p.Committed, 0)
}

// GapRecord is a lost record: its location and event id (empty when the
// record holds no decodable event), and why it is a gap.
type GapRecord struct {
	Loc
	EventID string
	Why     string
}

// Why a record is a gap.
const (
	WhyNoKey   = "not in the DLQ and not a decodable event of this source"
	WhyUnknown = "not in the DLQ and its event is not in the store"
)

// Gaps counts the lost records of every source: its gaps and its expired
// unread offsets. `pophub reconcile` exits 1 when it is not 0.
func (r Report) Gaps() int {
	n := 0
	for _, s := range r.Sources {
		n += len(s.Gaps) + int(s.ExpiredUnread)
	}
	return n
}

// Total sums every source's counts (its Source and Topic are empty and it
// holds no gap records; see Gaps).
func (r Report) Total() SourceReport {
	var t SourceReport
	for _, s := range r.Sources {
		t.Records += s.Records
		t.Applied += s.Applied
		t.Duplicates += s.Duplicates
		t.Rejected += s.Rejected
		t.Skipped += s.Skipped
		t.ExpiredUnread += s.ExpiredUnread
		t.InFlight += s.InFlight
	}
	return t
}

// Tally adds classified records to the report of their topic's source.
// recs and classes are parallel (Classify's input and output).
func (r *Report) Tally(recs []Record, classes []Class) {
	idx := map[string]int{}
	for i, s := range r.Sources {
		idx[s.Topic] = i
	}
	for i, rec := range recs {
		j, ok := idx[rec.Topic]
		if !ok {
			j = len(r.Sources)
			idx[rec.Topic] = j
			r.Sources = append(r.Sources, SourceReport{Source: schemas.SourceOfTopic(rec.Topic), Topic: rec.Topic})
		}
		s := &r.Sources[j]
		s.Records++
		switch classes[i] {
		case Applied:
			s.Applied++
		case Duplicate:
			s.Duplicates++
		case Rejected:
			s.Rejected++
		case Skipped:
			s.Skipped++
		default:
			g := GapRecord{Loc: rec.Loc, Why: WhyUnknown}
			if rec.HasKey {
				g.EventID = rec.Key.ID
			} else {
				g.Why = WhyNoKey
			}
			s.Gaps = append(s.Gaps, g)
		}
	}
}

// Write prints the report: the equation of each source, its expired
// unread offsets (only when there are some), its records in flight, and
// every gap.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	var total SourceReport
	gaps := 0
	for _, s := range r.Sources {
		name := string(s.Source)
		if name == "" {
			name = s.Topic
		}
		fmt.Fprintf(&b, "%s: %s records up to committed offsets = %s applied + %s duplicates + %s rejected%s; gap %s",
			name, Commas(s.Records), Commas(s.Applied), Commas(s.Duplicates), Commas(s.Rejected), skipped(s.Skipped), Commas(int64(len(s.Gaps))))
		if s.ExpiredUnread > 0 {
			fmt.Fprintf(&b, "; expired unread %s", Commas(s.ExpiredUnread))
		}
		b.WriteByte('\n')
		if s.InFlight > 0 {
			fmt.Fprintf(&b, "  in flight: %s records past the committed offsets (not checked)\n", Commas(s.InFlight))
		}
		for _, p := range s.Partitions {
			if n := p.ExpiredUnread(); n > 0 {
				fmt.Fprintf(&b, "  EXPIRED UNREAD %s/%d@%d..%d: committed offset %d is below the log start %d; retention deleted %s records the hub never read\n",
					s.Topic, p.Partition, p.Committed, p.LogStart-1, p.Committed, p.LogStart, Commas(n))
			}
		}
		for _, g := range s.Gaps {
			id := g.EventID
			if id == "" {
				id = "-"
			}
			fmt.Fprintf(&b, "  GAP %s event %s: %s\n", g.Loc, citizenid.MaskText(id), g.Why)
		}
		total.Records += s.Records
		total.Applied += s.Applied
		total.Duplicates += s.Duplicates
		total.Rejected += s.Rejected
		total.Skipped += s.Skipped
		total.ExpiredUnread += s.ExpiredUnread
		total.InFlight += s.InFlight
		gaps += len(s.Gaps)
	}
	fmt.Fprintf(&b, "all sources: %s records up to committed offsets = %s applied + %s duplicates + %s rejected%s; gap %s",
		Commas(total.Records), Commas(total.Applied), Commas(total.Duplicates), Commas(total.Rejected), skipped(total.Skipped), Commas(int64(gaps)))
	if total.ExpiredUnread > 0 {
		fmt.Fprintf(&b, "; expired unread %s", Commas(total.ExpiredUnread))
	}
	fmt.Fprintf(&b, "; in flight %s\n", Commas(total.InFlight))
	_, err := io.WriteString(w, b.String())
	return err
}

// skipped is the equation's term for records skipped as transaction
// markers, shown only when there are some: the hub's status says
// "skipped N transaction markers" too.
func skipped(n int64) string {
	if n == 0 {
		return ""
	}
	return " + " + Commas(n) + " skipped as transaction markers"
}

// Commas formats n with thousands separators: 12,345.
func Commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
