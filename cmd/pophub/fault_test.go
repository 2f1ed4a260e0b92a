package main

// The fault battery: the hub keeps running, and loses nothing, while its
// dependencies fail under it. Each test runs the real Main (as `pophub
// serve`: external broker, NATS and store, which the test owns and
// breaks), streams a synthetic population's events at a steady rate,
// injects faults mid-stream, and at the end checks what TestCrash checks:
// every golden record equals the one the pure merge rules give, history
// holds each distinct event once, and every change in the history is in
// stream POP, once. Each prints its figures (stall after each fault, i.e.
// the time from the dependency being back to the hub making progress again)
// with t.Logf; run with -v to see them.
//
//	go test -race -run 'TestFault' -v ./cmd/pophub/
//
// POPHUB_FAULT_PERSONS sets the population (default 2,000 persons, about
// 27,000 events; 800 persons, about 11,000 events, under the race
// detector), to run the battery bigger by hand. Under -race the whole
// battery takes about 100 seconds on a 2-core machine.
//
// TestFaultKafkaErrors (its Fetch fault) and TestFaultBrokerRestart guard
// how hub/ingest's Consumer.Run takes an error from kafka-go's
// FetchMessage: kafka-go reports a partition's or the group's error there
// and goes on retrying by itself, so Run must not take it as fatal. It
// once did, and `pophub serve` exited on a one-second broker hiccup or a
// broker restart.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/faults"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// faultPartitions is the partition count of every broker here (committed
// in crash_test.go assumes 4).
const faultPartitions = 4

// faultLoad is a synthetic population's events (1 % sent twice) and what
// the hub must reach with them.
type faultLoad struct {
	msgs     []kafka.Message
	inputs   []hub.Input
	want     map[citizenid.ID]hub.Record
	distinct int64
}

func faultPersons() int {
	if n, err := strconv.Atoi(os.Getenv("POPHUB_FAULT_PERSONS")); err == nil && n > 0 {
		return n
	}
	if raceEnabled {
		return 800 // the race detector slows the hub about fivefold
	}
	return 2000
}

func newFaultLoad(t testing.TB, persons int, seed int64) *faultLoad {
	t.Helper()
	l := &faultLoad{}
	err := synth.Generate(context.Background(), synth.Config{Persons: persons, Months: 24, Seed: seed, DuplicateRate: 0.01}, func(ev schemas.Event) error {
		v, err := schemas.Encode(ev)
		if err != nil {
			return err
		}
		l.msgs = append(l.msgs, kafka.Message{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: v})
		dec, err := schemas.Decode(schemas.Input{Value: v})
		l.inputs = append(l.inputs, hub.Input{Event: dec})
		return err
	})
	if err != nil {
		t.Fatalf("generating events: %v", err)
	}
	l.want = storetest.Expected(l.inputs)
	l.distinct = countDistinct(l.inputs)
	return l
}

// requireTool skips when a machine binary a test needs is missing, except
// under CI, where the battery must run whole.
func requireTool(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	testenv.Unavailable(t, "%v", err)
}

// startBroker starts a kfake broker with the hub's topics.
func startBroker(t testing.TB, cfg embedded.KafkaConfig) *embedded.Kafka {
	t.Helper()
	cfg.Partitions = faultPartitions
	k, err := embedded.StartKafka(context.Background(), cfg)
	if err != nil {
		t.Fatalf("starting broker: %v", err)
	}
	return k
}

func startNATS(t testing.TB) *embedded.NATS {
	t.Helper()
	return testenv.NATS(t, embedded.NATSConfig{SyncInterval: time.Second})
}

// servedHub is a running Main and what ended it, if something did.
type servedHub struct {
	*Main
	done chan struct{} // closed when Main's parts stopped
	err  error         // Wait's error, once done
}

// stopped reports whether the hub stopped by itself (a part failed).
func (h *servedHub) stopped() error {
	select {
	case <-h.done:
		return fmt.Errorf("the hub stopped: %v", h.err)
	default:
		return nil
	}
}

