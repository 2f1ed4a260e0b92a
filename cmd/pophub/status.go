package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/hub/reconcile"
	"github.com/pophub/pophub/schemas"
)

// statusCommand is `pophub status`: the one screen an operator looks at
// first, from GET /v1/admin/status.
func statusCommand() *cobra.Command {
	var hubURL, token string
	var raw bool
	var ca *caFlag
	cmd := &cobra.Command{
		Use:   "status",
		Short: "One screen: store health, consumer lag, DLQ, notification stream and subscriber positions",
		Long: `Shows what an operator looks at first, from the hub's GET /v1/admin/status:
the store's health and totals and its outbox backlog, the consumer group's lag
per partition and the consumer's counts since it started (transaction markers
it skipped included), the DLQ by reason and source, and the notification
stream with every durable subscriber's position (pending, awaiting
acknowledgement, acknowledgement floor). PENDING + ACK PENDING is a
subscriber's backlog. BEHIND LAST SEQ (the stream's last sequence minus the
acknowledgement floor) is shown for unfiltered subscribers only, "-" for
filtered ones: a filtered subscriber's floor stays at its last matching
message, however many messages of other subjects follow. Records a source
topic's retention deleted before the hub read them are shown as
"LOST to retention: N records" (in --json, counts.lost_to_retention).
Store totals the hub could not read are shown as "?" ("store unreadable";
in --json persons, changes and outbox_pending are absent), never as 0.
Totals shown with ~ are the database's estimates (PostgreSQL, tables of 10,000
rows or more; in --json, "estimated" names them). On PostgreSQL the "relay" line
names the instance publishing the notifications (the relay lease's holder,
"pophub (host pid N #tag)") or says that none does, and while a schema an earlier
release wrote gets its household index, "household index building" says how
far it got (household lookups answer 503 until then).
--json prints the raw answer.

The hub counts the DLQ incrementally, reading on each request only the
records added since the last one, a few seconds' worth at most: after a
restart with a large DLQ the first requests show the counts so far and
"catching up: partition P counted up to offset N of M" until it has read
to the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			hc, err := ca.httpClient(0)
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			body, err := getStatus(ctx, hc, hubURL, token)
			if err != nil {
				return err
			}
			if raw {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var st api.Status
			if err := json.Unmarshal(body, &st); err != nil {
				return fmt.Errorf("decoding the hub's status: %w", err)
			}
			return renderStatus(cmd.OutOrStdout(), hubURL, st)
		},
	}
	ca = hubFlags(cmd, &hubURL, &token)
	cmd.Flags().BoolVar(&raw, "json", false, "print the status JSON as the hub answers it")
	return cmd
}

func getStatus(ctx context.Context, hc *http.Client, hubURL, token string) ([]byte, error) {
	url := strings.TrimRight(hubURL, "/") + "/v1/admin/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("asking the hub for its status: %w", err)
	}
	req.Header.Set("X-Purpose", "operations")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the hub for its status: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the hub's status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var p api.Problem
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			return nil, fmt.Errorf("asking the hub for its status: %s: %s", resp.Status, p.Detail)
		}
		return nil, fmt.Errorf("asking the hub for its status: %s", resp.Status)
	}
	return body, nil
}

// maxLagLines bounds the partitions listed as lagging.
const maxLagLines = 8

// renderStatus writes the status as one screen.
func renderStatus(w io.Writer, hubURL string, st api.Status) error {
	n := reconcile.Commas
	var b strings.Builder
	fmt.Fprintf(&b, "pophub status  %s  at %s\n\n", hubURL, st.Time.UTC().Format("2006-01-02 15:04:05Z"))

	s := st.Store
	health := "ok"
	if !s.OK {
		health = "FAILING: " + s.Error
	}
	fmt.Fprintf(&b, "store    %s\n         %s\n", health, storeTotals(s))
	if ix := s.HouseholdIndex; ix != nil {
		of := ""
		if s.Persons != nil {
			of = " of ~" + n(*s.Persons)
		}
		fmt.Fprintf(&b, "         household index building: %s%s persons indexed; household lookups answer 503 until it is done\n",
			n(ix.PersonsIndexed), of)
	}
	if f := s.Failover; f != nil {
		fmt.Fprintf(&b, "         FAILOVER at %s (timeline %d -> %d): events of transactions the new server lacks may be lost; run pophub reconcile\n",
			f.At.UTC().Format("2006-01-02 15:04:05Z"), f.FromTimeline, f.ToTimeline)
	}
	switch r := s.Relay; {
	case r == nil:
	case r.Holder == "":
		b.WriteString("         relay    NO INSTANCE holds the relay lease: notifications wait in the outbox\n")
	case r.ThisInstance:
		fmt.Fprintf(&b, "         relay    %s, this instance\n", r.Holder)
	default:
		fmt.Fprintf(&b, "         relay    %s, another instance\n", r.Holder)
	}

	if in := st.Ingest; in != nil {
		behind := 0
		for _, l := range in.Lag {
			if l.Lag > 0 {
				behind++
			}
		}
		if in.LagError != "" {
			last := "never"
			if in.LagMeasuredAt != nil {
				last = st.Time.Sub(*in.LagMeasuredAt).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(&b, "ingest   group %s  lag UNKNOWN: %s (last measured %s)\n", cmp.Or(in.Group, "-"), in.LagError, last)
		} else {
			fmt.Fprintf(&b, "ingest   group %s  lag %s (%d of %d partitions behind)\n", cmp.Or(in.Group, "-"), n(in.TotalLag), behind, len(in.Lag))
		}
		if c := in.Counts; c != nil {
			var rej int64
			for _, v := range c.Rejected {
				rej += v
			}
			fmt.Fprintf(&b, "         since start: consumed %s = applied %s + duplicates %s + rejected %s; skipped %s transaction markers\n",
				n(c.Consumed), n(c.Applied), n(c.Duplicates), n(rej), n(c.Skipped))
			if c.AbortedTransactions > 0 {
				// Applied all the same: kafka-go cannot filter them.
				fmt.Fprintf(&b, "         ABORTED transactions: %s on the source topics, their records applied all the same (the hub's log names each abort marker's partition and offset)\n",
					n(c.AbortedTransactions))
			}
			if c.LostToRetention > 0 {
				// Events never applied: the hub's warning log names the
				// partitions and offsets, the department must send them again.
				fmt.Fprintf(&b, "         LOST to retention: %s records deleted before the hub read them (their events are not applied; the hub's log names partitions and offsets)\n",
					n(c.LostToRetention))
			}
		}
		lagging := slices.Clone(in.Lag)
		slices.SortStableFunc(lagging, func(x, y api.PartitionLag) int { return cmp.Compare(y.Lag, x.Lag) })
		for i, l := range lagging {
			if l.Lag == 0 {
				break
			}
			if i == maxLagLines {
				fmt.Fprintf(&b, "         … and %d more partitions behind\n", behind-maxLagLines)
				break
			}
			fmt.Fprintf(&b, "         behind: %s/%d %s\n", l.Topic, l.Partition, n(l.Lag))
		}
	}

	if d := st.DLQ; d != nil {
		if d.Error != "" {
			fmt.Fprintf(&b, "dlq      unreadable: %s\n", d.Error)
		} else {
			so := ""
			if len(d.CatchingUp) > 0 {
				so = " so far"
			}
			fmt.Fprintf(&b, "dlq      %s records%s%s\n", n(d.Records), so, countsLine(d.ByReason))
			if len(d.BySource) > 0 {
				fmt.Fprintf(&b, "         by source%s\n", countsLine(d.BySource))
			}
			for _, p := range d.CatchingUp {
				fmt.Fprintf(&b, "         catching up: partition %d counted up to offset %s of %s\n", p.Partition, n(p.CountedTo), n(p.End))
			}
		}
	}

	if sm := st.Stream; sm != nil {
		if sm.Error != "" {
			fmt.Fprintf(&b, "stream   %s unreadable: %s\n", sm.Name, sm.Error)
		} else {
			fmt.Fprintf(&b, "stream   %s  messages %s  seq %s..%s\n", sm.Name, n(int64(sm.Messages)), n(int64(sm.FirstSeq)), n(int64(sm.LastSeq)))
		}
		switch {
		case sm.ConsumersError != "":
			fmt.Fprintf(&b, "         subscribers unreadable: %s\n", sm.ConsumersError)
		case len(sm.Consumers) == 0:
			fmt.Fprintf(&b, "         no durable subscribers\n")
		default:
			b.WriteString("\n")
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUBSCRIBER\tPENDING\tACK PENDING\tREDELIVERED\tACK FLOOR\tBEHIND LAST SEQ\tFILTER")
			for _, c := range sm.Consumers {
				// A filtered subscriber's ack floor stays at its last
				// matching message while other subjects' messages follow,
				// so last seq − ack floor would show one that is caught up
				// as far behind: its backlog is PENDING + ACK PENDING.
				behind := "-"
				if c.Filter == "" {
					behind = n(int64(sm.LastSeq) - int64(min(c.AckFloor, sm.LastSeq)))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", c.Name, n(int64(c.Pending)), c.AckPending, c.Redelivered,
					n(int64(c.AckFloor)), behind, cmp.Or(c.Filter, "-"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// storeTotals formats the store's totals; one it could not read is "?",
// never 0: an empty store with nothing pending is what makes an operator
// reach for a backup.
func storeTotals(s api.StoreStatus) string {
	unread := false
	total := func(v *int64) string {
		if v == nil {
			unread = true
			return "?"
		}
		return reconcile.Commas(*v)
	}
	approx := func(name string) string { // the database's estimate (StoreStatus.Estimated)
		if slices.Contains(s.Estimated, name) {
			return "~"
		}
		return ""
	}
	line := fmt.Sprintf("persons %s%s  changes %s%s  outbox pending %s",
		approx("persons"), total(s.Persons), approx("changes"), total(s.Changes), total(s.OutboxPending))
	if unread {
		line += " (store unreadable)"
	}
	return line
}

// countsLine formats counts as ": a 3, b 1" in descending order.
func countsLine(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(x, y string) int { return cmp.Compare(m[y], m[x]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = cmp.Or(k, "-") + " " + reconcile.Commas(m[k])
	}
	return ": " + strings.Join(parts, ", ")
}

// adminConfig is what the admin routes report of a running hub: the
// store, the consumer's lag and counts, the DLQ and the notification
// stream with its durable consumers.
func (m *Main) adminConfig(js jetstream.JetStream) api.AdminConfig {
	dlqCounts := &cachedDLQ{brokers: m.brokers, tls: m.clientTLS, sasl: m.kafkaSASL, ttl: 10 * time.Second}
	return api.AdminConfig{
		Store:       m.Store,
		Group:       m.Config.GroupID,
		Lag:         m.Consumer.Lag,
		LagMeasured: m.Consumer.LagMeasured,
		Counts:      func() api.IngestCounts { return ingestCounts(m.Consumer.Counts()) },
		DLQ:         dlqCounts.get,
		Stream:      func(ctx context.Context) (api.StreamInfo, error) { return streamInfo(ctx, js) },
		Consumers:   func(ctx context.Context) ([]api.ConsumerPosition, error) { return streamConsumers(ctx, js) },
		Logger:      m.Logger,
	}
}

func ingestCounts(c ingest.Counts) api.IngestCounts {
	out := api.IngestCounts{Consumed: c.Consumed, Applied: c.Applied, Duplicates: c.Duplicates, Skipped: c.Skipped,
		AbortedTransactions: c.Aborted, LostToRetention: c.Deleted, Rejected: maps.Clone(c.Rejected), Sources: map[string]api.IngestCountsSrc{}}
	if out.Rejected == nil {
		out.Rejected = map[string]int64{}
	}
	for src, sc := range c.Sources {
		out.Sources[string(src)] = api.IngestCountsSrc{Consumed: sc.Consumed, Applied: sc.Applied, Duplicates: sc.Duplicates,
			Skipped: sc.Skipped, Rejected: maps.Clone(sc.Rejected)}
	}
	return out
}

func streamInfo(ctx context.Context, js jetstream.JetStream) (api.StreamInfo, error) {
	if err := natsConnected(js); err != nil {
		return api.StreamInfo{}, err
	}
	st, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		return api.StreamInfo{}, fmt.Errorf("looking up stream %s: %w", schemas.StreamName, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return api.StreamInfo{}, fmt.Errorf("reading stream %s: %w", schemas.StreamName, err)
	}
	return api.StreamInfo{Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, LastTime: info.State.LastTime}, nil
}

// natsConnected says when the hub's NATS connection is down: asking the
// server then only times out, after the probe's 5 s, with "context
// deadline exceeded".
func natsConnected(js jetstream.JetStream) error {
	if nc := js.Conn(); nc != nil && !nc.IsConnected() {
		return fmt.Errorf("the hub is not connected to NATS (its connection is %s)", strings.ToLower(nc.Status().String()))
	}
	return nil
}

// streamConsumers lists the stream's durable consumers (ephemeral and
// ordered consumers come and go and are left out).
func streamConsumers(ctx context.Context, js jetstream.JetStream) ([]api.ConsumerPosition, error) {
	if err := natsConnected(js); err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		return nil, fmt.Errorf("looking up stream %s: %w", schemas.StreamName, err)
	}
	l := st.ListConsumers(ctx)
	var out []api.ConsumerPosition
	for ci := range l.Info() {
		if ci.Config.Durable == "" {
			continue
		}
		p := api.ConsumerPosition{Name: ci.Name, Filter: cmp.Or(ci.Config.FilterSubject, strings.Join(ci.Config.FilterSubjects, " ")),
			Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered,
			AckFloor: ci.AckFloor.Stream, Delivered: ci.Delivered.Stream}
		if t := ci.Delivered.Last; t != nil {
			p.LastActive = *t
		}
		out = append(out, p)
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("listing consumers of stream %s: %w", schemas.StreamName, err)
	}
	return out, nil
}

// cachedDLQ counts the DLQ incrementally. It keeps, per partition, the
// offset counted up to and the tallies by reason and source, and each call
// reads only the records after it: reading the whole topic, values and
// all, on every status request took longer than the probe's 5 s once the
// DLQ held a few hundred thousand rejects, and the DLQ line failed for
// good. A call reads what fits in most of its context's time and keeps
// that progress even when it cannot reach the end; the answer then lists
// the partitions still catching up. A complete count is reused for ttl.
//
// A partition whose first offset moved (retention deleted records), whose
// end went back, or that no longer holds the last record counted (the
// topic was deleted and created again: its offsets start anew, and once
// it has as many records as were counted they alone do not tell it from
// the old one) is counted again from its first offset: tallies of deleted
// records cannot be taken back one by one. The last record counted is
// looked for only when the partition's end moved since it was last
// checked, so a DLQ with no new rejects costs no fetch at all; a topic
// recreated and refilled to exactly the end it had is then counted
// anew once its end moves again.
type cachedDLQ struct {
	brokers []string
	tls     *tls.Config    // nil: plaintext
	sasl    sasl.Mechanism // the hub's login under a policy; nil: none
	ttl     time.Duration
	topic   string // default schemas.DLQTopic

	sem    chan struct{} // one count at a time; made on first use
	once   sync.Once
	client *kafka.Client // made on first use, its connections kept between calls
	at     time.Time     // when the last complete count was taken
	last   api.DLQCounts
	parts  map[int]*dlqPartCount
	read   int64 // records read since the counter was made, for tests
}

// dlqPartCount is one DLQ partition's count: records at offsets in
// [first, next) are counted.
type dlqPartCount struct {
	first, next int64
	// last is the last record counted, nil before the first; a call
	// looks for it again before counting on when the end moved since
	// checkedEnd, the end the partition had when it was last found.
	last       *dlqMark
	checkedEnd int64
	records    int64
	byReason   map[string]int64
	bySource   map[string]int64
}

// dlqMark recognises a DLQ record again: its offset, and a digest of its
// time, key and headers (which name its origin and reason), enough to
// tell it from another record a recreated topic put at that offset.
type dlqMark struct {
	offset int64
	sum    [sha256.Size]byte
}

// markOf returns r's dlqMark, reading its key.
func markOf(r kafka.Record) (dlqMark, error) {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(r.Time.UnixMilli())))
	if r.Key != nil {
		key, err := io.ReadAll(r.Key)
		if err != nil {
			return dlqMark{}, fmt.Errorf("reading the key at %d: %w", r.Offset, err)
		}
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(key))))
		h.Write(key)
	}
	for _, hd := range r.Headers {
		for _, b := range [][]byte{[]byte(hd.Key), hd.Value} {
			h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
			h.Write(b)
		}
	}
	return dlqMark{offset: r.Offset, sum: [sha256.Size]byte(h.Sum(nil))}, nil
}

// dlqReadShare is the part of the context's remaining time a call spends
// reading; the rest is for answering.
const dlqReadShare = 0.7

// dlqReadDefault bounds the reading of a call whose context has no
// deadline.
const dlqReadDefault = 4 * time.Second

func (c *cachedDLQ) get(ctx context.Context) (api.DLQCounts, error) {
	c.once.Do(func() { c.sem = make(chan struct{}, 1) })
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return api.DLQCounts{}, fmt.Errorf("waiting for another count of the DLQ: %w", ctx.Err())
	}
	if !c.at.IsZero() && time.Since(c.at) < c.ttl {
		return c.last, nil
	}
	topic := cmp.Or(c.topic, schemas.DLQTopic)
	if c.client == nil {
		// One transport for every call: a status probe every few seconds
		// need not dial the brokers each time, and a call whose time is
		// short spends it reading rather than connecting.
		tr := &kafka.Transport{TLS: c.tls, SASL: c.sasl, DialTimeout: 10 * time.Second}
		c.client = &kafka.Client{Addr: kafka.TCP(c.brokers...), Timeout: 10 * time.Second, Transport: tr}
	}
	spans, err := dlq.Spans(ctx, c.client, topic)
	if err != nil {
		return api.DLQCounts{}, err
	}
	if c.parts == nil {
		c.parts = map[int]*dlqPartCount{}
	}
	for p, s := range spans {
		pc := c.parts[p]
		if pc == nil || pc.first != s.First || s.End < pc.next {
			c.restart(p, s.First)
		}
	}
	for p := range c.parts {
		if _, ok := spans[p]; !ok {
			delete(c.parts, p)
		}
	}

	budget := dlqReadDefault
	if dl, ok := ctx.Deadline(); ok {
		budget = time.Duration(float64(time.Until(dl)) * dlqReadShare)
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	for _, p := range slices.Sorted(maps.Keys(spans)) {
		if err := c.readPartition(rctx, topic, p, spans[p]); err != nil {
			if dl, _ := rctx.Deadline(); rctx.Err() != nil || !time.Now().Before(dl) {
				// Out of time (kafka-go may end a request at the
				// deadline before the context says it is done): the
				// rest is for the next call.
				break
			}
			return api.DLQCounts{}, err
		}
	}

	out := api.DLQCounts{ByReason: map[string]int64{}, BySource: map[string]int64{}}
	for _, p := range slices.Sorted(maps.Keys(spans)) {
		pc := c.parts[p]
		out.Records += pc.records
		for r, k := range pc.byReason {
			out.ByReason[r] += k
		}
		for s, k := range pc.bySource {
			out.BySource[s] += k
		}
		if !pc.upToDate(spans[p]) {
			out.CatchingUp = append(out.CatchingUp, api.DLQPartition{Partition: p, CountedTo: pc.next, End: spans[p].End})
		}
	}
	if out.CatchingUp == nil {
		c.last, c.at = out, time.Now()
	}
	return out, nil
}

// dlqFetchBytes bounds one fetch of a partition's records: a call out of
// time loses at most the fetch in flight, and keeps every record of the
// ones before.
const dlqFetchBytes = 1 << 20

// restart starts partition p's count again at first.
func (c *cachedDLQ) restart(p int, first int64) {
	c.parts[p] = &dlqPartCount{first: first, next: first, byReason: map[string]int64{}, bySource: map[string]int64{}}
}

// upToDate reports whether the count holds every record of span s: it got
// to the end, and the last record counted was found again since the end
// last moved. A partition not checked within a call's time is not, so the
// answer is not taken (and cached) as complete.
func (pc *dlqPartCount) upToDate(s dlq.Span) bool {
	return pc.next >= s.End && (pc.last == nil || pc.checkedEnd == s.End)
}

// readPartition counts partition p's records from where its count got to
// up to the span's end, keeping the progress of every record read; first,
// when the end moved since it last did, it checks that the partition
// still holds the last record counted, and counts again from the span's
// first offset when it does not. A partition up to date costs nothing. It fetches
// through the counter's client, one request per batch on a connection
// already open: a reader of its own per partition and call dialed,
// looked up the leader and sought the offset first, round trips that on
// a busy machine took all of a short call's time, every time, and left
// a partition counted up to 0 for good.
func (c *cachedDLQ) readPartition(ctx context.Context, topic string, p int, s dlq.Span) error {
	if c.parts[p].upToDate(s) {
		return nil
	}
	if m := c.parts[p].last; m != nil && c.parts[p].checkedEnd != s.End {
		held, err := c.holds(ctx, topic, p, *m)
		if err != nil {
			return err
		}
		if !held {
			c.restart(p, s.First)
		}
	}
	pc, end := c.parts[p], s.End
	pc.checkedEnd = end
	for pc.next < end {
		resp, err := c.client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: p, Offset: pc.next,
			MinBytes: 1, MaxBytes: dlqFetchBytes, MaxWait: dlq.ReaderMaxWait})
		if err == nil {
			err = resp.Error
		}
		if err != nil {
			return fmt.Errorf("reading %s/%d at %d: %w", topic, p, pc.next, err)
		}
		before := pc.next
		if err := c.countBatch(resp.Records, p, end); err != nil {
			return fmt.Errorf("reading %s/%d at %d: %w", topic, p, pc.next, err)
		}
		if pc.next == before {
			// Nothing below end came back: there is nothing more to
			// read below end (offsets a transaction's markers or an
			// aborted transaction's records took).
			break
		}
	}
	pc.next = max(pc.next, end)
	return nil
}

// holds reports whether partition p still holds the record m marks.
func (c *cachedDLQ) holds(ctx context.Context, topic string, p int, m dlqMark) (bool, error) {
	resp, err := c.client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: p, Offset: m.offset,
		MinBytes: 1, MaxBytes: dlqFetchBytes, MaxWait: dlq.ReaderMaxWait})
	if err == nil {
		err = resp.Error
	}
	if errors.Is(err, kafka.OffsetOutOfRange) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s/%d at %d: %w", topic, p, m.offset, err)
	}
	for {
		r, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading %s/%d at %d: %w", topic, p, m.offset, err)
		}
		if r.Offset < m.offset {
			continue
		}
		got, err := markOf(*r)
		if err != nil {
			return false, fmt.Errorf("reading %s/%d: %w", topic, p, err)
		}
		return got == m, nil
	}
}

// countBatch counts the records of one fetch answer that lie in
// [pc.next, end): an answer may start at its batch's first offset, before
// the one asked for. kafka-go leaves out transaction markers.
func (c *cachedDLQ) countBatch(recs kafka.RecordReader, p int, end int64) error {
	pc := c.parts[p]
	for {
		r, err := recs.ReadRecord()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if r.Offset < pc.next || r.Offset >= end {
			continue
		}
		mark, err := markOf(*r)
		if err != nil {
			return err
		}
		m := kafka.Message{Offset: r.Offset, Time: r.Time, Headers: r.Headers}
		rec := dlq.Decode(p, m)
		pc.last = &mark
		pc.records++
		pc.byReason[rec.Reason]++
		pc.bySource[string(rec.Source())]++
		pc.next = r.Offset + 1
		c.read++
	}
}
