package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

func demoCommand(newLogger func() *slog.Logger) *cobra.Command {
	var opts demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the embedded hub on a synthetic population and print what it did",
		Long: `Starts the same embedded stack as 'pophub dev' on free ports in a temporary
directory, publishes the life events of a generated population from all eight
departments (plus a few malformed records) through the Kafka protocol, waits until
the hub has applied them and published every notification, then prints a summary
and a few golden records. Exits 0 when the numbers add up.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := newLogger()
			if !cmd.Flags().Changed("log-level") && os.Getenv("POPHUB_LOG_LEVEL") == "" {
				log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), log, opts)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Persons, "persons", 3000, "persons in the synthetic population")
	f.IntVar(&opts.Months, "months", 24, "months of life events")
	f.Int64Var(&opts.Seed, "seed", 1, "random seed (the same seed gives the same population)")
	f.StringVar(&opts.Postgres, "postgres", "", "use PostgreSQL at this URL instead of memdb")
	f.StringVar(&opts.SIPostgres, "si-postgres", envOr("POPHUB_SI_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"),
		"PostgreSQL for the social-insurance subscriber's tasks (a scratch schema is dropped afterwards; skipped when unreachable; env POPHUB_SI_POSTGRES, as si-subscriber)")
	f.DurationVar(&opts.Timeout, "timeout", 2*time.Minute, "give up after this long")
	f.StringVar(&opts.Policy, "policy", "", "run with this access policy (ops/policy.example.yaml): every system with its own credentials, every read audited")
	return cmd
}

type demoOptions struct {
	Persons    int
	Months     int
	Seed       int64
	Postgres   string
	SIPostgres string
	Timeout    time.Duration
	Policy     string
}

// validate refuses the flags the generator would take as "use the
// default" or that leave nothing to show, as 'pophub synth' does: --months
// 0 would silently mean 24, and --persons 0 would publish nothing and
// then wait for it.
func (o demoOptions) validate() error {
	switch {
	case o.Persons < 1:
		return fmt.Errorf("--persons %d: want at least 1", o.Persons)
	case o.Months < 1:
		return fmt.Errorf("--months %d: want at least 1", o.Months)
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout %s: want a positive duration", o.Timeout)
	}
	return nil
}

// demoSampleID is a valid citizen ID (check character included) that
// badRecords uses when the population gave it no subject to spoil: a small
// one may have no hukou registration in its window.
var demoSampleID = "23010219900101123" + string(citizenid.CheckChar("23010219900101123"))

// badRecords are malformed records a careless department might send; each
// must land in the DLQ with its own reason while the rest goes on.
func badRecords(good schemas.Event) []kafka.Message {
	valid := string(good.Subject)
	if _, err := citizenid.Parse(valid); err != nil {
		valid = demoSampleID
	}
	wrongCheck := valid[:17] + string("0123456789X"[(strings.IndexByte("0123456789X", valid[17])+1)%11])
	env := func(source, typ, subject, data string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"demo-bad-%s-%s","source":%q,"type":%q,"subject":%q,"time":"2025-01-01T00:00:00+08:00","data":%s}`,
			source, strings.ReplaceAll(typ, ".", "-"), source, typ, subject, data)
	}
	return []kafka.Message{
		{Topic: schemas.Topic(schemas.Health), Key: []byte(valid), Value: []byte("death certificate 2025-01-01 (not JSON)")},
		{Topic: schemas.Topic(schemas.Health), Key: []byte(valid), Value: []byte(`{"specversion":"1.0","id":"demo-bad-notime","source":"health","type":"death.certified","subject":"` + valid + `","data":{}}`)},
		{Topic: schemas.Topic(schemas.Health), Key: []byte(valid), Value: []byte(env("health", "health.vaccinated", valid, `{}`))},
		{Topic: schemas.Topic(schemas.Tax), Key: []byte(valid), Value: []byte(env("employment", "employment.contract_ended", valid, `{"contract_id":"C1","end":"2025-01-01"}`))},
		{Topic: schemas.Topic(schemas.Employment), Key: []byte("230102199001011234"), Value: []byte(env("employment", "employment.contract_ended", valid, `{"contract_id":"C1","end":"2025-01-01"}`))},
		{Topic: schemas.Topic(schemas.Employment), Key: []byte(wrongCheck), Value: []byte(env("employment", "employment.contract_ended", wrongCheck, `{"contract_id":"C1","end":"2025-01-01"}`))},
		{Topic: schemas.Topic(schemas.Employment), Key: []byte(valid), Value: []byte(env("employment", "employment.contract_ended", valid, `{"contract_id":"C1","end":"2025-13-01"}`))},
		{Topic: schemas.Topic(schemas.Housing), Key: []byte(valid), Value: []byte(env("housing", "housing.rental_registered", valid, `{"lease_id":"L1","address_code":"230102001999","start":"2025-01-01"}`))},
	}
}

