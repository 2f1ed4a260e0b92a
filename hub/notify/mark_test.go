package notify

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/internal/testenv"
)

// markedOutbox is a relay test's outbox that keeps the relay's stream
// marks in a real store.
type markedOutbox struct {
	*memOutbox
	marks StreamMarks
}

func (o markedOutbox) StreamMark(ctx context.Context, stream string) (hub.StreamMark, bool, error) {
	return o.marks.StreamMark(ctx, stream)
}

func (o markedOutbox) SaveStreamMark(ctx context.Context, stream string, m hub.StreamMark) error {
	return o.marks.SaveStreamMark(ctx, stream, m)
}

// TestRelayNoticesLossesWhileStopped: the relay published 300
// notifications and stopped; while no relay ran, the stream lost them
// (NATS restarted on an empty store, or on a copy without them). The
// relay started next, with the same store (reopened from its directory),
// logs an error naming sequences 1 to 300 and counts them in
// pophub_notifications_lost_total, before anything else; a restart where
// the stream kept them reports nothing.
func TestRelayNoticesLossesWhileStopped(t *testing.T) {
	for _, srv := range notificationServers {
		kept := struct {
			name string
			lose func(t *testing.T, js jetstream.JetStream, cfg StreamConfig)
		}{"kept", func(*testing.T, jetstream.JetStream, StreamConfig) {}}
		for _, tc := range append(streamLosses[:len(streamLosses):len(streamLosses)], kept) {
			lost := tc.name != "kept"
			t.Run(srv.name+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				js, cfg, prefix := srv.open(t)
				if err := EnsureStream(ctx, js, cfg); err != nil {
					t.Fatal(err)
				}
				cfg.setDefaults()
				dir := t.TempDir()
				o := newOutboxWithPrefix(300, prefix)
				start := func() *markedRun {
					return runMarked(t, js, o, dir, Config{BatchSize: 100, Stream: cfg}, nil)
				}

				first := start()
				waitDone(t, o, 300)
				time.Sleep(200 * time.Millisecond) // the idle relay has looked at the stream
				first.stop()

				tc.lose(t, js, cfg)
				next := start()
				logs := next.logs
				if lost {
					waitWithin(t, 10*time.Second, "the loss logged", func() bool { return strings.Contains(logs.String(), "notifications lost from the stream") })
				}
				time.Sleep(300 * time.Millisecond) // more looks, which must not count the loss again
				want := 0.0
				if lost {
					want = 300
				}
				if got := next.lost(t); got != want {
					t.Fatalf("pophub_notifications_lost_total = %v, want %v; log:\n%s", got, want, logs)
				}
				if !lost {
					return
				}
				var line string
				for l := range strings.Lines(logs.String()) {
					if strings.Contains(l, "notifications lost from the stream") {
						line = l
					}
				}
				for _, want := range []string{"level=ERROR", "first_seq=1 ", "last_seq=300 ", "count=300 ", "stream=" + cfg.Name + " "} {
					if !strings.Contains(line, want) {
						t.Errorf("the loss is logged as %q, want %s in it", line, want)
					}
				}
			})
		}
	}
}

// markedRun is a relay run on a memdb store in dir that keeps its stream
// marks, as the hub runs one: stop ends the relay and closes the store.
type markedRun struct {
	logs  *testenv.LogBuffer
	tel   *telemetry.Telemetry
	store *memdb.Store
	stop  func()
}

