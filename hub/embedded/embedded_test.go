package embedded

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
)

// freePort returns a TCP port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startKafka(t testing.TB, cfg KafkaConfig) *Kafka {
	t.Helper()
	k, err := StartKafka(context.Background(), cfg)
	if err != nil {
		t.Fatalf("StartKafka: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// TestKafkaSeedsTopics: the eight source topics and the DLQ exist with
// the configured partition count, on the address asked for.
func TestKafkaSeedsTopics(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	k := startKafka(t, KafkaConfig{Addr: addr, Partitions: 3})
	if k.Addr() != addr {
		t.Errorf("Addr() = %s, want %s", k.Addr(), addr)
	}
	cl := &kafka.Client{Addr: kafka.TCP(k.Addr()), Timeout: 10 * time.Second}
	meta, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, topic := range meta.Topics {
		got[topic.Name] = len(topic.Partitions)
	}
	for _, topic := range append(schemas.Topics(), schemas.DLQTopic) {
		if got[topic] != 3 {
			t.Errorf("topic %s has %d partitions, want 3", topic, got[topic])
		}
	}
	// The DLQ keeps rejects until an operator deletes them.
	dc, err := cl.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: schemas.DLQTopic, ConfigNames: []string{"retention.ms", "retention.bytes"}}}})
	if err != nil || len(dc.Resources) != 1 {
		t.Fatalf("describing %s: %v", schemas.DLQTopic, err)
	}
	for _, e := range dc.Resources[0].ConfigEntries {
		if e.ConfigValue != "-1" {
			t.Errorf("%s %s = %s, want -1 (no limit)", schemas.DLQTopic, e.ConfigName, e.ConfigValue)
		}
	}
	if len(dc.Resources[0].ConfigEntries) != 2 {
		t.Errorf("%s configs %+v", schemas.DLQTopic, dc.Resources[0].ConfigEntries)
	}
}

// TestKafkaPersists: records acknowledged by the broker are there again
// after it restarts on the same data directory.
func TestKafkaPersists(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	k, err := StartKafka(ctx, KafkaConfig{DataDir: dir, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Topic: schemas.DLQTopic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	var want []string
	var msgs []kafka.Message
	for i := range 50 {
		v := fmt.Sprintf("record %d", i)
		want = append(want, v)
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(v)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	k2 := startKafka(t, KafkaConfig{DataDir: dir, Partitions: 2})
	var got []string
	for p := range 2 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{k2.Addr()}, Topic: schemas.DLQTopic, Partition: p, MaxWait: 50 * time.Millisecond})
		r.SetOffset(kafka.FirstOffset)
		for {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			m, err := r.ReadMessage(rctx)
			cancel()
			if err != nil {
				break
			}
			got = append(got, string(m.Value))
		}
		r.Close()
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after restart the broker holds %d records %q, want the %d written", len(got), got, len(want))
	}
}