// startServe runs Main as `pophub serve` on servers the test owns, until
// the test ends.
func startServe(t testing.TB, cfg Config) *servedHub {
	t.Helper()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Partitions = faultPartitions
	if cfg.PostgresURL == "" && cfg.DataDir == "" {
		cfg.DataDir = t.TempDir() // serve refuses a store in memory only
	}
	if cfg.GroupID == "" {
		cfg.GroupID = fmt.Sprintf("fault-%d", time.Now().UnixNano())
	}
	m := &Main{Config: cfg, Logger: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("starting hub: %v", err)
	}
	h := &servedHub{Main: m, done: make(chan struct{})}
	go func() {
		h.err = m.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Logf("closing hub: %v", err)
		}
	})
	return h
}

// streamer publishes a load at a steady rate from a goroutine, retrying
// what the broker refuses (it may be down), so that faults land
// mid-stream.
type streamer struct {
	done chan struct{}
	sent atomic.Int64
	err  error
}

func stream(t testing.TB, broker string, msgs []kafka.Message, over time.Duration) *streamer {
	t.Helper()
	s := &streamer{done: make(chan struct{})}
	tr := ownTransport(t)
	const chunk = 200
	every := over / time.Duration(max(1, (len(msgs)+chunk-1)/chunk))
	go func() {
		defer close(s.done)
		w := &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
			BatchTimeout: 2 * time.Millisecond, BatchSize: chunk, MaxAttempts: 3, Transport: tr}
		defer w.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		next := time.Now()
		for i := 0; i < len(msgs); i += chunk {
			time.Sleep(time.Until(next))
			next = next.Add(every)
			part := msgs[i:min(i+chunk, len(msgs))]
			n := len(part)
			for len(part) > 0 {
				err := w.WriteMessages(ctx, part...)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					s.err = fmt.Errorf("producing: %w", err)
					return
				}
				// Send again only what failed: a chunk spans partitions,
				// and the ones that succeeded are already in the log.
				part = unsent(part, err)
				time.Sleep(100 * time.Millisecond)
			}
			s.sent.Add(int64(n))
		}
	}()
	t.Cleanup(func() { <-s.done })
	return s
}

// unsent returns the messages of msgs that err says were not written: all
// of them unless err is kafka-go's per-message WriteErrors.
func unsent(msgs []kafka.Message, err error) []kafka.Message {
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != len(msgs) {
		return msgs
	}
	failed := make([]kafka.Message, 0, werrs.Count())
	for i, e := range werrs {
		if e != nil {
			failed = append(failed, msgs[i])
		}
	}
	return failed
}

func (s *streamer) wait(t testing.TB) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(3 * time.Minute):
		t.Fatal("producer did not finish")
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
}

// at sleeps until d after start.
func at(start time.Time, d time.Duration) { time.Sleep(time.Until(start.Add(d))) }