// runMarked starts a relay with cfg (its meter and logger set here) on
// the notifications of o, keeping its marks in a memdb store in dir;
// wrap, when set, wraps the outbox.
func runMarked(t *testing.T, js jetstream.JetStream, o *memOutbox, dir string, cfg Config, wrap func(markedOutbox) Outbox) *markedRun {
	t.Helper()
	store, err := memdb.Open(context.Background(), memdb.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m := &markedRun{logs: &testenv.LogBuffer{}, tel: newTelemetry(t), store: store}
	cfg.Meter, cfg.Logger = m.tel.Meter("test"), slog.New(slog.NewTextHandler(m.logs, nil))
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	var outbox Outbox = markedOutbox{o, store}
	if wrap != nil {
		outbox = wrap(markedOutbox{o, store})
	}
	r := New(cfg, js, outbox)
	r.streamCheckEvery = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	m.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && err != context.Canceled {
				t.Errorf("relay: %v", err)
			}
			if err := store.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(m.stop)
	return m
}

// lost is pophub_notifications_lost_total.
func (m *markedRun) lost(t *testing.T) float64 {
	return metricSum(t, m.tel, "pophub_notifications_lost_total")
}

// TestRelayQuietAfterRestartWithNATS: the hub and its NATS server (the
// embedded one, with a store directory) are restarted together, the
// stream keeping every notification: the relay started next reports no
// loss.
func TestRelayQuietAfterRestartWithNATS(t *testing.T) {
	ctx := context.Background()
	natsDir, dir := t.TempDir(), t.TempDir()
	o := newOutboxWithPrefix(300, "pop")
	var cfg StreamConfig
	cfg.setDefaults()
	run := func(n int) (*testenv.LogBuffer, float64) {
		srv := testenv.NATS(t, embedded.NATSConfig{StoreDir: natsDir})
		defer srv.Close()
		js := connect(t, srv.ClientURL())
		if err := EnsureStream(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
		m := runMarked(t, js, o, dir, Config{BatchSize: 100, Stream: cfg}, nil)
		waitDone(t, o, n)
		time.Sleep(300 * time.Millisecond)
		m.stop()
		js.Conn().Close()
		return m.logs, m.lost(t)
	}
	run(300)
	logs, lost := run(300)
	if lost != 0 || strings.Contains(logs.String(), "notifications lost") {
		t.Fatalf("after a restart with the stream intact: pophub_notifications_lost_total = %v; log:\n%s", lost, logs)
	}
}

// TestRelayCountsOnlyWhatAnOlderCopyLacks: the stream (kept to its last
// 200 messages by a message limit) held 101 to 300 when the relay
// stopped; NATS is then started on a copy of its store taken when it held
// 1 to 200. The copy lacks 201 to 300 only: the relay, started next with
// its mark, must report those 100, not the 200 of its mark (101 to 300),
// most of which the copy still holds.
func TestRelayCountsOnlyWhatAnOlderCopyLacks(t *testing.T) {
	ctx := context.Background()
	natsDir, copyDir, dir := t.TempDir(), t.TempDir(), t.TempDir()
	var cfg StreamConfig
	cfg.setDefaults()
	o := newOutboxWithPrefix(200, "pop")
	startRelay := func(url string) (*testenv.LogBuffer, func() float64, func()) {
		js := connect(t, url)
		m := runMarked(t, js, o, dir, Config{BatchSize: 100, Stream: cfg}, nil)
		return m.logs, func() float64 { return m.lost(t) }, func() { m.stop(); js.Conn().Close() }
	}

	srv := testenv.NATS(t, embedded.NATSConfig{StoreDir: natsDir})
	js := connect(t, srv.ClientURL())
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	_, _, stop := startRelay(srv.ClientURL())
	waitDone(t, o, 200)
	stop()
	srv.Close()
	if err := os.CopyFS(copyDir, os.DirFS(natsDir)); err != nil { // the copy: 1 to 200
		t.Fatal(err)
	}
	srv = testenv.NATS(t, embedded.NATSConfig{StoreDir: natsDir})
	js = connect(t, srv.ClientURL())
	s, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	sc.MaxMsgs = 200 // the stream keeps its last 200
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	o.add(100, "pop")
	logs, lost, stop := startRelay(srv.ClientURL())
	waitDone(t, o, 300)
	time.Sleep(300 * time.Millisecond)
	stop()
	if got := lost(); got != 0 {
		t.Fatalf("the message limit's removals were counted as lost: %v; log:\n%s", got, logs)
	}
	srv.Close()

	srv = testenv.NATS(t, embedded.NATSConfig{StoreDir: copyDir})
	logs, lost, stop = startRelay(srv.ClientURL())
	defer stop()
	waitWithin(t, 10*time.Second, "the loss logged", func() bool { return strings.Contains(logs.String(), "notifications lost from the stream") })
	time.Sleep(300 * time.Millisecond)
	if got := lost(); got != 100 {
		t.Fatalf("pophub_notifications_lost_total = %v, want 100 (201 to 300: the copy holds 1 to 200); log:\n%s", got, logs)
	}
}

// slowMarkedOutbox is a markedOutbox whose store takes a while to record
// each batch as published, as a busy PostgreSQL does.
type slowMarkedOutbox struct{ markedOutbox }

func (o slowMarkedOutbox) MarkPublished(ctx context.Context, seqs []int64) error {
	time.Sleep(40 * time.Millisecond)
	return o.markedOutbox.MarkPublished(ctx, seqs)
}

// TestRelaySavesMarkThroughBacklog: README promises that after a crash
// "only those stored in the last seconds before a crash can pass
// unnoticed", the mark being saved every 5 s while the relay publishes.
// A relay working through a backlog (every round a full batch) for longer
// than that must have saved a mark of what it stored meanwhile: were the
// hub to crash now, the next start compares the stream with it.
func TestRelaySavesMarkThroughBacklog(t *testing.T) {
	ctx := context.Background()
	js := connect(t, natsServer(t, 0).ClientURL())
	var cfg StreamConfig
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.setDefaults()
	o := newOutboxWithPrefix(3000, "pop")
	m := runMarked(t, js, o, t.TempDir(), Config{BatchSize: 10, Stream: cfg}, func(o markedOutbox) Outbox { return slowMarkedOutbox{o} })

	time.Sleep(markSaveEvery + 3*time.Second)
	published := o.done()
	if published >= 3000 {
		t.Fatalf("premise: the backlog was gone within %v (the relay went idle), where 3,000 entries at 10 a round of 40 ms take 12 s", markSaveEvery+3*time.Second)
	}
	mark, found, err := m.store.StreamMark(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !found || mark.Last == 0 {
		t.Fatalf("after %v of backlog (%d of 3000 published) the store keeps no mark of the stream (found %v, %+v): a crash now leaves every notification stored since the start unchecked at the next start",
			markSaveEvery+3*time.Second, published, found, mark)
	}
}

// TestRelayMarkFileDamaged: the memdb directory's stream-marks.json is
// damaged (cut short, edited by hand). The relay says so, but neither
// floods the log with a warning every poll interval for as long as it
// runs, nor leaves the feature off for good: the next save replaces the
// damaged file with a readable mark.
func TestRelayMarkFileDamaged(t *testing.T) {
	ctx := context.Background()
	js := connect(t, natsServer(t, 0).ClientURL())
	var cfg StreamConfig
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.setDefaults()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "stream-marks.json"), []byte(`{"POP":{"created":"2026-12-0`), 0o600); err != nil {
		t.Fatal(err)
	}
	o := newOutboxWithPrefix(50, "pop")
	m := runMarked(t, js, o, dir, Config{BatchSize: 100, Stream: cfg, PollInterval: 100 * time.Millisecond}, nil)
	waitDone(t, o, 50)
	time.Sleep(3 * time.Second)
	if n := strings.Count(m.logs.String(), "saving the relay's look at the notification stream"); n > 2 {
		t.Errorf("%d warnings about saving the mark in 3 s (poll interval 100 ms)", n)
	}
	if mark, found, err := m.store.StreamMark(ctx, cfg.Name); err != nil || !found || mark.Last != 50 {
		t.Errorf("StreamMark = %+v, %v, %v; want the relay's mark (last 50) in place of the damaged file", mark, found, err)
	}
}