func runDemo(ctx context.Context, out io.Writer, log *slog.Logger, opts demoOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	started := time.Now()

	dir, err := os.MkdirTemp("", "pophub-demo-")
	if err != nil {
		return fmt.Errorf("creating demo directory: %w", err)
	}
	defer os.RemoveAll(dir)

	m := &Main{Logger: log, Config: Config{Embedded: true, DataDir: dir, PostgresURL: opts.Postgres,
		KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", NATSSync: time.Second,
		EligibilityNotify: []string{demoPolicy}}}
	if opts.Policy != "" {
		// Every system uses its own credentials: the example policy's are
		// public demo secrets.
		m.Config.PolicyFile, m.Config.Secrets, m.Config.NATSPassword = opts.Policy, access.DemoResolver, access.DemoSecret("nats:hub")
	}
	if opts.Postgres != "" {
		m.Config.PostgresSchema = fmt.Sprintf("pophub_demo_%d", time.Now().UnixNano())
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(out, "pophub demo: embedded hub up (Kafka %s, NATS %s, HTTP %s, store %s)\n",
		strings.Join(m.Brokers(), ","), m.NATSURL(), m.HTTPAddr(), m.storeName())
	creds := demoCreds{m.Access}
	if m.Access != nil {
		fmt.Fprintf(out, "access policy %s: every department, subscriber and reader below uses its own credentials\n", opts.Policy)
	}

	// Generate and publish the population's life events.
	pub, err := newDemoDepartments(m.Brokers(), creds, log)
	if err != nil {
		return err
	}
	defer pub.Close()
	picks := newPicker()
	bySource := map[schemas.Source]int{}
	var batch []schemas.Event
	published := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, err := pub.Publish(ctx, batch...)
		if err != nil {
			return fmt.Errorf("publishing events: %w", err)
		}
		for i, r := range results {
			if r.Err != nil {
				return fmt.Errorf("publishing event %s: %w", batch[i].ID, r.Err)
			}
		}
		published += len(batch)
		batch = batch[:0]
		return nil
	}
	err = synth.Generate(ctx, synth.Config{Persons: opts.Persons, Months: opts.Months, Seed: opts.Seed, DuplicateRate: 0.01}, func(ev schemas.Event) error {
		bySource[ev.Source]++
		picks.see(ev)
		batch = append(batch, ev)
		if len(batch) == 2000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	bad := badRecords(picks.any)
	if err := writeRaw(ctx, m.Brokers(), creds, bad); err != nil {
		return fmt.Errorf("publishing malformed records: %w", err)
	}
	total := published + len(bad)
	fmt.Fprintf(out, "published %d events from %d persons (%s) and %d malformed records\n",
		published, opts.Persons, formatSources(bySource), len(bad))

	// Wait until every record was consumed and every notification left.
	for {
		c := m.Consumer.Counts()
		st, err := m.Store.Stats(ctx)
		if err == nil && c.Consumed >= int64(total) && st.OutboxPending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the hub to catch up (consumed %d of %d): %w", c.Consumed, total, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	elapsed := time.Since(started)
	c := m.Consumer.Counts()
	st, err := m.Store.Stats(ctx)
	if err != nil {
		return fmt.Errorf("reading store totals: %w", err)
	}
	notes, err := notificationCounts(ctx, m)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "\nWhat the hub did (%.1fs):\n", elapsed.Seconds())
	fmt.Fprintf(out, "  events in        %d\n", c.Consumed)
	fmt.Fprintf(out, "  applied          %d\n", c.Applied)
	fmt.Fprintf(out, "  duplicates       %d  (same source and id sent twice: applied once)\n", c.Duplicates)
	fmt.Fprintf(out, "  rejected         %d  → pop.events.dlq\n", c.RejectedTotal())
	for _, reason := range sortedKeys(c.Rejected) {
		fmt.Fprintf(out, "    %-22s %d\n", reason, c.Rejected[reason])
	}
	fmt.Fprintf(out, "  golden records   %d persons, %d history rows\n", st.Persons, st.Changes)
	fmt.Fprintf(out, "  notifications    %d on stream POP (changed %d, migration %d, death %d)\n",
		notes["total"], notes["changed"], notes["migration"], notes["death"])

	for _, p := range picks.list() {
		rec, err := getJSON(ctx, "http://"+m.HTTPAddr()+"/v1/persons/"+string(p.id), creds, "admin")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\nGolden record of a person who %s (GET /v1/persons/%s):\n%s\n", p.why, p.id.Masked(), rec)
	}

	if err := demoStatistics(ctx, out, m, creds); err != nil {
		return err
	}
	if err := demoSocialInsurance(ctx, out, log, m, pub, creds, opts.SIPostgres); err != nil {
		return err
	}
	if err := demoEligibility(ctx, out, m, pub, creds); err != nil {
		return err
	}
	if err := demoWhoRead(ctx, out, m); err != nil {
		return err
	}

	c = m.Consumer.Counts()
	if c.Applied+c.Duplicates+c.RejectedTotal() != c.Consumed {
		return fmt.Errorf("counts do not add up: applied %d + duplicates %d + rejected %d != consumed %d",
			c.Applied, c.Duplicates, c.RejectedTotal(), c.Consumed)
	}
	if c.RejectedTotal() != int64(len(bad)) {
		return fmt.Errorf("expected %d rejects, got %d", len(bad), c.RejectedTotal())
	}
	return nil
}

func formatSources(m map[schemas.Source]int) string {
	var parts []string
	for _, s := range schemas.Sources {
		parts = append(parts, fmt.Sprintf("%s %d", s, m[s]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// notificationCounts reads per-subject message counts from the stream.
func notificationCounts(ctx context.Context, m *Main) (map[string]int64, error) {
	js, err := jetstream.New(m.nc)
	if err != nil {
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	stream, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		return nil, fmt.Errorf("looking up stream: %w", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(schemas.StreamSubjects))
	if err != nil {
		return nil, fmt.Errorf("reading stream info: %w", err)
	}
	out := map[string]int64{"total": int64(info.State.Msgs)}
	for subj, n := range info.State.Subjects {
		kind := strings.SplitN(strings.TrimPrefix(subj, "pop."), ".", 2)[0]
		out[kind] += int64(n)
	}
	return out, nil
}

// getJSON reads a golden record as identity (with a policy) and indents it.
func getJSON(ctx context.Context, url string, creds demoCreds, identity string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Purpose", creds.purpose(identity, "demo"))
	if t := creds.token(identity); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading golden record: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading golden record: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading golden record: HTTP %d: %s", resp.StatusCode, body)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "  ", "  "); err != nil {
		return "", fmt.Errorf("decoding golden record: %w", err)
	}
	return "  " + strings.TrimSpace(pretty.String()), nil
}

// picker remembers a few interesting persons to show.
type picker struct {
	any     schemas.Event
	picked  map[string]citizenid.ID
	order   []string
	seenIDs map[citizenid.ID]bool
}

type pick struct {
	id  citizenid.ID
	why string
}

func newPicker() *picker {
	return &picker{picked: map[string]citizenid.ID{}, seenIDs: map[citizenid.ID]bool{}}
}

func (p *picker) see(ev schemas.Event) {
	if p.any.ID == "" && ev.Type == schemas.HukouRegistered {
		p.any = ev
	}
	why := ""
	switch ev.Type {
	case schemas.HukouMigrated:
		why = "moved their hukou to another city"
	case schemas.DeathCertified:
		why = "died (death certified by health)"
	case schemas.MarriageRegistered:
		why = "married"
	}
	if why == "" || p.seenIDs[ev.Subject] {
		return
	}
	if _, ok := p.picked[why]; !ok {
		p.picked[why] = ev.Subject
		p.order = append(p.order, why)
		p.seenIDs[ev.Subject] = true
	}
}

func (p *picker) list() []pick {
	var out []pick
	for _, why := range p.order {
		out = append(out, pick{id: p.picked[why], why: why})
	}
	return out
}
