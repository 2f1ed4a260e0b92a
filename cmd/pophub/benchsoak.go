package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/schemas"
)

type soakOptions struct {
	Duration, Every time.Duration
	Rate            int
	Postgres        string
	Memdb           bool
	Persons         int
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
			if err := o.validate(); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			return runSoak(cmd.Context(), cmd.OutOrStdout(), log, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Duration, "duration", 30*time.Minute, "how long to produce")
	f.DurationVar(&o.Every, "every", time.Minute, "sampling interval")
	f.IntVar(&o.Rate, "rate", 5000, "events per second")
	f.StringVar(&o.Postgres, "postgres", envOr("POPHUB_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"), "PostgreSQL URL (a scratch schema is created and dropped; env POPHUB_POSTGRES)")
	f.BoolVar(&o.Memdb, "memdb", false, "use the memdb store instead of PostgreSQL (it keeps all history in memory, so its memory grows by design)")
	f.IntVar(&o.Persons, "persons", 20000, "persons of the synthetic population sent round after round")
	return cmd
}

// validate refuses, before the broker, NATS or the hub process start,
// the numbers the soak cannot run with: left to it, a rate below 1 or an
// interval of 0 panicked once everything was up.
func (o soakOptions) validate() error {
	switch {
	case o.Rate < 1:
		return fmt.Errorf("--rate %d: want at least 1 event a second", o.Rate)
	case o.Persons < 1:
		return fmt.Errorf("--persons %d: want at least 1", o.Persons)
	case o.Duration <= 0:
		return fmt.Errorf("--duration %s: want a positive duration", o.Duration)
	case o.Every <= 0:
		return fmt.Errorf("--every %s: want a positive interval", o.Every)
	}
	return nil
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

	// The hub runs as its own process (pophub serve), so that its memory
	// is its own: the broker, NATS, the load and the subscribers live in
	// this one. The broker keeps every record in memory and grows; the
	// hub must not.
	broker, err := embedded.StartKafka(ctx, embedded.KafkaConfig{Addr: "127.0.0.1:0", Partitions: 8, Logger: log})
	if err != nil {
		return fmt.Errorf("starting the broker: %w", err)
	}
	defer broker.Close()
	natsSrv, err := embedded.StartNATS(ctx, embedded.NATSConfig{Addr: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats"), SyncInterval: time.Second, Logger: log})
	if err != nil {
		return fmt.Errorf("starting NATS: %w", err)
	}
	defer natsSrv.Close()
	httpAddr, err := freeLocalAddr()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"serve", "--kafka", broker.Addr(), "--nats", natsSrv.ClientURL(), "--http", httpAddr,
		"--eligibility-notify", "all", "--log-level", "warn"}
	store := "postgres"
	if o.Memdb {
		store = "memdb"
		args = append(args, "--data", filepath.Join(dir, "store"))
	} else {
		schema := fmt.Sprintf("pophub_soak_%d", time.Now().UnixNano())
		defer dropSchema(context.WithoutCancel(ctx), o.Postgres, schema)
		args = append(args, "--postgres", o.Postgres, "--postgres-schema", schema)
	}
	hubCmd := exec.CommandContext(ctx, self, args...)
	hubCmd.Stdout, hubCmd.Stderr = io.Discard, os.Stderr
	if err := hubCmd.Start(); err != nil {
		return fmt.Errorf("starting pophub serve: %w", err)
	}
	defer func() {
		hubCmd.Process.Signal(os.Interrupt)
		hubCmd.Wait()
	}()
	hubURL := "http://" + httpAddr
	if err := waitHTTP(ctx, hubURL+"/readyz", time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(out, "pophub bench soak: %d events/s for %s, hub process %d (store %s), %d CPUs, %s\n",
		o.Rate, o.Duration, hubCmd.Process.Pid, store, runtime.NumCPU(), runtime.Version())
	nc, err := nats.Connect(natsSrv.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()

	// Subscribers.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	names := []string{"soak-changes", "soak-migrations-deaths"}
	filters := [][]sdk.Filter{{{Kind: sdk.Changes}}, {{Kind: sdk.MigrationsOut}, {Kind: sdk.Deaths}}}
	var handled atomic.Int64
	for i, name := range names {
		s, err := sdk.New(sdk.Config{Name: name, URL: natsSrv.ClientURL(), Filters: filters[i], Logger: log,
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
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	// Events: the life events of a synthetic population, generated once
	// before the clock starts and sent round after round with fresh ids,
	// so that the generator holds the same memory all along and every
	// round is new work for the hub.
	var population []schemas.Event
	if err := synth.Generate(ctx, synth.Config{Persons: o.Persons, Months: 24, Seed: 17}, func(ev schemas.Event) error {
		population = append(population, ev)
		return nil
	}); err != nil {
		return fmt.Errorf("generating the population: %w", err)
	}
	fmt.Fprintf(out, "%d events of %d persons, sent round after round with fresh ids\n", len(population), o.Persons)
	events := make(chan kafka.Message, 4*o.Rate)
	go func() {
		defer close(events)
		for round := 0; ; round++ {
			for _, ev := range population {
				ev.ID = ev.ID + "-r" + strconv.Itoa(round)
				b, err := schemas.Encode(ev)
				if err != nil {
					log.Error("soak: encoding an event", "err", err)
					return
				}
				select {
				case events <- kafka.Message{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: b}:
				case <-runCtx.Done():
					return
				}
			}
		}
	}()
	w := &kafka.Writer{Addr: kafka.TCP(broker.Addr()), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchBytes: 16 << 20, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	var produced atomic.Int64
	const tick = 100 * time.Millisecond
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
	fmt.Fprintf(out, "%8s %10s %10s %8s %8s %10s %10s %8s %8s\n", "t", "produced", "done", "lag", "outbox", "changes", "mig+death", "peak MB", "RSS MB")
	sample := func() {
		s := soakSample{At: time.Since(start).Round(time.Second), Produced: produced.Load()}
		if st, err := hubStatus(ctx, hubURL); err == nil {
			if st.Ingest != nil {
				s.Lag = st.Ingest.TotalLag
				if c := st.Ingest.Counts; c != nil {
					s.Applied = c.Applied + c.Duplicates
					for _, n := range c.Rejected {
						s.Applied += n
					}
				}
			}
			if p := st.Store.OutboxPending; p != nil {
				s.Outbox = int(*p)
			}
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
		s.HeapMB, s.RSSMB = processMemMB(hubCmd.Process.Pid)
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
	for deadline := time.Now().Add(5 * time.Minute); ; {
		st, err := hubStatus(ctx, hubURL)
		if err == nil && st.Ingest != nil && st.Ingest.Counts != nil && st.Ingest.Counts.Consumed >= produced.Load() {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the hub did not catch up within 5 minutes of the last event")
		}
		time.Sleep(time.Second)
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
			{"peak RSS MB", func(s soakSample) float64 { return s.HeapMB }},
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

// processMemMB reads a process's peak and current resident set from /proc
// (zeros where there is none).
func processMemMB(pid int) (peak, rss float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for l := range strings.Lines(string(b)) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmHWM:":
			peak = kb / 1024
		case "VmRSS:":
			rss = kb / 1024
		}
	}
	return peak, rss
}

// hubStatus reads GET /v1/admin/status.
func hubStatus(ctx context.Context, hubURL string) (api.Status, error) {
	var st api.Status
	_, err := hubGet(ctx, http.DefaultClient, hubURL+"/v1/admin/status", "", "operations", &st)
	return st, err
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s", url, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freeLocalAddr is a free 127.0.0.1 port.
func freeLocalAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
