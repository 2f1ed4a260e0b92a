package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

func broker(t testing.TB) *embedded.Kafka {
	t.Helper()
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// tlsBroker starts an embedded broker that speaks only TLS, with a
// development CA, and returns it with a client configuration trusting it.
func tlsBroker(t testing.TB) (*embedded.Kafka, *tls.Config) {
	t.Helper()
	files, err := tlsconf.EnsureDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsconf.Server(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tlsconf.Client(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 2, TLS: srv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k, cli
}

// recordingApplier records applied events. It fails its first failFor
// calls (closing failed after the last, then waiting for release), or
// succeeds hangAfter times and then hangs until the context ends (closing
// failed when it starts to).
type recordingApplier struct {
	failFor   int
	hangAfter int
	failed    chan struct{}
	release   chan struct{}

	mu     sync.Mutex
	calls  int
	ids    map[string]int
	traces []map[string]string
}

func (a *recordingApplier) Apply(ctx context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.calls <= a.failFor {
		if a.calls == a.failFor && a.failed != nil {
			close(a.failed)
			a.mu.Unlock()
			<-a.release
			a.mu.Lock()
		}
		return hub.ApplyResult{}, errors.New("store unavailable")
	}
	if a.hangAfter > 0 && a.calls > a.hangAfter {
		if a.calls == a.hangAfter+1 {
			close(a.failed)
		}
		a.mu.Unlock()
		<-ctx.Done()
		a.mu.Lock()
		return hub.ApplyResult{}, ctx.Err()
	}
	if a.ids == nil {
		a.ids = map[string]int{}
	}
	for _, in := range batch {
		a.ids[in.Event.ID]++
		if in.Trace != nil {
			a.traces = append(a.traces, in.Trace)
		}
	}
	return hub.ApplyResult{Applied: len(batch)}, nil
}

func (a *recordingApplier) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

func produce(t testing.TB, addr string, in []hub.Input, headers []kafka.Header) {
	t.Helper()
	// A transport of its own: kafka-go's default one pools connections by
	// address, and a broker of an earlier test may have had this port
	// (under -shuffle a pooled connection to it was reset mid-write).
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		Transport: tr}
	defer w.Close()
	var msgs []kafka.Message
	for _, e := range in {
		v, err := schemas.Encode(e.Event)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Topic: schemas.Topic(e.Event.Source), Key: []byte(e.Event.Subject), Value: v, Headers: headers})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, c *Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		c.Close()
	}
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFailingStoreLosesNothing: while the store fails, nothing is committed
// or skipped; once it recovers every event is applied once, with the trace
// context of its record, and a consumer restarted on the same group gets
// nothing again.
func TestFailingStoreLosesNothing(t *testing.T) {
	k := broker(t)
	in := storetest.Population(t, 40, 51)
	trace := []kafka.Header{{Key: "traceparent", Value: []byte(testTraceparent)}, {Key: "tracestate", Value: []byte(testTracestate)}}
	produce(t, k.Addr(), in, trace)

	a := &recordingApplier{failFor: 4, failed: make(chan struct{}), release: make(chan struct{})}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "g1"}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	<-a.failed // the store has failed four times
	for tp, off := range committed(t, k.Addr(), "g1") {
		if off >= 0 {
			t.Errorf("offset %d committed on %v while the store failed", off, tp)
		}
	}
	if got := totalLag(t, c); got != int64(len(in)) {
		t.Errorf("consumer lag %d while the store failed, want %d", got, len(in))
	}
	close(a.release)
	waitUntil(t, "every event applied", func() bool { return a.count() == len(in) })
	waitUntil(t, "every offset committed", func() bool {
		var n int64
		for _, off := range committed(t, k.Addr(), "g1") {
			n += max(off, 0)
		}
		return n == int64(len(in))
	})
	if got := totalLag(t, c); got != 0 {
		t.Errorf("consumer lag %d after everything was committed, want 0", got)
	}
	stop()
	if counts := c.Counts(); counts.Consumed != int64(len(in)) || counts.Applied != int64(len(in)) {
		t.Errorf("counts %+v, want %d consumed and applied", counts, len(in))
	}
	for id, n := range a.ids {
		if n != 1 {
			t.Errorf("event %s applied %d times", id, n)
		}
	}
	if len(a.traces) != len(in) {
		t.Errorf("%d inputs carried trace context, want %d", len(a.traces), len(in))
	}
	for _, tr := range a.traces {
		if len(tr) != 2 || tr["traceparent"] != testTraceparent || tr["tracestate"] != testTracestate {
			t.Fatalf("Input.Trace = %v, want the record's traceparent and tracestate", tr)
		}
	}

	// Restart on the same group: offsets were committed, nothing comes back.
	b := &recordingApplier{}
	c2, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "g1"}, b)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := run(t, c2)
	extra := storetest.Population(t, 2, 52)
	produce(t, k.Addr(), extra, nil)
	waitUntil(t, "new events applied", func() bool { return b.count() == len(extra) })
	time.Sleep(200 * time.Millisecond)
	stop2()
	if b.count() != len(extra) {
		t.Errorf("restarted consumer applied %d events, want only the %d new ones", b.count(), len(extra))
	}
	if len(b.traces) != 0 {
		t.Errorf("records without trace headers gave inputs with trace context %v", b.traces[0])
	}
}

