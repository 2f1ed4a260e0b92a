package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/schemas"
)

// memOutbox is an in-memory outbox for relay tests; the stores' own
// outboxes are tested by the store conformance suite.
type memOutbox struct {
	mu        sync.Mutex
	entries   []hub.OutboxEntry
	published map[int64]bool
	fail      int // fail this many reads first
}

func newOutbox(n int) *memOutbox {
	o := &memOutbox{published: map[int64]bool{}}
	for i := 1; i <= n; i++ {
		body, _ := json.Marshal(schemas.Notification{ChangeID: fmt.Sprintf("c%d.hukou", i), Section: "hukou"})
		o.entries = append(o.entries, hub.OutboxEntry{Seq: int64(i), Subject: fmt.Sprintf("pop.changed.23.2301.230102.s%d", i%7),
			MsgID: fmt.Sprintf("c%d.hukou", i), Body: body, Trace: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
	}
	return o
}

func (o *memOutbox) PendingOutbox(_ context.Context, after int64, limit int) ([]hub.OutboxEntry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail > 0 {
		o.fail--
		return nil, fmt.Errorf("store unavailable")
	}
	var out []hub.OutboxEntry
	for _, e := range o.entries {
		if e.Seq > after && !o.published[e.Seq] && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (o *memOutbox) MarkPublished(_ context.Context, seqs []int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range seqs {
		o.published[s] = true
	}
	return nil
}

func (o *memOutbox) done() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.published)
}

var syncInterval time.Duration

// natsServer starts an embedded server for one test.
func natsServer(t testing.TB) *embedded.NATS {
	t.Helper()
	n, err := embedded.StartNATS(context.Background(), embedded.NATSConfig{StoreDir: t.TempDir(), SyncInterval: syncInterval})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func connect(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func runRelay(t testing.TB, r *Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			t.Errorf("relay: %v", err)
		}
	})
}

func waitDone(t testing.TB, o *memOutbox, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for o.done() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d entries published", o.done(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// streamMsgIDs reads every message of the stream.
func streamMsgIDs(t testing.TB, js jetstream.JetStream, stream string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("traceparent") == "" {
			t.Errorf("message %d lost its trace context", seq)
		}
		ids = append(ids, m.Header.Get("Nats-Msg-Id"))
	}
	sort.Strings(ids)
	return ids
}

func TestRelayPublishesEveryEntryOnce(t *testing.T) {
	n := natsServer(t)
	js := connect(t, n.ClientURL())
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	o := newOutbox(2500)
	o.fail = 2 // the store is briefly unavailable
	r := New(Config{BatchSize: 300}, js, o)
	runRelay(t, r)
	waitDone(t, o, 2500)
	// A second relay re-publishes everything (as after a crash before
	// MarkPublished): JetStream drops the repeats by Nats-Msg-Id.
	o2 := newOutbox(2500)
	runRelay(t, New(Config{}, js, o2))
	waitDone(t, o2, 2500)
	ids := streamMsgIDs(t, js, schemas.StreamName)
	if len(ids) != 2500 {
		t.Fatalf("stream holds %d messages, want 2500", len(ids))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			t.Fatalf("message id %s stored twice", ids[i])
		}
	}
}

// TestRelaySurvivesServerRestart stops the NATS server mid-stream: the
// relay retries and publishes everything once the server is back.
func TestRelaySurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := embedded.StartNATS(context.Background(), embedded.NATSConfig{Addr: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	js := connect(t, url)
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	o := newOutbox(3000)
	runRelay(t, New(Config{BatchSize: 100, AckTimeout: time.Second}, js, o))
	waitDone(t, o, 200)
	srv.Close()
	time.Sleep(300 * time.Millisecond)
	srv2, err := embedded.StartNATS(context.Background(), embedded.NATSConfig{Addr: url[len("nats://"):], StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Close)
	waitDone(t, o, 3000)
	if ids := streamMsgIDs(t, js, schemas.StreamName); len(ids) != 3000 {
		t.Fatalf("stream holds %d messages after the restart, want 3000", len(ids))
	}
}

// TestEnsureStreamOnMachineServer checks stream setup against the
// machine's NATS server (an older 2.9), on a stream name of its own.
func TestEnsureStreamOnMachineServer(t *testing.T) {
	url := "nats://127.0.0.1:4222"
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("the machine's NATS server is not reachable at %s: %v", url, err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	name := fmt.Sprintf("POPTEST_%d", time.Now().UnixNano())
	prefix := "poptest" + fmt.Sprint(time.Now().UnixNano())
	cfg := StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, DuplicateWindow: time.Minute}
	ctx := context.Background()
	t.Cleanup(func() { js.DeleteStream(context.Background(), name) })
	for range 2 { // create, then update in place
		if err := EnsureStream(ctx, js, cfg); err != nil {
			t.Fatalf("EnsureStream on the machine's server: %v", err)
		}
	}
	for range 2 {
		if _, err := js.Publish(ctx, prefix+".changed.x", []byte("{}"), jetstream.WithMsgID("same")); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := js.Stream(ctx, name)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want 1 (deduplicated)", info.State.Msgs)
	}
}

// BenchmarkRelay reports notifications/s through the relay next to raw
// async JetStream publishing of the same messages.
func BenchmarkRelay(b *testing.B) {
	const n = 20000
	for _, mode := range []string{"raw", "relay", "relay-sync-1s"} {
		b.Run(mode, func(b *testing.B) {
			syncInterval = 0
			if mode == "relay-sync-1s" {
				syncInterval = time.Second
			}
			total := 0
			for b.Loop() {
				b.StopTimer()
				srv := natsServer(b)
				js := connect(b, srv.ClientURL())
				if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
					b.Fatal(err)
				}
				o := newOutbox(n)
				b.StartTimer()
				if mode == "raw" {
					for _, e := range o.entries {
						_, err := js.PublishAsync(e.Subject, e.Body, jetstream.WithMsgID(e.MsgID))
						if err != nil { // too many in flight: let them finish
							<-js.PublishAsyncComplete()
							_, err = js.PublishAsync(e.Subject, e.Body, jetstream.WithMsgID(e.MsgID))
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					<-js.PublishAsyncComplete()
				} else {
					ctx, cancel := context.WithCancel(context.Background())
					go New(Config{}, js, o).Run(ctx)
					waitDone(b, o, n)
					cancel()
				}
				total += n
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
