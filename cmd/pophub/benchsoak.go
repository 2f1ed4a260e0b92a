package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/schemas"
)

type soakOptions struct {
	Duration, Every time.Duration
	Rate            int
	Postgres        string
	Memdb           bool
}

// benchSoakCommand is `pophub bench soak`: the hub at a steady rate for a
// long time with subscribers attached, watching memory and lag.
func benchSoakCommand() *cobra.Command {
	var o soakOptions
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Run the hub at a steady event rate for a long time with subscribers attached; report memory and lag over time",
		Long: `Starts the embedded hub (PostgreSQL store by default, --memdb for memdb), attaches
two durable subscribers built on the subscriber SDK (every change; every migration
and death) and the eligibility watcher for every policy, and produces the events of
a synthetic population at --rate events/s for --duration. Every --every it prints
the events produced and done (applied, duplicate or rejected), the consumer lag,
the outbox backlog, each subscriber's pending notifications (changes; migrations
and deaths) and the process's heap and resident memory; at the end it compares the last third with the
first. Memory and lag that stay flat mean nothing accumulates.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			return runSoak(cmd.Context(), cmd.OutOrStdout(), log, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Duration, "duration", 30*time.Minute, "how long to produce")
	f.DurationVar(&o.Every, "every", time.Minute, "sampling interval")
	f.IntVar(&o.Rate, "rate", 5000, "events per second")
	f.StringVar(&o.Postgres, "postgres", envOr("POPHUB_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"), "PostgreSQL URL (a scratch schema is created and dropped)")
	f.BoolVar(&o.Memdb, "memdb", false, "use the memdb store instead of PostgreSQL")
	return cmd
}

// soakSample is one row of the soak's table.
type soakSample struct {
	At                time.Duration
	Produced, Applied int64
	Lag               int64
	Outbox            int
	Pending           []uint64
	HeapMB, RSSMB     float64
}

func runSoak(ctx context.Context, out io.Writer, log *slog.Logger, o soakOptions) error {
	dir, err := os.MkdirTemp("", "pophub-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := Config{Embedded: true, DataDir: dir, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		NATSSync: time.Second, EligibilityNotify: []string{"all"}}
	if !o.Memdb {
		cfg.PostgresURL = o.Postgres
		cfg.PostgresSchema = fmt.Sprintf("pophub_soak_%d", time.Now().UnixNano())
		defer dropSchema(context.WithoutCancel(ctx), o.Postgres, cfg.PostgresSchema)
	}
	m := &Main{Config: cfg, Logger: log}
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(out, "pophub bench soak: %d events/s for %s, store %s, %d CPUs, %s\n", o.Rate, o.Duration, m.storeName(), runtime.NumCPU(), runtime.Version())

	// Subscribers.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	names := []string{"soak-changes", "soak-migrations-deaths"}
	filters := [][]sdk.Filter{{{Kind: sdk.Changes}}, {{Kind: sdk.MigrationsOut}, {Kind: sdk.Deaths}}}
	var handled atomic.Int64
	for i, name := range names {
		s, err := sdk.New(sdk.Config{Name: name, URL: m.NATSURL(), Filters: filters[i], Logger: log,
			Handler: func(context.Context, *sdk.Delivery) error { handled.Add(1); return nil }})
		if err != nil {
			return err
		}
		defer s.Close()
		go func() {
			if err := s.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("soak subscriber stopped", "name", name, "err", err)
			}
		}()
	}
	js, err := jetstream.New(m.nc)
	if err != nil {
		return err
	}

	// Events: a synthetic population large enough for the whole run.
	persons := max(1000, o.Rate*int(o.Duration.Seconds())/12)
	events := make(chan kafka.Message, 4*o.Rate)
	go func() {
		defer close(events)
		_ = synth.Generate(runCtx, synth.Config{Persons: persons, Months: 24, Seed: 17}, func(ev schemas.Event) error {
			b, err := schemas.Encode(ev)
			if err != nil {
				return err
			}
			select {
			case events <- kafka.Message{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: b}:
				return nil
			case <-runCtx.Done():
				return runCtx.Err()
			}
		})
	}()
	w := &kafka.Writer{Addr: kafka.TCP(m.Brokers()...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: 2 * time.Millisecond, Async: false}
	defer w.Close()
	var produced atomic.Int64
	const tick = 20 * time.Millisecond
	perTick := max(1, o.Rate*int(tick)/int(time.Second))
	prodDone := make(chan error, 1)
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		end := time.Now().Add(o.Duration)
		inflight := make(chan struct{}, 64)
		var failed atomic.Pointer[error]
		for time.Now().Before(end) && failed.Load() == nil {
			batch := make([]kafka.Message, 0, perTick)
			for len(batch) < perTick {
				msg, ok := <-events
				if !ok {
					prodDone <- errors.New("the synthetic population ran out of events")
					return
				}
				batch = append(batch, msg)
			}
			inflight <- struct{}{}
			go func() {
				defer func() { <-inflight }()
				if err := w.WriteMessages(runCtx, batch...); err != nil {
					err = fmt.Errorf("producing: %w", err)
					failed.Store(&err)
					return
				}
				produced.Add(int64(len(batch)))
			}()
			select {
			case <-runCtx.Done():
				prodDone <- runCtx.Err()
				return
			case <-t.C:
			}
		}
		for range cap(inflight) {
			inflight <- struct{}{}
		}
		if e := failed.Load(); e != nil {
			prodDone <- *e
			return
		}
		prodDone <- nil
	}()

	start := time.Now()
	var samples []soakSample
	fmt.Fprintf(out, "%8s %10s %10s %8s %8s %10s %10s %8s %8s\n", "t", "produced", "done", "lag", "outbox", "changes", "mig+death", "heap MB", "RSS MB")
	sample := func() {
		s := soakSample{At: time.Since(start).Round(time.Second), Produced: produced.Load()}
		c := m.Consumer.Counts()
		s.Applied = c.Applied + c.Duplicates + c.RejectedTotal()
		for _, parts := range m.Consumer.Lag() {
			for _, l := range parts {
				s.Lag += l
			}
		}
		if es, err := m.Store.PendingOutbox(ctx, 0, 100000); err == nil {
			s.Outbox = len(es)
		}
		for _, name := range names {
			var p uint64
			if cons, err := js.Consumer(ctx, schemas.StreamName, name); err == nil {
				if info, err := cons.Info(ctx); err == nil {
					p = info.NumPending + uint64(info.NumAckPending)
				}
			}
			s.Pending = append(s.Pending, p)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.HeapMB = float64(ms.HeapInuse) / (1 << 20)
		s.RSSMB = rssMB()
		samples = append(samples, s)
		fmt.Fprintf(out, "%8s %10d %10d %8d %8d %10d %10d %8.0f %8.0f\n", s.At, s.Produced, s.Applied, s.Lag, s.Outbox,
			s.Pending[0], s.Pending[1], s.HeapMB, s.RSSMB)
	}
	ticker := time.NewTicker(o.Every)
	defer ticker.Stop()
	var prodErr error
loop:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case prodErr = <-prodDone:
			break loop
		case <-ticker.C:
			sample()
		}
	}
	sample()
	if prodErr != nil {
		return prodErr
	}
	if err := waitConsumed(ctx, m, produced.Load(), 5*time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nproduced %d events in %s (%.0f/s); all consumed %s after the last; subscribers handled %d notifications\n",
		produced.Load(), samples[len(samples)-1].At, float64(produced.Load())/samples[len(samples)-1].At.Seconds(),
		time.Since(start.Add(samples[len(samples)-1].At)).Round(time.Second), handled.Load())
	if len(samples) >= 6 {
		third := len(samples) / 3
		avg := func(ss []soakSample, f func(soakSample) float64) float64 {
			t := 0.0
			for _, s := range ss {
				t += f(s)
			}
			return t / float64(len(ss))
		}
		first, last := samples[:third], samples[len(samples)-third:]
		for _, x := range []struct {
			name string
			f    func(soakSample) float64
		}{
			{"heap MB", func(s soakSample) float64 { return s.HeapMB }},
			{"RSS MB", func(s soakSample) float64 { return s.RSSMB }},
			{"consumer lag", func(s soakSample) float64 { return float64(s.Lag) }},
			{"outbox backlog", func(s soakSample) float64 { return float64(s.Outbox) }},
			{"subscriber pending", func(s soakSample) float64 {
				t := 0.0
				for _, p := range s.Pending {
					t += float64(p)
				}
				return t
			}},
		} {
			fmt.Fprintf(out, "  %-18s first third %10.0f   last third %10.0f\n", x.name, avg(first, x.f), avg(last, x.f))
		}
	}
	return nil
}

// rssMB reads the process's resident set from /proc (0 where there is none).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseFloat(f[1], 64)
	return pages * float64(os.Getpagesize()) / (1 << 20)
}