// resumed waits until progressed, and returns the time since since: the
// stall. It fails at once if the hub stopped.
func resumed(t testing.TB, h *servedHub, what string, since time.Time, progressed func() bool) time.Duration {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !progressed() {
		if err := h.stopped(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no progress within 60s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(since)
}

// advanced reports whether count has risen since the call, or idle holds
// (nothing was left to do, so no progress can be seen).
func advanced(count func() int64, idle func() bool) func() bool {
	from := count()
	return func() bool { return count() > from || idle() }
}

// ingestIdle holds once the producer is done and the hub has consumed
// every record in the log.
func ingestIdle(m *servedHub, s *streamer, broker func() *embedded.Kafka) func() bool {
	return func() bool {
		select {
		case <-s.done:
		default:
			return false
		}
		return m.Consumer.Counts().Consumed >= endOffsets(broker())
	}
}

// relayIdle holds when the outbox is empty.
func relayIdle(m *servedHub) func() bool {
	return func() bool {
		st, err := m.Store.Stats(context.Background())
		return err == nil && st.OutboxPending == 0
	}
}

// consumed is the hub's count of records whose batch committed.
func consumed(m *servedHub) func() int64 {
	return func() int64 { return m.Consumer.Counts().Consumed }
}

// endOffsets sums the high watermarks of the source topics: every record
// the broker holds.
func endOffsets(k *embedded.Kafka) int64 {
	var n int64
	for _, topic := range schemas.Topics() {
		for _, p := range k.Cluster().PartitionInfos(topic) {
			n += p.HighWatermark
		}
	}
	return n
}

// waitFinished waits until the producer is done, the group has committed
// every record the broker holds and the outbox is empty.
func waitFinished(t testing.TB, m *servedHub, broker func() *embedded.Kafka, s *streamer) {
	t.Helper()
	s.wait(t)
	waitFor(t, 2*time.Minute, "every record committed and the outbox drained", func() bool {
		if err := m.stopped(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		k := broker()
		end := endOffsets(k)
		n, err := committed(ctx, k.Addr(), m.Config.GroupID)
		st, serr := m.Store.Stats(ctx)
		return err == nil && serr == nil && n >= end && st.OutboxPending == 0
	})
}

// checkOutcome is TestCrash's verdict: the records, history once per
// distinct event, and every implied notification in the stream once.
// It also checks that this hub run applied each distinct event exactly
// once (the hub was not restarted, so its counters cover the whole run).
func checkOutcome(t *testing.T, m *servedHub, l *faultLoad, logged int64, natsURL string) {
	t.Helper()
	storetest.CompareRecords(t, m.Store, l.want)
	st, err := m.Store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Changes != l.distinct {
		t.Fatalf("%d history rows, want %d distinct events", st.Changes, l.distinct)
	}
	// History holds each event once (above). The consumer's own counters
	// agree, except that a batch whose commit succeeded while its
	// connection broke (outcome unknown) is applied again and its events
	// then count as duplicates: the counters never count more than the
	// store holds, and nothing goes uncounted.
	c := m.Consumer.Counts()
	if c.Applied > l.distinct || c.Applied+c.Duplicates < l.distinct {
		t.Fatalf("applied %d events and %d duplicates, want %d applied: an event was applied twice or not at all", c.Applied, c.Duplicates, l.distinct)
	}
	if c.Applied < l.distinct {
		t.Logf("%d events of a batch whose commit outcome was unknown counted as duplicates when it was applied again", l.distinct-c.Applied)
	}
	t.Logf("%d records consumed of %d in the log (%d delivered again), %d applied, %d duplicates, %d rejected; %d golden records equal the expected ones",
		c.Consumed, logged, c.Consumed-logged, c.Applied, c.Duplicates, c.RejectedTotal(), len(l.want))
	checkNotifications(t, m.Store, natsURL, l.want)
	// And the operator's own check: every committed record accounted for.
	if tot := assertReconciled(t, m.Main).Total(); tot.Applied != l.distinct {
		t.Errorf("reconcile: %d applied, want %d", tot.Applied, l.distinct)
	}
}

// streamCount reads stream POP's message count on its own connection.
func streamCount(t testing.TB, url string) func() int64 {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, schemas.StreamName)
		if err != nil {
			return -1
		}
		info, err := s.Info(ctx)
		if err != nil {
			return -1
		}
		return int64(info.State.Msgs)
	}
}

// downSettle is how long after a dependency stopped the hub's counts may
// still move: work it finished just before (a batch PostgreSQL committed,
// notifications NATS acknowledged) is counted a moment later. After it,
// the fault tests require the counts to show the dependency gone, until
// downWatch. On a busy machine that moment took over a second (the relay
// marked a round NATS had acknowledged published 0.5 to 1.5 s after the
// server had exited), so the settling time is generous.
const (
	downSettle = 2 * time.Second
	downWatch  = downSettle + time.Second
)

// TestFaultPostgresRestart stops a private PostgreSQL under the hub twice
// mid-stream, in fast and in immediate (crash) shutdown mode, and starts
// it again: the hub pauses, reconnects with backoff and resumes, and loses
// nothing.
func TestFaultPostgresRestart(t *testing.T) {
	ctx := context.Background()
	_, err := faults.FindPostgresBin()
	requireTool(t, err)
	pg, err := faults.StartPostgres(ctx)
	if err != nil {
		t.Fatalf("starting private PostgreSQL: %v", err)
	}
	t.Cleanup(func() { pg.Close() })
	l := newFaultLoad(t, faultPersons(), 11)
	k := startBroker(t, embedded.KafkaConfig{})
	t.Cleanup(func() { k.Close() })
	ns := startNATS(t)
	m := startServe(t, Config{KafkaBrokers: []string{k.Addr()}, NATSURL: ns.ClientURL(),
		PostgresURL: pg.URL(), PostgresSchema: fmt.Sprintf("pophub_fault_pg_%d", time.Now().UnixNano())})

	start := time.Now()
	s := stream(t, k.Addr(), l.msgs, 12*time.Second)
	count := consumed(m)
	idle := ingestIdle(m, s, func() *embedded.Kafka { return k })
	for i, mode := range []string{"fast", "immediate"} {
		at(start, time.Duration(2+5*i)*time.Second)
		before := count()
		if err := pg.Stop(ctx, mode); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		// A batch PostgreSQL committed before it stopped is counted once
		// its offsets are committed, a moment later; after that, with the
		// store gone, nothing may commit, while the producer goes on
		// sending. A count that still rises means the hub was not cut
		// off from its store and the test proved nothing.
		at(stopped, downSettle)
		settled := count()
		at(stopped, downWatch)
		during := count()
		if during != settled {
			t.Errorf("PostgreSQL %s shutdown: %d records committed between %v and %v after PostgreSQL stopped: the store was not down",
				mode, during-settled, downSettle, downWatch)
		}
		if err := pg.Start(ctx); err != nil {
			t.Fatal(err)
		}
		up := time.Now()
		stall := resumed(t, m, "after restart", up, advanced(count, idle))
		t.Logf("PostgreSQL %s shutdown at %d records consumed: down %v, %d records committed while down (batches already applied), stall after restart %v",
			mode, before, up.Sub(stopped).Round(time.Millisecond), during-before, stall.Round(time.Millisecond))
	}
	waitFinished(t, m, func() *embedded.Kafka { return k }, s)
	t.Logf("stream of %d events finished %v after it started", len(l.msgs), time.Since(start).Round(time.Millisecond))
	checkOutcome(t, m, l, endOffsets(k), ns.ClientURL())
}

// TestFaultProxy puts TCP proxies between the hub and PostgreSQL and
// between the hub and NATS, and injects one fault after another
// mid-stream: every connection closed, connections reset and refused for
// a second, 50ms of latency each way. Nothing may be lost.
func TestFaultProxy(t *testing.T) {
	l := newFaultLoad(t, faultPersons(), 12)
	pgURL, pgProxy := testenv.PostgresThroughProxy(t)

	ns, natsProxy := natsThroughProxy(t)
	k := startBroker(t, embedded.KafkaConfig{})
	t.Cleanup(func() { k.Close() })
	m := startServe(t, Config{KafkaBrokers: []string{k.Addr()}, NATSURL: "nats://" + natsProxy.Addr(),
		PostgresURL: pgURL, PostgresSchema: testenv.Schema(t)})

	count := consumed(m)
	published := streamCount(t, ns.ClientURL())
	start := time.Now()
	s := stream(t, k.Addr(), l.msgs, 13*time.Second)
	idle := ingestIdle(m, s, func() *embedded.Kafka { return k })
	report := t.Logf

	// PostgreSQL: every connection closed (FIN), then reset (RST) and
	// refused for a second, then 50ms each way for two seconds.
	at(start, 1500*time.Millisecond)
	n := pgProxy.Cut()
	requireCut(t, "postgres cut", n)
	t0 := time.Now()
	report("postgres cut (%d connections closed): stall %v", n, resumed(t, m, "postgres cut", t0, advanced(count, idle)).Round(time.Millisecond))

	at(start, 3*time.Second)
	pgProxy.SetDown(true)
	n = pgProxy.Reset()
	requireCut(t, "postgres reset", n)
	time.Sleep(time.Second)
	pgProxy.SetDown(false)
	t0 = time.Now()
	report("postgres reset (%d connections) and refused for 1s: stall after it came back %v", n, resumed(t, m, "postgres reset", t0, advanced(count, idle)).Round(time.Millisecond))

	at(start, 5*time.Second)
	before := count()
	pgProxy.SetLatency(50 * time.Millisecond)
	time.Sleep(2 * time.Second)
	pgProxy.SetLatency(0)
	during := count() - before
	t0 = time.Now()
	report("postgres +50ms latency each way for 2s: %d records committed meanwhile (%.0f/s); after: stall %v", during, float64(during)/2, resumed(t, m, "postgres latency", t0, advanced(count, idle)).Round(time.Millisecond))

	// NATS: the same three.
	at(start, 7500*time.Millisecond)
	n = natsProxy.Cut()
	requireCut(t, "nats cut", n)
	t0 = time.Now()
	report("nats cut (%d connections closed): stall until the stream grows %v", n, resumed(t, m, "nats cut", t0, advanced(published, relayIdle(m))).Round(time.Millisecond))

	at(start, 9*time.Second)
	natsProxy.SetDown(true)
	n = natsProxy.Reset()
	requireCut(t, "nats reset", n)
	time.Sleep(time.Second)
	natsProxy.SetDown(false)
	t0 = time.Now()
	report("nats reset (%d connections) and refused for 1s: stall after it came back %v", n, resumed(t, m, "nats reset", t0, advanced(published, relayIdle(m))).Round(time.Millisecond))

	at(start, 11*time.Second)
	pubBefore := published()
	natsProxy.SetLatency(50 * time.Millisecond)
	time.Sleep(2 * time.Second)
	natsProxy.SetLatency(0)
	pubDuring := published() - pubBefore
	t0 = time.Now()
	report("nats +50ms latency each way for 2s: %d notifications stored meanwhile; after: stall %v", pubDuring, resumed(t, m, "nats latency", t0, advanced(published, relayIdle(m))).Round(time.Millisecond))

	waitFinished(t, m, func() *embedded.Kafka { return k }, s)
	t.Logf("stream of %d records finished %v after it started", len(l.msgs), time.Since(start).Round(time.Millisecond))
	checkOutcome(t, m, l, endOffsets(k), ns.ClientURL())
}

// requireCut fails the test when a proxy fault closed no connection: the
// hub was then not tested against it.
// natsThroughProxy starts an embedded NATS server and a proxy in front of
// it, both closed when the test ends; clients connect to the proxy.
func natsThroughProxy(t testing.TB) (*embedded.NATS, *faults.Proxy) {
	t.Helper()
	ns := startNATS(t)
	p, err := faults.NewProxy(ns.Server().Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return ns, p
}

func requireCut(t testing.TB, what string, n int) {
	t.Helper()
	if n <= 0 {
		t.Errorf("%s closed %d connections: the hub had none open through the proxy, so it was not tested against the fault", what, n)
	}
}

// TestFaultKafkaErrors makes the broker (kfake's fault hooks) answer
// OffsetCommit, Produce (the DLQ writes) and Fetch requests with errors
// for a second each, mid-stream: a broker cannot stand behind a proxy,
// since it announces its own address. The hub must ride each out and lose
// nothing; a few malformed records keep the DLQ writer busy. The Fetch
// fault stops the hub today (see the comment at the top of this file).
func TestFaultKafkaErrors(t *testing.T) {
	l := newFaultLoad(t, faultPersons(), 15)
	const poison = 40
	msgs := make([]kafka.Message, 0, len(l.msgs)+poison)
	step, added := len(l.msgs)/poison, 0
	for i, msg := range l.msgs {
		msgs = append(msgs, msg)
		if i%step == step-1 && added < poison {
			msgs = append(msgs, kafka.Message{Topic: msg.Topic, Key: msg.Key, Value: msg.Value[:len(msg.Value)/2]})
			added++
		}
	}
	k := startBroker(t, embedded.KafkaConfig{})
	t.Cleanup(func() { k.Close() })
	ns := startNATS(t)
	m := startServe(t, Config{KafkaBrokers: []string{k.Addr()}, NATSURL: ns.ClientURL()})
	count := consumed(m)
	start := time.Now()
	s := stream(t, k.Addr(), msgs, 8*time.Second)
	idle := ingestIdle(m, s, func() *embedded.Kafka { return k })
	for i, f := range []struct {
		name string
		key  kmsg.Key
		err  *kerr.Error
	}{
		{"OffsetCommit", kmsg.OffsetCommit, kerr.CoordinatorLoadInProgress},
		{"Produce", kmsg.Produce, kerr.NotEnoughReplicas},
		{"Fetch", kmsg.Fetch, kerr.UnknownServerError},
	} {
		at(start, 2*time.Second+time.Duration(i)*1500*time.Millisecond)
		h := k.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{f.key}, Err: f.err, Count: -1})
		time.Sleep(time.Second)
		h.Remove()
		t0 := time.Now()
		t.Logf("kafka %s answered %s for 1s (%d requests): stall after %v", f.name, f.err.Message, h.Hits(), resumed(t, m, "kafka "+f.name, t0, advanced(count, idle)).Round(time.Millisecond))
		if h.Hits() == 0 {
			t.Errorf("no %s request met the fault: the hub was not tested against it", f.name)
		}
	}
	waitFinished(t, m, func() *embedded.Kafka { return k }, s)
	t.Logf("stream of %d records finished %v after it started", len(msgs), time.Since(start).Round(time.Millisecond))
	if got := m.Consumer.Counts().Rejected[schemas.ReasonNotJSON]; got != poison {
		t.Errorf("%d records rejected as not_json, want %d", got, poison)
	}
	if got := dlqCount(t, k.Addr(), poison); got[schemas.ReasonNotJSON] != poison {
		t.Errorf("DLQ holds %v, want %d not_json", got, poison)
	}
	checkOutcome(t, m, l, endOffsets(k), ns.ClientURL())
}

