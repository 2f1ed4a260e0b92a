package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
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
per partition and the consumer's counts since it started, the DLQ by reason,
and the notification stream with every durable subscriber's position (pending,
awaiting acknowledgement, acknowledgement floor). --json prints the raw answer.`,
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
	fmt.Fprintf(&b, "store    %s\n         persons %s  changes %s  outbox pending %s\n", health, n(s.Persons), n(s.Changes), n(s.OutboxPending))

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
			fmt.Fprintf(&b, "         since start: consumed %s = applied %s + duplicates %s + rejected %s\n",
				n(c.Consumed), n(c.Applied), n(c.Duplicates), n(rej))
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
			fmt.Fprintf(&b, "dlq      %s records%s\n", n(d.Records), countsLine(d.ByReason))
			if len(d.BySource) > 0 {
				fmt.Fprintf(&b, "         by source%s\n", countsLine(d.BySource))
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
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", c.Name, n(int64(c.Pending)), c.AckPending, c.Redelivered,
					n(int64(c.AckFloor)), n(int64(sm.LastSeq)-int64(min(c.AckFloor, sm.LastSeq))), cmp.Or(c.Filter, "-"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
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
	out := api.IngestCounts{Consumed: c.Consumed, Applied: c.Applied, Duplicates: c.Duplicates,
		Rejected: maps.Clone(c.Rejected), Sources: map[string]api.IngestCountsSrc{}}
	if out.Rejected == nil {
		out.Rejected = map[string]int64{}
	}
	for src, sc := range c.Sources {
		out.Sources[string(src)] = api.IngestCountsSrc{Consumed: sc.Consumed, Applied: sc.Applied, Duplicates: sc.Duplicates, Rejected: maps.Clone(sc.Rejected)}
	}
	return out
}

func streamInfo(ctx context.Context, js jetstream.JetStream) (api.StreamInfo, error) {
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

// streamConsumers lists the stream's durable consumers (ephemeral and
// ordered consumers come and go and are left out).
func streamConsumers(ctx context.Context, js jetstream.JetStream) ([]api.ConsumerPosition, error) {
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

// cachedDLQ counts the DLQ, reading the whole topic at most once per ttl:
// a status page refreshed every few seconds should not reread it each
// time.
type cachedDLQ struct {
	brokers []string
	tls     *tls.Config    // nil: plaintext
	sasl    sasl.Mechanism // the hub's login under a policy; nil: none
	ttl     time.Duration

	mu   sync.Mutex
	at   time.Time
	last api.DLQCounts
}

func (c *cachedDLQ) get(ctx context.Context) (api.DLQCounts, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < c.ttl {
		return c.last, nil
	}
	cl, err := dlq.New(dlq.Config{Brokers: c.brokers, TLS: c.tls, SASL: c.sasl})
	if err != nil {
		return api.DLQCounts{}, err
	}
	recs, err := cl.Records(ctx, dlq.Filter{})
	if err != nil {
		return api.DLQCounts{}, err
	}
	sum := dlq.Summarize(recs)
	out := api.DLQCounts{Records: int64(sum.Total), ByReason: map[string]int64{}, BySource: map[string]int64{}}
	for r, k := range sum.ByReason {
		out.ByReason[r] = int64(k)
	}
	for s, k := range sum.BySource {
		out.BySource[string(s)] = int64(k)
	}
	c.last, c.at = out, time.Now()
	return out, nil
}
