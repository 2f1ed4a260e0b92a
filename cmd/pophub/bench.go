package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/schemas"
)

func benchCommand(newLogger func() *slog.Logger) *cobra.Command {
	var opts benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ingest throughput (PostgreSQL, memdb, raw PostgreSQL baseline) and notification latency",
		Long: `Runs, in one process and on the same machine:
  1. the raw PostgreSQL baseline: the same events merged beforehand (untimed) into
     exactly the golden rows and history rows the hub writes, then written per batch
     of 2,000 as one INSERT ... ON CONFLICT plus one COPY, without the hub;
  2. the hub end to end with PostgreSQL (Kafka protocol → ingest → PostgreSQL, fsync on);
  3. the hub end to end with memdb (write-ahead log fsynced per batch);
  4. notification latency from Kafka append to NATS delivery at a steady rate.
Events come from the synthetic population generator and are produced to an embedded
Kafka-protocol broker before timing starts. Ratios to the baseline are what to compare
across machines.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := newLogger()
			if !cmd.Flags().Changed("log-level") && os.Getenv("POPHUB_LOG_LEVEL") == "" {
				log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			_, err := runBench(cmd.Context(), cmd.OutOrStdout(), log, opts)
			return err
		},
	}
	cmd.AddCommand(benchStatsCommand(), benchSoakCommand())
	f := cmd.Flags()
	f.IntVar(&opts.Persons, "persons", 10000, "persons in the synthetic population")
	f.IntVar(&opts.Months, "months", 24, "months of life events per person")
	f.StringVar(&opts.Postgres, "postgres", envOr("POPHUB_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"), "PostgreSQL URL (a scratch schema is created and dropped; env POPHUB_POSTGRES)")
	f.IntVar(&opts.Rate, "latency-rate", 5000, "events per second for the latency run")
	f.DurationVar(&opts.LatencyFor, "latency-duration", 10*time.Second, "length of the latency run")
	f.DurationVar(&opts.NATSSync, "nats-sync", time.Second, "fsync interval of the embedded JetStream store (0 = every write)")
	f.StringVar(&opts.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	f.StringVar(&opts.Only, "only", "", "run only one part: baseline, postgres, memdb or latency")
	return cmd
}

type benchOptions struct {
	Persons    int
	Months     int
	Postgres   string
	Rate       int
	LatencyFor time.Duration
	CPUProfile string
	Only       string
	NATSSync   time.Duration
}

type benchResult struct {
	Events          int
	Baseline        float64
	Postgres, Memdb ingestRun
	P50, P99, PMax  time.Duration
	Notified        int
}

// ingestRun is one end-to-end run: the apply rate, and how the
// notifications followed.
type ingestRun struct {
	Rate float64 // events applied per second
	// CPU is the hub process's CPU time (user and system, every thread,
	// the embedded broker and NATS server included; not PostgreSQL's)
	// per event applied in the timed window: what the rate needs of the
	// cores the hub gets.
	CPU time.Duration
	// Stored is how many notifications the run's stream holds once the
	// outbox is empty; Drained is how long after the last event was
	// applied that was.
	Stored  uint64
	Drained time.Duration
}

func (r ingestRun) String() string {
	return fmt.Sprintf("%9.0f events/s  (%.1f µs of hub CPU an event; %d notifications stored, the last %s after the last event)",
		r.Rate, float64(r.CPU.Nanoseconds())/1e3, r.Stored, r.Drained.Round(time.Millisecond))
}

// benchParts are the parts --only may name, in the order they run.
var benchParts = []string{"baseline", "postgres", "memdb", "latency"}

// validate refuses, before anything is generated, the flags that would
// measure nothing (an --only naming no part) or never finish (no persons,
// no months, a latency run of no events a second or no length).
func (o benchOptions) validate() error {
	switch {
	case o.Only != "" && !slices.Contains(benchParts, o.Only):
		return fmt.Errorf("--only %q: want one of %s", o.Only, strings.Join(benchParts, ", "))
	case o.Persons < 1:
		return fmt.Errorf("--persons %d: want at least 1", o.Persons)
	case o.Months < 1:
		return fmt.Errorf("--months %d: want at least 1", o.Months)
	case o.Rate < 1:
		return fmt.Errorf("--latency-rate %d: want at least 1 event a second", o.Rate)
	case o.LatencyFor <= 0:
		return fmt.Errorf("--latency-duration %s: want a positive duration", o.LatencyFor)
	case embedded.CheckSyncInterval(o.NATSSync) != nil:
		return fmt.Errorf("--nats-sync %s: want 0 (every write) or at least %v", o.NATSSync, embedded.MinSyncInterval)
	}
	return nil
}

// ofBaseline is " = R × baseline" when a baseline was measured in this
// run, and nothing otherwise (--only postgres would print "+Inf").
func ofBaseline(rate, baseline float64) string {
	if baseline <= 0 {
		return ""
	}
	return fmt.Sprintf("  = %.2f × baseline", rate/baseline)
}

func runBench(ctx context.Context, out io.Writer, log *slog.Logger, opts benchOptions) (res benchResult, err error) {
	if err := opts.validate(); err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "pophub-bench-")
	if err != nil {
		return res, fmt.Errorf("creating bench directory: %w", err)
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(out, "pophub bench: %d persons × %d months, %d CPUs, %s\n", opts.Persons, opts.Months, runtime.NumCPU(), runtime.Version())
	msgs, err := synthMessages(ctx, synth.Config{Persons: opts.Persons, Months: opts.Months, Seed: 7})
	if err != nil {
		return res, err
	}
	res.Events = len(msgs)
	fmt.Fprintf(out, "generated %d events\n", len(msgs))

	broker, err := embedded.StartKafka(ctx, embedded.KafkaConfig{Addr: "127.0.0.1:0", Partitions: 8, Logger: log})
	if err != nil {
		return res, fmt.Errorf("starting broker: %w", err)
	}
	defer broker.Close()
	if err := produce(ctx, broker.Addr(), msgs); err != nil {
		return res, err
	}
	// Each run gets a NATS server with an empty store of its own. On a
	// shared one, a later run's notifications would repeat the earlier
	// run's change ids (they derive from the events), and JetStream would
	// drop them as duplicates instead of storing them.
	startNATS := func(run string) (*embedded.NATS, error) {
		srv, err := embedded.StartNATS(ctx, embedded.NATSConfig{Addr: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats-"+run),
			SyncInterval: opts.NATSSync, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("starting NATS for the %s run: %w", run, err)
		}
		return srv, nil
	}

	run := func(part string) bool { return opts.Only == "" || opts.Only == part }
	if opts.CPUProfile != "" {
		f, err := os.Create(opts.CPUProfile)
		if err != nil {
			return res, fmt.Errorf("creating profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, fmt.Errorf("starting profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	schema := fmt.Sprintf("pophub_bench_%d", time.Now().UnixNano())
	defer dropSchema(context.WithoutCancel(ctx), opts.Postgres, schema, schema+"_base", schema+"_latency")

	// 1. Raw PostgreSQL baseline.
	if run("baseline") {
		inputs, err := decodeAll(msgs)
		if err != nil {
			return res, err
		}
		res.Baseline, err = postgres.Baseline(ctx, opts.Postgres, schema+"_base", inputs, 2000)
		if err != nil {
			return res, fmt.Errorf("measuring PostgreSQL baseline: %w", err)
		}
		fmt.Fprintf(out, "  raw PostgreSQL baseline (upsert golden rows + COPY history)   %9.0f events/s\n", res.Baseline)
	}

	// 2. End to end with PostgreSQL.
	pg := Config{KafkaBrokers: []string{broker.Addr()}, PostgresURL: opts.Postgres,
		PostgresSchema: schema, HTTPAddr: "127.0.0.1:0", GroupID: "bench-pg-" + schema}
	if run("postgres") {
		res.Postgres, err = timeIngest(ctx, log, pg, len(msgs), func() (*embedded.NATS, error) { return startNATS("postgres") })
		if err != nil {
			return res, fmt.Errorf("PostgreSQL run: %w", err)
		}
		fmt.Fprintf(out, "  hub end to end, PostgreSQL (fsync on)                         %s%s\n", res.Postgres, ofBaseline(res.Postgres.Rate, res.Baseline))
	}

	// 3. End to end with memdb.
	if run("memdb") {
		md := Config{KafkaBrokers: []string{broker.Addr()}, DataDir: filepath.Join(dir, "memdb"),
			HTTPAddr: "127.0.0.1:0", GroupID: "bench-memdb-" + schema}
		res.Memdb, err = timeIngest(ctx, log, md, len(msgs), func() (*embedded.NATS, error) { return startNATS("memdb") })
		if err != nil {
			return res, fmt.Errorf("memdb run: %w", err)
		}
		fmt.Fprintf(out, "  hub end to end, memdb (WAL fsync on)                          %s\n", res.Memdb)
	}

	// 4. Notification latency at a steady rate, PostgreSQL store.
	if run("latency") {
		// A schema of its own, as its NATS server is: the PostgreSQL
		// run's store remembers what that run's stream held, and a hub
		// continuing it on an empty server rightly reports those
		// notifications lost.
		pg.GroupID += "-latency"
		pg.PostgresSchema = schema + "_latency"
		natsSrv, err := startNATS("latency")
		if err != nil {
			return res, err
		}
		defer natsSrv.Close()
		pg.NATSURL = natsSrv.ClientURL()
		if err := measureLatency(ctx, log, pg, broker.Addr(), natsSrv.ClientURL(), len(msgs), opts, &res); err != nil {
			return res, fmt.Errorf("latency run: %w", err)
		}
		fmt.Fprintf(out, "  notification latency at %d events/s (Kafka append → NATS delivery, PostgreSQL): p50 %s, p99 %s, max %s over %d events\n",
			opts.Rate, res.P50.Round(time.Millisecond), res.P99.Round(time.Millisecond), res.PMax.Round(time.Millisecond), res.Notified)
	}
	if opts.Only != "" {
		return res, nil
	}
	fmt.Fprintf(out, "\ntargets: PostgreSQL ≥ 0.7 × baseline (%.2f) and ≥ 20000 events/s (%.0f); memdb ≥ 100000 events/s (%.0f); p99 < 500ms (%s)\n",
		res.Postgres.Rate/res.Baseline, res.Postgres.Rate, res.Memdb.Rate, res.P99.Round(time.Millisecond))
	return res, nil
}

// decodeAll decodes records the way the hub does, for the baseline.
func decodeAll(msgs []kafka.Message) ([]hub.Input, error) {
	out := make([]hub.Input, 0, len(msgs))
	for _, m := range msgs {
		ev, err := schemas.Decode(schemas.Input{Topic: m.Topic, Key: m.Key, Value: m.Value})
		if err != nil {
			return nil, fmt.Errorf("decoding generated event: %w", err)
		}
		out = append(out, hub.Input{Event: ev})
	}
	return out, nil
}

// synthMessages renders the population as Kafka records.
func synthMessages(ctx context.Context, cfg synth.Config) ([]kafka.Message, error) {
	var msgs []kafka.Message
	err := synth.Generate(ctx, cfg, func(ev schemas.Event) error {
		b, err := schemas.Encode(ev)
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("generating events: %w", err)
	}
	return msgs, nil
}

func produce(ctx context.Context, addr string, msgs []kafka.Message) error {
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 2000, BatchBytes: 16 << 20, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	for i := 0; i < len(msgs); i += 10000 {
		end := min(i+10000, len(msgs))
		if err := w.WriteMessages(ctx, msgs[i:end]...); err != nil {
			return fmt.Errorf("producing events: %w", err)
		}
	}
	return nil
}

// timeIngest starts a hub on cfg, with a NATS server of its own from
// startNATS, and measures how fast it applies n events; then it waits
// until every notification has left the outbox and counts what the
// stream stored.
func timeIngest(ctx context.Context, log *slog.Logger, cfg Config, n int, startNATS func() (*embedded.NATS, error)) (ingestRun, error) {
	var run ingestRun
	natsSrv, err := startNATS()
	if err != nil {
		return run, err
	}
	defer natsSrv.Close()
	cfg.NATSURL = natsSrv.ClientURL()
	began := time.Now()
	m := &Main{Config: cfg, Logger: log}
	if err := m.Start(ctx); err != nil {
		return run, err
	}
	defer m.Close()
	// Time from the first applied batch, so that the consumer group's
	// join does not count as ingest time.
	if err := waitConsumed(ctx, m, 1, time.Minute); err != nil {
		return run, err
	}
	start, first, cpu0 := time.Now(), m.Consumer.Counts().Consumed, processCPU()
	if err := waitConsumed(ctx, m, int64(n), 10*time.Minute); err != nil {
		return run, err
	}
	applied, cpu1 := time.Now(), processCPU()
	k := int64(n) - first
	if k <= 0 {
		return run, fmt.Errorf("all %d events were applied before timing began: too few to time (raise --persons)", n)
	}
	run.Rate = float64(k) / applied.Sub(start).Seconds()
	run.CPU = (cpu1 - cpu0) / time.Duration(k)
	warnConflicts(log, m)

	state, last, err := awaitNotifications(ctx, m, natsSrv.ClientURL(), applied)
	if err != nil {
		return run, err
	}
	run.Drained = last.Sub(applied)
	// Notifications stored before this run would have made its own
	// notifications duplicates, which JetStream drops without storing.
	if state.Msgs > 0 && state.FirstTime.Before(began) {
		return run, fmt.Errorf("the notification stream held messages from before the run (first at %s)", state.FirstTime.Format(time.RFC3339Nano))
	}
	run.Stored = state.Msgs
	return run, nil
}

// awaitNotifications waits until the hub's outbox is empty and returns
// the notification stream's state and when its message count last grew
// (from since on). It watches the stream, which is cheap to ask, and asks
// the store, whose totals are counted (tens of milliseconds on PostgreSQL,
// in competition with the relay), only once the stream has stopped
// growing.
func awaitNotifications(ctx context.Context, m *Main, natsURL string, since time.Time) (jetstream.StreamState, time.Time, error) {
	var state jetstream.StreamState
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return state, since, fmt.Errorf("connecting to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return state, since, fmt.Errorf("opening JetStream: %w", err)
	}
	stream, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		return state, since, fmt.Errorf("opening stream %s: %w", schemas.StreamName, err)
	}
	const quiet = 50 * time.Millisecond // no growth for this long: ask the store
	last := since
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			return state, last, fmt.Errorf("reading stream %s: %w", schemas.StreamName, err)
		}
		now := time.Now()
		if info.State.Msgs != state.Msgs {
			last = now
		}
		state = info.State
		if now.Sub(last) >= quiet {
			st, err := m.Store.Stats(ctx)
			if err != nil {
				return state, last, fmt.Errorf("reading the outbox: %w", err)
			}
			if st.OutboxPending == 0 {
				return state, last, nil
			}
			if now.Sub(since) > 10*time.Minute {
				return state, last, fmt.Errorf("%d notifications still in the outbox after 10 minutes", st.OutboxPending)
			}
		}
		select {
		case <-ctx.Done():
			return state, last, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// warnConflicts says when batches of the PostgreSQL store got in each
// other's way during a run: every such retry costs time the figures show.
func warnConflicts(log *slog.Logger, m *Main) {
	ps, ok := m.Store.(*postgres.Store)
	if !ok {
		return
	}
	if r := ps.Retries(); r.Deadlocks+r.Serialization+r.Unique > 0 {
		log.Warn("store batches retried after conflicts", "deadlocks", r.Deadlocks, "serialization", r.Serialization, "unique", r.Unique)
	}
}

func waitConsumed(ctx context.Context, m *Main, n int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c := m.Consumer.Counts()
		if c.Applied+c.Duplicates+c.RejectedTotal() >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consumed %d of %d events before the time limit", c.Consumed, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func measureLatency(ctx context.Context, log *slog.Logger, cfg Config, brokerAddr, natsURL string, already int, opts benchOptions, res *benchResult) error {
	m := &Main{Config: cfg, Logger: log}
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Close()
	if err := waitConsumed(ctx, m, int64(already), 10*time.Minute); err != nil {
		return err
	}

	// New events for the same population, paced at the target rate.
	msgs, err := synthMessages(ctx, synth.Config{Persons: opts.Persons, Months: opts.Months, Seed: 8})
	if err != nil {
		return err
	}
	if want := int(float64(opts.Rate) * opts.LatencyFor.Seconds()); len(msgs) > want {
		msgs = msgs[:want]
	}

	nc, err := nats.Connect(natsURL)
	if err != nil {
		return fmt.Errorf("connecting to NATS: %w", err)
	}
	defer nc.Close()
	var dbg atomic.Int64
	var mu sync.Mutex
	sent := make(map[string]time.Time, len(msgs))
	var lat []time.Duration
	seen := make(map[string]bool, len(msgs))
	sub, err := nc.Subscribe("pop.>", func(msg *nats.Msg) {
		dbg.Add(1)
		now := time.Now()
		var n struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(msg.Data, &n) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if t, ok := sent[n.EventID]; ok && !seen[n.EventID] {
			seen[n.EventID] = true
			lat = append(lat, now.Sub(t))
		}
	})
	if err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)

	w := &kafka.Writer{Addr: kafka.TCP(brokerAddr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond}
	defer w.Close()
	const tick = 10 * time.Millisecond
	perTick := max(1, opts.Rate*int(tick)/int(time.Second))
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	ids := func(ms []kafka.Message) []string {
		out := make([]string, len(ms))
		for i, msg := range ms {
			var e struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(msg.Value, &e)
			out[i] = e.ID
		}
		return out
	}
	for i := 0; i < len(msgs); i += perTick {
		chunk := msgs[i:min(i+perTick, len(msgs))]
		names := ids(chunk)
		now := time.Now()
		mu.Lock()
		for _, id := range names {
			sent[id] = now
		}
		mu.Unlock()
		go func() {
			if err := w.WriteMessages(ctx, chunk...); err != nil {
				log.Warn("latency run: producing", "err", err)
			}
		}()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
	if err := waitConsumed(ctx, m, int64(already+len(msgs)), 5*time.Minute); err != nil {
		return err
	}
	warnConflicts(log, m)
	time.Sleep(time.Second) // let the last notifications arrive
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		return fmt.Errorf("no notification arrived (sent %d, consumed %+v, dbg %d)", len(sent), m.Consumer.Counts(), dbg.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.P50 = lat[len(lat)/2]
	res.P99 = lat[len(lat)*99/100]
	res.PMax = lat[len(lat)-1]
	res.Notified = len(lat)
	return nil
}

func dropSchema(ctx context.Context, url string, schemas ...string) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	for _, s := range schemas {
		_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE")
	}
}