// dlqCount reads the whole DLQ topic, partition by partition up to its end
// offset, and counts the records by reason.
func dlqCount(t testing.TB, broker string, want int) map[string]int {
	t.Helper()
	got := map[string]int{}
	var total int
	for p := 0; p < faultPartitions; p++ {
		// MaxWait 1 s: kafka-go reconnects and asks again when a fetch
		// answer takes longer than MaxWait to start, which a broker under
		// the race detector on a busy machine did at 100 ms, over and
		// over; Close waits for the fetch at the end, up to MaxWait.
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: schemas.DLQTopic, Partition: p, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: time.Second})
		end, err := r.ReadLag(context.Background())
		if err != nil {
			r.Close()
			t.Fatalf("reading DLQ lag: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for i := int64(0); i < end; i++ {
			msg, err := r.ReadMessage(ctx)
			if err != nil {
				cancel()
				r.Close()
				t.Fatalf("reading DLQ partition %d: %v", p, err)
			}
			for _, h := range msg.Headers {
				if h.Key == "pophub-reason" {
					got[string(h.Value)]++
				}
			}
			total++
		}
		cancel()
		r.Close()
	}
	if total != want {
		t.Logf("DLQ holds %d records, expected %d", total, want)
	}
	return got
}

// TestFaultNATSRestart restarts the NATS server (a real nats-server
// process) twice mid-stream, with SIGTERM and with SIGKILL: the outbox
// backlog grows while it is away and drains after; a durable JetStream
// consumer resumes from its position; no acknowledged notification is lost.
//
// The server is the nats-server of go.mod's requirement, built for the
// test (the machine's may be too old to know sync_interval), run as a
// child process: an in-process server cannot be killed, and its Shutdown
// flushes the store. The "sync-always" case syncs every write, as
// ops/docker/nats.conf configures it; "default-sync" runs JetStream's
// default (fsync every two minutes). A kill -9 loses nothing in either:
// for a one-replica stream the file store writes each message to the
// kernel before acknowledging it, so only an operating-system crash or a
// power loss could drop acknowledged messages (what notify's
// RepublishWindow is for), and this test cannot cause one.
func TestFaultNATSRestart(t *testing.T) {
	bin, err := faults.BuildNATSServer(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		syncAlways bool
	}{{"sync-always", true}, {"default-sync", false}} {
		t.Run(tc.name, func(t *testing.T) { testNATSRestart(t, bin, tc.syncAlways) })
	}
}