// TestStopMidStreamResumesAtCommitted stops a consumer while batches are
// being applied (as a crash would): every record below the committed
// offsets was applied, and a new consumer in the group gets exactly the
// records from the committed offsets on: nothing skipped, nothing older
// again.
func TestStopMidStreamResumesAtCommitted(t *testing.T) {
	k := broker(t)
	in := storetest.Population(t, 60, 53)
	produce(t, k.Addr(), in, nil)
	where := locate(t, k.Addr())
	if len(where) != len(in) {
		t.Fatalf("located %d records, produced %d", len(where), len(in))
	}

	// The first consumer applies three batches, then the store hangs;
	// the stop gives up on it after a short grace period.
	a := &recordingApplier{hangAfter: 3, failed: make(chan struct{})}
	cfg := Config{Brokers: []string{k.Addr()}, GroupID: "crash", MaxBatch: 40, ShutdownGrace: 200 * time.Millisecond}
	c, err := New(cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	<-a.failed
	time.Sleep(300 * time.Millisecond) // let the reader send what was committed
	stop()
	done := committed(t, k.Addr(), "crash")

	want := map[string]bool{}
	for id, loc := range where {
		if loc.offset >= max(done[loc.tp], 0) {
			want[id] = true
		} else if a.ids[id] != 1 {
			t.Errorf("event %s at %v offset %d is below the committed offset %d but was applied %d times",
				id, loc.tp, loc.offset, done[loc.tp], a.ids[id])
		}
	}
	if len(want) == 0 || len(want) == len(in) {
		t.Fatalf("%d of %d records left after the stop; the test needs some on both sides", len(want), len(in))
	}

	b := &recordingApplier{}
	c2, err := New(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := run(t, c2)
	waitUntil(t, "the rest applied", func() bool { return b.count() >= len(want) })
	time.Sleep(200 * time.Millisecond)
	stop2()
	for id := range b.ids {
		if !want[id] {
			t.Errorf("event %s was committed before the stop but delivered again", id)
		}
	}
	for id := range want {
		if b.ids[id] != 1 {
			t.Errorf("event %s after the committed offset applied %d times by the new consumer", id, b.ids[id])
		}
	}
	t.Logf("%d records, %d committed before the stop, %d applied but not committed (so applied twice)", len(in), len(in)-len(want), redelivered(a, want))
}

// totalLag measures the consumer's lag now and sums it.
func totalLag(t testing.TB, c *Consumer) int64 {
	t.Helper()
	if err := c.lag.update(context.Background()); err != nil {
		t.Fatalf("measuring lag: %v", err)
	}
	var n int64
	for _, parts := range c.Lag() {
		for _, v := range parts {
			n += v
		}
	}
	return n
}

// TestLagUpdatesReuseOneTransport: with TLS (or SASL) the lag poller has
// a transport of its own. Built anew for every update (every five seconds)
// and never closed, each kept a goroutine and connections for ever; now the
// updates share one, and closing the tracker releases it.
func TestLagUpdatesReuseOneTransport(t *testing.T) {
	k, cli := tlsBroker(t)
	cfg := Config{Brokers: []string{k.Addr()}, TLS: cli}
	cfg.setDefaults()
	lt, err := newLagTracker(cfg, metricnoop.NewMeterProvider().Meter(""))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	update := func(n int) {
		t.Helper()
		for range n {
			if err := lt.update(ctx); err != nil {
				t.Fatalf("measuring lag over TLS: %v", err)
			}
		}
	}
	// The transport's pool grows to a connection per request in flight
	// at once (about 20 here) and stays there. Other tests' goroutines
	// wind down meanwhile, so the bounds leave room for noise; a
	// transport per update added about 30 goroutines per update.
	update(10)
	before := settledGoroutines()
	const updates = 40
	update(updates)
	after := settledGoroutines()
	t.Logf("%d goroutines before %d lag updates, %d after", before, updates, after)
	if after-before > 20 {
		t.Errorf("%d goroutines before %d lag updates, %d after: a transport per update leaks", before, updates, after)
	}
	lt.close()
	if closed := settledGoroutines(); closed > after-20 {
		t.Errorf("%d goroutines after closing the tracker, %d while it was open: close did not release its transport", closed, after)
	}
}

// settledGoroutines counts goroutines once the count stops changing
// (connections and their goroutines wind down asynchronously).
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func redelivered(a *recordingApplier, want map[string]bool) int {
	n := 0
	for id := range want {
		if a.ids[id] > 0 {
			n++
		}
	}
	return n
}

// committed returns the group's committed offset per source partition
// (-1 where none).
func committed(t testing.TB, addr, group string) map[topicPartition]int64 {
	t.Helper()
	parts := map[string][]int{}
	for _, topic := range schemas.Topics() {
		parts[topic] = []int{0, 1}
	}
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil {
		t.Fatal(err)
	}
	out := map[topicPartition]int64{}
	for topic, ps := range resp.Topics {
		for _, p := range ps {
			out[topicPartition{topic, p.Partition}] = p.CommittedOffset
		}
	}
	return out
}

type location struct {
	tp     topicPartition
	offset int64
}

// locate reads every source partition and says where each event is.
func locate(t testing.TB, addr string) map[string]location {
	t.Helper()
	out := map[string]location{}
	for _, topic := range schemas.Topics() {
		for p := range 2 {
			conn, err := kafka.DialLeader(context.Background(), "tcp", addr, topic, p)
			if err != nil {
				t.Fatal(err)
			}
			end, err := conn.ReadLastOffset()
			conn.Close()
			if err != nil {
				t.Fatal(err)
			}
			if end == 0 {
				continue
			}
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
			for {
				m, err := r.ReadMessage(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				ev, err := schemas.Decode(schemas.Input{Topic: m.Topic, Key: m.Key, Value: m.Value})
				if err != nil {
					t.Fatal(err)
				}
				out[ev.ID] = location{topicPartition{topic, p}, m.Offset}
				if m.Offset == end-1 {
					break
				}
			}
			r.Close()
		}
	}
	return out
}

func TestEnsureTopicsIdempotent(t *testing.T) {
	k := broker(t)
	for range 2 {
		if err := EnsureTopics(context.Background(), []string{k.Addr()}, 3, nil, nil); err != nil {
			t.Fatalf("EnsureTopics: %v", err)
		}
	}
}

// TestPing: the readiness probe says ready only when a broker answers in
// the Kafka protocol, with the consumer's TLS, and has every source
// topic; a port that merely accepts connections is not Kafka.
func TestPing(t *testing.T) {
	plain := broker(t)
	if err := EnsureTopics(context.Background(), []string{plain.Addr()}, 2, nil, nil); err != nil {
		t.Fatal(err)
	}
	secure, cli := tlsBroker(t)
	if err := EnsureTopics(context.Background(), []string{secure.Addr()}, 2, nil, cli); err != nil {
		t.Fatal(err)
	}
	// A listener that accepts and says nothing, as a wrong port might.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()

	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" when ready
	}{
		{"the source topics", Config{Brokers: []string{plain.Addr()}}, ""},
		{"TLS", Config{Brokers: []string{secure.Addr()}, TLS: cli}, ""},
		{"a topic missing", Config{Brokers: []string{plain.Addr()}, Topics: []string{"pop.events.housing", "pop.events.nope"}}, "pop.events.nope"},
		{"plaintext to a TLS listener", Config{Brokers: []string{secure.Addr()}}, "asking Kafka"},
		{"not Kafka", Config{Brokers: []string{ln.Addr().String()}}, "asking Kafka"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.GroupID = "ping"
			c, err := New(tt.cfg, &recordingApplier{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err = c.Ping(ctx)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Ping: %v; want ready", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Ping: %v; want an error about %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}, &recordingApplier{}); err == nil {
		t.Error("New without brokers succeeded")
	}
}

// TestReaderLogLimitsRepeats: kafka-go may log one message a thousand
// times a second; each distinct message reaches the log once per window,
// and the next line says how many repeats it stands for.
func TestReaderLogLimitsRepeats(t *testing.T) {
	var logs testenv.LogBuffer
	var observed int
	l := newReaderLog(slog.New(slog.NewTextHandler(&logs, nil)), slog.LevelWarn, func(string, []any) bool { observed++; return false })
	l.window = time.Hour
	for range 1000 {
		l.Printf("Problem getting partitions during startup, %v\n, Returning and setting up nextGeneration", "[3] Unknown Topic Or Partition")
	}
	l.Printf("%v", "[15] Coordinator Not Available")
	if n := strings.Count(logs.String(), "\n"); n != 2 {
		t.Fatalf("1000 repeats and one other message logged %d lines, want 2:\n%s", n, logs.String())
	}
	if observed != 1001 {
		t.Errorf("observed %d messages, want all 1001", observed)
	}
	if !strings.Contains(logs.String(), "committing offsets or joining the group failed") {
		t.Errorf("a bare kafka-go error is not said to come from the group reader:\n%s", logs.String())
	}
	for _, r := range l.seen { // the window has passed
		r.at = r.at.Add(-2 * l.window)
	}
	l.Printf("Problem getting partitions during startup, %v\n, Returning and setting up nextGeneration", "[3] Unknown Topic Or Partition")
	if last := grepLines(logs.String(), "repeats_not_logged"); !strings.Contains(last, "repeats_not_logged=999") {
		t.Errorf("the line after the window does not count the 999 repeats:\n%s", logs.String())
	}
}

// TestRefusedCommitsAreLogged: when the broker refuses every offset
// commit, kafka-go retries in the background; the hub's log says that
// committing fails.
func TestRefusedCommitsAreLogged(t *testing.T) {
	k := onePartitionBroker(t)
	refuseAll(k, kmsg.OffsetCommit, nil, 15) // COORDINATOR_NOT_AVAILABLE
	writeRecords(t, k.Addr(), marriages(0, 3)...)
	var logs testenv.LogBuffer
	a := &recordingApplier{}
	c, err := New(withLog(Config{Brokers: []string{k.Addr()}, GroupID: "refused-commits"}, &logs), a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	defer stop()
	waitUntil(t, "3 applied", func() bool { return a.count() == 3 })
	waitUntil(t, "a warning about committing", func() bool {
		return strings.Contains(grepLines(logs.String(), "level=WARN"), "committing offsets or joining the group failed")
	})
}

// TestBrokerClosingConnectionsPausesConsumer: a broker that closes every
// connection sent a request (one shutting down, or a load balancer in
// front of Kafka with no broker behind it) makes kafka-go's group reader
// report a plain io.EOF, the error a closed reader gives. The consumer
// waits it out like any broker trouble, and goes on from where it was:
// Run does not return.
func TestBrokerClosingConnectionsPausesConsumer(t *testing.T) {
	k := onePartitionBroker(t)
	var down atomic.Bool
	k.Cluster().Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		if down.Load() {
			return nil, errors.New("broker down"), true // closes the connection
		}
		return nil, nil, false
	})
	writeRecords(t, k.Addr(), marriages(0, 3)...)
	var logs testenv.LogBuffer
	a := &recordingApplier{}
	c, err := New(withLog(Config{Brokers: []string{k.Addr()}, GroupID: "closing-broker"}, &logs), a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		c.Close()
	}()
	waitUntil(t, "3 applied", func() bool { return a.count() == 3 })

	down.Store(true)
	time.Sleep(5 * time.Second)
	down.Store(false)
	select {
	case err := <-done:
		done <- err
		t.Fatalf("Run returned %v while the broker closed connections; logs:\n%s", err, logs.String())
	default:
	}
	writeRecords(t, k.Addr(), marriages(3, 6)...)
	waitUntil(t, "the records written after the outage applied", func() bool { return a.count() == 6 })
}