// TestKafkaKeepsRecordsStampedLongAgo: a record a department's client
// stamped with its business time (a registration of last year, as Kafka
// Connect or a migration sends it) stays on the source topic however old
// its timestamp, on a fresh broker and on one restarted on its data
// directory. With Kafka's seven-day retention, which kfake applies by the
// producers' timestamps, the broker's hourly pass deleted such records
// seconds after acknowledging them, before the hub had read them.
func TestKafkaKeepsRecordsStampedLongAgo(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, start := range []string{"fresh", "restarted"} {
		k := startKafka(t, KafkaConfig{DataDir: dir, Partitions: 1})
		topic := schemas.Topic(schemas.PublicSecurity)
		w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
		stamped := time.Now().AddDate(-1, 0, 0)
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("230102199001011230"), Value: []byte(start), Time: stamped}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		k.cluster.ApplyRetention() // the broker's hourly pass, now
		if p := k.cluster.PartitionInfo(topic, 0); p.LogStartOffset != 0 {
			t.Errorf("%s broker: %s starts at offset %d after a retention pass, want 0: records stamped a year ago were deleted", start, topic, p.LogStartOffset)
		}
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKafkaClusterID: a broker keeps its cluster id across restarts on
// its data directory, and another directory (or an in-memory broker) is
// another cluster. Every kfake broker once said "kfake", so an import
// tried on one pophub dev and sent to another took the two for one
// cluster and sent nothing.
func TestKafkaClusterID(t *testing.T) {
	ctx := context.Background()
	clusterOf := func(k *Kafka) string {
		t.Helper()
		c := &kafka.Client{Addr: kafka.TCP(k.Addr()), Timeout: 10 * time.Second}
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return md.ClusterID
	}
	dir := t.TempDir()
	k, err := StartKafka(ctx, KafkaConfig{DataDir: dir, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	first := clusterOf(k)
	k.Close()
	again := clusterOf(startKafka(t, KafkaConfig{DataDir: dir, Partitions: 1}))
	other := clusterOf(startKafka(t, KafkaConfig{DataDir: t.TempDir(), Partitions: 1}))
	memory := clusterOf(startKafka(t, KafkaConfig{Partitions: 1}))
	if first == "" || first == "kfake" || again != first {
		t.Errorf("cluster id %q, after a restart %q; want one id of its own, kept", first, again)
	}
	if other == first || memory == first || memory == other {
		t.Errorf("cluster ids %q, %q (another directory), %q (in memory); want three clusters", first, other, memory)
	}
}

func TestKafkaBadAddr(t *testing.T) {
	for _, addr := range []string{"nohost", "127.0.0.1:port"} {
		if k, err := StartKafka(context.Background(), KafkaConfig{Addr: addr}); err == nil {
			k.Close()
			t.Errorf("StartKafka(%q) succeeded", addr)
		}
	}
}

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNATS: JetStream with a file store that syncs every write unless told
// otherwise; a random port; Close twice; the server's log goes to slog.
func TestNATS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		addr     string
		interval time.Duration
	}{
		{"port 0 syncs every write", "127.0.0.1:0", 0},
		{"port -1 syncs every second", "127.0.0.1:-1", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			dir := t.TempDir()
			n, err := StartNATS(context.Background(), NATSConfig{Addr: tc.addr, StoreDir: dir, SyncInterval: tc.interval, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(n.Close)
			opts := n.Server().JetStreamConfig()
			if opts == nil {
				t.Fatal("JetStream is not enabled")
			}
			if want := tc.interval == 0; opts.SyncAlways != want {
				t.Errorf("SyncAlways = %v, want %v", opts.SyncAlways, want)
			}
			nc, err := nats.Connect(n.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "t.x", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if info, err := s.Info(ctx); err != nil || info.State.Msgs != 1 {
				t.Fatalf("stream info %+v, %v", info, err)
			}
			nc.Close()
			n.Close()
			n.Close()

			// The stream and its message are there after a restart.
			n2, err := StartNATS(context.Background(), NATSConfig{StoreDir: dir, SyncInterval: tc.interval})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(n2.Close)
			nc2, err := nats.Connect(n2.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc2.Close()
			js2, _ := jetstream.New(nc2)
			s2, err := js2.Stream(ctx, "T")
			if err != nil {
				t.Fatalf("stream after restart: %v", err)
			}
			if info, err := s2.Info(ctx); err != nil || info.State.Msgs != 1 {
				t.Errorf("after restart stream info %+v, %v", info, err)
			}
			if !bytes.Contains([]byte(logs.String()), []byte("nats server:")) {
				t.Errorf("nothing from the NATS server reached the logger: %q", logs.String())
			}
		})
	}
}

func TestNATSNeedsStoreDir(t *testing.T) {
	if n, err := StartNATS(context.Background(), NATSConfig{}); err == nil {
		n.Close()
		t.Error("StartNATS without a store directory succeeded")
	}
}

// TestNATSPortTaken: a taken port is an error at once that names it, as
// for the broker; the server once waited its full 30 s and then said only
// that it was not ready.
func TestNATSPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	n, err := StartNATS(context.Background(), NATSConfig{Addr: l.Addr().String(), StoreDir: t.TempDir()})
	if err == nil {
		n.Close()
		t.Fatal("StartNATS on a taken port succeeded")
	}
	if !strings.Contains(err.Error(), "address already in use") || time.Since(start) > 5*time.Second {
		t.Errorf("after %v: %v; want at once an error saying the address is in use", time.Since(start).Round(time.Millisecond), err)
	}
}

// TestKafkaSurvivesKill9 runs the broker in a child process, produces
// records with acks=all, kills the child with SIGKILL and restarts the
// broker on its data directory: every acknowledged record is there.
func TestKafkaSurvivesKill9(t *testing.T) {
	if dir := os.Getenv("POPHUB_KFAKE_CHILD"); dir != "" {
		kafkaChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKafkaSurvivesKill9$")
	cmd.Env = append(os.Environ(), "POPHUB_KFAKE_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child prints one line per acknowledged write of 100 records.
	acked := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() && acked < 5 {
		if strings.HasPrefix(sc.Text(), "acked ") {
			acked++
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if acked < 5 {
		t.Fatalf("the child acknowledged %d writes before it ended", acked)
	}

	k := startKafka(t, KafkaConfig{DataDir: dir, Partitions: 1})
	conn, err := kafka.DialLeader(context.Background(), "tcp", k.Addr(), schemas.DLQTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	end, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatal(err)
	}
	if end < int64(acked*100) {
		t.Errorf("after kill -9 the partition ends at offset %d, want at least the %d acknowledged records", end, acked*100)
	}
	t.Logf("%d acknowledged records, %d there after kill -9", acked*100, end)
}

// kafkaChild is TestKafkaSurvivesKill9's child: it writes batches of 100
// records until it is killed, printing a line after each acknowledged one.
func kafkaChild(dir string) {
	ctx := context.Background()
	k, err := StartKafka(ctx, KafkaConfig{DataDir: dir, Partitions: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Topic: schemas.DLQTopic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 100}
	for i := 0; ; i++ {
		msgs := make([]kafka.Message, 100)
		for j := range msgs {
			msgs[j] = kafka.Message{Value: []byte(fmt.Sprintf("record %d.%d", i, j))}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("acked %d\n", i)
	}
}

// TestNATSLogLevels: the server's errors reach the log as errors, but a
// client refused by its permissions, the access policy doing its work, is
// a warning, so that an operator's error alerts do not fire on it.
func TestNATSLogLevels(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(l natsLogger)
		want slog.Level
	}{
		{"publish violation", func(l natsLogger) {
			l.Errorf("%s - %q - Publish Violation - %s, Subject %q", "127.0.0.1:5000 - cid:19", "si-harbin", "User \"si-harbin\"", "$JS.API.CONSUMER.LIST.POP")
		}, slog.LevelWarn},
		{"subscription violation", func(l natsLogger) {
			l.Errorf("%s - Subscription Violation - %s, Subject %q", "cid:7", "User \"si-harbin\"", "pop.>")
		}, slog.LevelWarn},
		{"server error", func(l natsLogger) { l.Errorf("Error writing to stream: %v", "disk full") }, slog.LevelError},
		{"warning", func(l natsLogger) { l.Warnf("slow consumer %d", 3) }, slog.LevelWarn},
		{"notice", func(l natsLogger) { l.Noticef("Server is ready") }, slog.LevelDebug},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []slog.Level
			h := &levelRecorder{levels: &got}
			tc.log(natsLogger{slog.New(h)})
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("logged at %v, want once at %v", got, tc.want)
			}
		})
	}
}

// levelRecorder records the level of every record, at every level.
type levelRecorder struct{ levels *[]slog.Level }

func (h *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelRecorder) Handle(_ context.Context, r slog.Record) error {
	*h.levels = append(*h.levels, r.Level)
	return nil
}
func (h *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelRecorder) WithGroup(string) slog.Handler      { return h }