func testNATSRestart(t *testing.T, bin string, syncAlways bool) {
	ctx := context.Background()
	ns, err := faults.StartNATSProcess(ctx, faults.NATSProcessConfig{Bin: bin, Dir: t.TempDir(), SyncAlways: syncAlways})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	l := newFaultLoad(t, faultPersons(), 13)
	k := startBroker(t, embedded.KafkaConfig{})
	t.Cleanup(func() { k.Close() })
	m := startServe(t, Config{KafkaBrokers: []string{k.Addr()}, NATSURL: ns.URL()})

	// A subscriber: a durable pull consumer acknowledging every message.
	sub := newDurableSubscriber(t, ns.URL())
	published := streamCount(t, ns.URL())

	// Watch the outbox.
	var peak atomic.Int64
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	pending := func() int64 {
		st, err := m.Store.Stats(ctx)
		if err != nil {
			return -1
		}
		return st.OutboxPending
	}
	go func() {
		for watchCtx.Err() == nil {
			if p := pending(); p > peak.Load() {
				peak.Store(p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	start := time.Now()
	s := stream(t, k.Addr(), l.msgs, 12*time.Second)
	// Each stop must land while the hub still applies events, or the
	// backlog cannot be seen to grow; so the wait for a backlog to drain
	// ends at the next stop (a sync-always server can take longer than
	// the stream to take one in).
	sigs := []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}
	stopAt := func(i int) time.Time { return start.Add(time.Duration(2+5*i) * time.Second) }
	for i, sig := range sigs {
		at(stopAt(i), 0)
		peak.Store(0)
		before := published()
		if err := ns.Stop(sig); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		// With NATS gone the relay can mark nothing published, so the
		// outbox only grows while the hub goes on applying events: a
		// backlog that ever shrinks, or does not grow, means NATS was not
		// down and the test proved nothing.
		at(stopped, downSettle)
		first := pending()
		appliedBefore := m.Consumer.Counts().Applied
		low, last := first, first
		for time.Since(stopped) < downWatch {
			time.Sleep(10 * time.Millisecond)
			p := pending()
			if p < 0 {
				t.Fatal("reading the outbox backlog failed")
			}
			low, last = min(low, p), p
		}
		// On a loaded machine the hub may have applied what the stream
		// sent by then: a backlog that holds still, unshrunk, shows NATS
		// down as well; it must grow while the hub applies events.
		applied := m.Consumer.Counts().Applied - appliedBefore
		if low < first || last == 0 || applied >= 100 && last <= first {
			t.Errorf("NATS %v: the outbox backlog went from %d (%v after the stop) to %d, low %d, while NATS was down and the hub applied %d events: it must never shrink, and grow while events are applied",
				sig, first, downSettle, last, low, applied)
		}
		if err := ns.Start(ctx); err != nil {
			t.Fatal(err)
		}
		up := time.Now()
		backlog := pending()
		after := published()
		stall := resumed(t, m, "stream after NATS restart", up, advanced(published, relayIdle(m)))
		drainStart := time.Now()
		until, lastStop := drainStart.Add(time.Minute), i == len(sigs)-1
		if !lastStop {
			until = stopAt(i + 1)
		}
		var drained string
		for {
			p := pending()
			if p >= 0 && p < 200 {
				drained = fmt.Sprintf("backlog below 200 after %v more", time.Since(drainStart).Round(time.Millisecond))
				break
			}
			if time.Now().After(until) {
				if lastStop {
					t.Fatalf("NATS %v: the outbox backlog still %d a minute after the relay resumed", sig, p)
				}
				drained = fmt.Sprintf("backlog still %d at the next stop, %v later", p, time.Since(drainStart).Round(time.Millisecond))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("NATS %v with %d notifications stored: down %v; outbox backlog %d at restart (peak %d); the stream held %d after restart (%d lost with the server); relay resumed %v after restart; %s",
			sig, before, up.Sub(stopped).Round(time.Millisecond), backlog, peak.Load(), after, max(0, before-after), stall.Round(time.Millisecond), drained)
	}
	waitFinished(t, m, func() *embedded.Kafka { return k }, s)
	stopWatch()
	t.Logf("stream of %d events finished %v after it started", len(l.msgs), time.Since(start).Round(time.Millisecond))
	checkOutcome(t, m, l, endOffsets(k), ns.URL())
	sub.check(t, ns.URL())
}

// durableSubscriber is a subscriber: a durable pull consumer on stream POP
// that acknowledges every message and records its change id.
type durableSubscriber struct {
	mu        sync.Mutex
	seen      map[string]int
	delivered int
}

func newDurableSubscriber(t testing.TB, url string) *durableSubscriber {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{Durable: "fault-subscriber", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second})
	if err != nil {
		t.Fatalf("creating durable consumer: %v", err)
	}
	d := &durableSubscriber{seen: map[string]int{}}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		d.mu.Lock()
		d.seen[msg.Headers().Get(jetstream.MsgIDHeader)]++
		d.delivered++
		d.mu.Unlock()
		msg.Ack()
	}, jetstream.PullHeartbeat(time.Second), jetstream.ConsumeErrHandler(func(jetstream.ConsumeContext, error) {}))
	if err != nil {
		t.Fatalf("consuming: %v", err)
	}
	t.Cleanup(cc.Stop)
	return d
}

// check waits until the subscriber has seen every message of the stream,
// and reports how many it got more than once (at-least-once delivery).
func (d *durableSubscriber) check(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	ids := map[string]bool{}
	for n := uint64(0); n < info.State.Msgs; {
		batch, err := cons.FetchNoWait(5000)
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			ids[m.Headers().Get(jetstream.MsgIDHeader)] = true
			n++
		}
	}
	var missing int
	waitFor(t, time.Minute, "the durable subscriber to see the whole stream", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		missing = 0
		for id := range ids {
			if d.seen[id] == 0 {
				missing++
			}
		}
		return missing == 0
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	t.Logf("durable subscriber: %d deliveries of %d notifications (%d redelivered), none missed", d.delivered, len(ids), d.delivered-len(ids))
}

// committedNow reads the group's committed offsets, retrying while the
// broker is still coming up.
func committedNow(t testing.TB, broker, group string) int64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := committed(ctx, broker, group)
		cancel()
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading committed offsets: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFaultBrokerRestart restarts the broker (kfake on its data directory,
// on the same address) twice mid-stream: consumption resumes from the
// committed offsets, nothing is lost and nothing applied twice. The first
// restart stops the hub today (see the comment at the top of this file).
func TestFaultBrokerRestart(t *testing.T) {
	l := newFaultLoad(t, faultPersons(), 14)
	dir, addr := t.TempDir(), freeAddr(t)
	var mu sync.Mutex
	k := startBroker(t, embedded.KafkaConfig{Addr: addr, DataDir: dir})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		k.Close()
	})
	current := func() *embedded.Kafka {
		mu.Lock()
		defer mu.Unlock()
		return k
	}
	ns := startNATS(t)
	m := startServe(t, Config{KafkaBrokers: []string{addr}, NATSURL: ns.ClientURL()})
	count := consumed(m)
	start := time.Now()
	s := stream(t, addr, l.msgs, 10*time.Second)
	idle := ingestIdle(m, s, current)
	for i := 0; i < 2; i++ {
		at(start, time.Duration(2+4*i)*time.Second)
		before := committedNow(t, addr, m.Config.GroupID)
		end := endOffsets(current())
		mu.Lock()
		k.Close()
		stopped := time.Now()
		time.Sleep(time.Second)
		k = startBroker(t, embedded.KafkaConfig{Addr: addr, DataDir: dir})
		mu.Unlock()
		up := time.Now()
		after := committedNow(t, addr, m.Config.GroupID)
		if after < before {
			t.Fatalf("committed offsets went back from %d to %d across the restart", before, after)
		}
		if got := endOffsets(current()); got < end {
			t.Fatalf("the broker lost records across the restart: %d, had %d", got, end)
		}
		stall := resumed(t, m, "consumption after broker restart", up, advanced(count, idle))
		t.Logf("broker restart %d: %d of %d records committed before, %d after; down %v; consumption resumed %v after restart",
			i+1, before, end, after, up.Sub(stopped).Round(time.Millisecond), stall.Round(time.Millisecond))
	}
	waitFinished(t, m, current, s)
	t.Logf("stream of %d events finished %v after it started; the log holds %d records (producer retries included)",
		len(l.msgs), time.Since(start).Round(time.Millisecond), endOffsets(current()))
	checkOutcome(t, m, l, endOffsets(current()), ns.ClientURL())
}
