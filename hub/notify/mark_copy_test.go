package notify

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/internal/testenv"
)

// TestRelayNoticesOlderCopyWhenNATSComesUpLate: the relay published 300
// notifications and stopped; NATS was then started on a copy of its store
// taken after 200 of them, and came up only after the hub (a host
// rebooted, the hub ingested meanwhile). The relay, started next with its
// mark, must report sequences 201 to 300 as lost, as README says ("compares
// the stream with it before publishing anything"), even though it has a
// backlog to publish once the server is up.
func TestRelayNoticesOlderCopyWhenNATSComesUpLate(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(map[bool]string{false: "up before the hub", true: "up after the hub"}[late], func(t *testing.T) {
			testOlderCopy(t, late, 0, 100)
		})
	}
}

func testOlderCopy(t *testing.T, late bool, window time.Duration, wantLost float64) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	natsDir, copyDir, dir := t.TempDir(), t.TempDir(), t.TempDir()
	var cfg StreamConfig
	cfg.setDefaults()
	o := newOutboxWithPrefix(200, "pop")

	startNATS := func(storeDir string) *embedded.NATS {
		return testenv.NATS(t, embedded.NATSConfig{Addr: addr, StoreDir: storeDir})
	}
	startRelay := func() (*testenv.LogBuffer, func() float64, func()) {
		nc, err := nats.Connect("nats://"+addr, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		m := runMarked(t, connectJS(t, nc), o, dir, Config{BatchSize: 100, RepublishWindow: window, Stream: cfg}, nil)
		return m.logs, func() float64 { return m.lost(t) }, func() { m.stop(); nc.Close() }
	}

	srv := startNATS(natsDir)
	js := connectJS(t, mustConnect(t, srv.ClientURL()))
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	_, _, stop := startRelay()
	waitDone(t, o, 200)
	srv.Close()
	if err := os.CopyFS(copyDir, os.DirFS(natsDir)); err != nil { // the copy: 200 notifications
		t.Fatal(err)
	}
	srv = startNATS(natsDir)
	o.add(100, "pop")
	waitDone(t, o, 300)
	time.Sleep(300 * time.Millisecond) // looked at, mark saved when stopping
	stop()
	srv.Close()

	// NATS comes up on the older copy after the hub started; the outbox
	// has a backlog of 150 by then.
	o.add(150, "pop")
	if !late {
		startNATS(copyDir)
	}
	logs, lost, stop := startRelay()
	defer stop()
	time.Sleep(500 * time.Millisecond)
	if late {
		startNATS(copyDir)
	}
	waitDone(t, o, 450)
	time.Sleep(500 * time.Millisecond)
	if got := lost(); got != wantLost || (wantLost > 0) != strings.Contains(logs.String(), "notifications lost from the stream") {
		t.Fatalf("pophub_notifications_lost_total = %v, want %v (sequences 201 to 300 gone with the older copy; republished: %v); log:\n%s",
			got, wantLost, window > 0, logs)
	}
}

func mustConnect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func connectJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestRelayQuietWhenTheWindowRestoresTheTail: the hub restarted together
// with NATS, whose store came back without its last 100 notifications (a
// host that lost power before the server synced them, or an older copy).
// All of them are in the relay's republish window, which the relay
// publishes again at its start: subscribers miss none, as when the same
// happens while the relay runs, and the relay must not raise the critical
// "notifications lost" alarm telling them to bootstrap again.
func TestRelayQuietWhenTheWindowRestoresTheTail(t *testing.T) {
	testOlderCopy(t, false, time.Hour, 0)
}

// TestRelayRunningQuietWhenTheWindowRestoresTheTail is the same loss
// while the relay runs: NATS restarted on a copy without the last 100
// notifications, which the relay publishes again on reconnecting. It
// reports nothing: the counterpart, at a start, of
// TestRelayQuietWhenTheWindowRestoresTheTail.
func TestRelayRunningQuietWhenTheWindowRestoresTheTail(t *testing.T) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	natsDir, copyDir := t.TempDir(), t.TempDir()
	var cfg StreamConfig
	cfg.setDefaults()
	o := newOutboxWithPrefix(200, "pop")
	srv := testenv.NATS(t, embedded.NATSConfig{Addr: addr, StoreDir: natsDir})
	nc, err := nats.Connect("nats://"+addr, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js := connectJS(t, nc)
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	tel := newTelemetry(t)
	logs := &testenv.LogBuffer{}
	r := New(Config{BatchSize: 100, PollInterval: 20 * time.Millisecond, RepublishWindow: time.Hour, Stream: cfg, Meter: tel.Meter("test"),
		Logger: slog.New(slog.NewTextHandler(logs, nil))}, js, o)
	r.streamCheckEvery = 50 * time.Millisecond
	runRelay(t, r)
	waitDone(t, o, 200)
	time.Sleep(300 * time.Millisecond)
	srv.Close()
	if err := os.CopyFS(copyDir, os.DirFS(natsDir)); err != nil {
		t.Fatal(err)
	}
	srv = testenv.NATS(t, embedded.NATSConfig{Addr: addr, StoreDir: natsDir})
	o.add(100, "pop")
	waitDone(t, o, 300)
	time.Sleep(500 * time.Millisecond)
	srv.Close()
	testenv.NATS(t, embedded.NATSConfig{Addr: addr, StoreDir: copyDir})
	waitWithin(t, 15*time.Second, "the window published again", func() bool { return strings.Contains(logs.String(), "stored_again=100") })
	time.Sleep(500 * time.Millisecond)
	if got := metricSum(t, tel, "pophub_notifications_lost_total"); got != 0 {
		t.Fatalf("pophub_notifications_lost_total = %v; log:\n%s", got, logs)
	}
}
