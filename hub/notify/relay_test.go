package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// memOutbox is an in-memory outbox for relay tests; the stores' own
// outboxes are tested by the store conformance suite.
type memOutbox struct {
	mu        sync.Mutex
	entries   []hub.OutboxEntry
	published map[int64]time.Time // when marked
	deleted   map[int64]bool      // published and deleted since
	fail      int                 // fail this many reads first
}

func newOutbox(n int) *memOutbox {
	return newOutboxWithPrefix(n, "pop")
}

// newOutboxWithPrefix holds n entries on subjects under prefix.
func newOutboxWithPrefix(n int, prefix string) *memOutbox {
	o := &memOutbox{published: map[int64]time.Time{}, deleted: map[int64]bool{}}
	o.add(n, prefix)
	return o
}

// add appends n entries.
func (o *memOutbox) add(n int, prefix string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	first := len(o.entries) + 1
	for i := first; i < first+n; i++ {
		body, _ := json.Marshal(schemas.Notification{ChangeID: fmt.Sprintf("c%d.hukou", i), Section: "hukou"})
		o.entries = append(o.entries, hub.OutboxEntry{Seq: int64(i), Subject: fmt.Sprintf("%s.changed.23.2301.230102.s%d", prefix, i%7),
			MsgID: fmt.Sprintf("c%d.hukou", i), Body: body, Trace: map[string]string{"traceparent": testTraceparent},
			CreatedAt: time.Now()})
	}
}

const testTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func (o *memOutbox) PendingOutbox(_ context.Context, after int64, limit int) ([]hub.OutboxEntry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail > 0 {
		o.fail--
		return nil, fmt.Errorf("store unavailable")
	}
	var out []hub.OutboxEntry
	for _, e := range o.entries {
		if _, done := o.published[e.Seq]; e.Seq > after && !done && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (o *memOutbox) CountPendingOutbox(context.Context) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return int64(len(o.entries) - len(o.published)), nil
}

func (o *memOutbox) MarkPublished(_ context.Context, seqs []int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range seqs {
		if _, ok := o.published[s]; !ok {
			o.published[s] = time.Now()
		}
	}
	return nil
}

func (o *memOutbox) PublishedOutbox(_ context.Context, after int64, limit int) ([]hub.OutboxEntry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []hub.OutboxEntry
	for _, e := range o.entries {
		if _, done := o.published[e.Seq]; e.Seq > after && done && !o.deleted[e.Seq] && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (o *memOutbox) DeletePublished(_ context.Context, olderThan time.Duration) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	cut := time.Now().Add(-olderThan)
	for seq, at := range o.published {
		if !at.After(cut) {
			o.deleted[seq] = true
		}
	}
	return nil
}

// kept counts the published entries not deleted.
func (o *memOutbox) kept() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.published) - len(o.deleted)
}

func (o *memOutbox) done() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.published)
}

// natsServer starts an embedded server for one test; sync is its fsync
// interval (0: every write).
func natsServer(t testing.TB, sync time.Duration) *embedded.NATS {
	t.Helper()
	return testenv.NATS(t, embedded.NATSConfig{SyncInterval: sync})
}

func connect(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	return testenv.JetStream(t, url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
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
		if m.Header.Get("traceparent") != testTraceparent {
			t.Errorf("message %d lost its trace context", seq)
		}
		ids = append(ids, m.Header.Get("Nats-Msg-Id"))
	}
	sort.Strings(ids)
	return ids
}

func TestRelayPublishesEveryEntryOnce(t *testing.T) {
	n := natsServer(t, 0)
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

// TestRelayCountsOnlyStoredNotifications: a notification JetStream
// acknowledges as a duplicate (it held it already) is not counted as
// published, whether pending entries are published a second time (a
// second relay, a crash before they were marked) or the republish window
// is published again to a server that kept it: the published counters
// summed over relays equal the stream's messages, and the repeats show as
// duplicates.
func TestRelayCountsOnlyStoredNotifications(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		name string
		// again is the second relay's outbox, holding the first's entries.
		again  func(t *testing.T) *memOutbox
		window time.Duration
		// counter is what the second relay counts its acknowledgements in.
		counter string
	}{
		{"pending entries published again", func(*testing.T) *memOutbox { return newOutbox(n) }, 0, "pophub_notifications_published_total"},
		{"republish window published again", func(t *testing.T) *memOutbox {
			o := newOutbox(n)
			seqs := make([]int64, n)
			for i := range seqs {
				seqs[i] = int64(i + 1)
			}
			if err := o.MarkPublished(context.Background(), seqs); err != nil {
				t.Fatal(err)
			}
			return o
		}, time.Minute, "pophub_notifications_republished_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := connect(t, natsServer(t, 0).ClientURL())
			if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
				t.Fatal(err)
			}
			firstTel, secondTel := newTelemetry(t), newTelemetry(t)
			o := newOutbox(n)
			runRelay(t, New(Config{Meter: firstTel.Meter("test")}, js, o))
			waitDone(t, o, n)
			want := n
			if tc.window > 0 {
				// A message another publisher wrote ends the stream; the
				// relay publishes its whole window again regardless.
				if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: "pop.changed.other", Data: []byte("{}")}, jetstream.WithMsgID("not-the-relays")); err != nil {
					t.Fatal(err)
				}
				want++
			}
			runRelay(t, New(Config{Meter: secondTel.Meter("test"), RepublishWindow: tc.window}, js, tc.again(t)))
			waitFor(t, "the second relay's acknowledgements", func() bool {
				return metricSum(t, secondTel, tc.counter)+metricSum(t, secondTel, "pophub_notifications_duplicate_total") >= n
			})
			if got := streamLen(t, js); got != want {
				t.Fatalf("stream holds %d notifications, want %d", got, want)
			}
			if got := metricSum(t, firstTel, "pophub_notifications_published_total"); got != n {
				t.Errorf("first relay: published %v, want %d", got, n)
			}
			if got := metricSum(t, secondTel, tc.counter); got != 0 {
				t.Errorf("second relay: %s %v, want 0: the stream stored none of its notifications", tc.counter, got)
			}
			if got := metricSum(t, secondTel, "pophub_notifications_duplicate_total"); got != n {
				t.Errorf("second relay: %v duplicates, want %d", got, n)
			}
			if got := metricSum(t, firstTel, "pophub_notifications_duplicate_total"); got != 0 {
				t.Errorf("first relay: %v duplicates, want 0", got)
			}
		})
	}
}

// TestRelaySurvivesServerRestart stops the NATS server mid-stream: the
// relay retries and publishes everything, once, when the server is back.
func TestRelaySurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.NATS(t, embedded.NATSConfig{StoreDir: dir})
	url := srv.ClientURL()
	js := connect(t, url)
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	o := newOutbox(3000)
	// With a republish window, what was published before the restart goes
	// out again after it, and the server drops it as repeats.
	runRelay(t, New(Config{BatchSize: 100, AckTimeout: time.Second, RepublishWindow: time.Minute}, js, o))
	waitDone(t, o, 200)
	srv.Close()
	time.Sleep(300 * time.Millisecond)
	testenv.NATS(t, embedded.NATSConfig{Addr: url[len("nats://"):], StoreDir: dir}) // the same server again
	restarted, before := time.Now(), o.done()
	for o.done() == before && time.Since(restarted) < 30*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("publishing resumed %v after the server was back", time.Since(restarted).Round(time.Millisecond))
	waitDone(t, o, 3000)
	t.Logf("all published %v after the server was back", time.Since(restarted).Round(time.Millisecond))
	if ids := streamMsgIDs(t, js, schemas.StreamName); len(ids) != 3000 || hasRepeats(ids) {
		t.Fatalf("stream holds %d messages after the restart (repeats: %v), want 3000 once", len(ids), hasRepeats(ids))
	}
}

// TestRelayOnMachineServer runs stream setup and the relay against the
// machine's NATS server (an older 2.9), on a stream and subjects of the
// test's own: every entry arrives once, also when a second relay publishes
// them all again, and stream setup is idempotent.
func TestRelayOnMachineServer(t *testing.T) {
	js := machineJetStream(t)
	suffix := time.Now().UnixNano()
	name := fmt.Sprintf("POPTEST_%d", suffix)
	prefix := fmt.Sprintf("poptest%d", suffix)
	cfg := StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, DuplicateWindow: time.Minute}
	ctx := context.Background()
	t.Cleanup(func() { js.DeleteStream(context.Background(), name) })
	for range 2 { // create, then update in place
		if err := EnsureStream(ctx, js, cfg); err != nil {
			t.Fatalf("EnsureStream on the machine's server: %v", err)
		}
	}
	// The relays look after the test's stream, not the machine's POP.
	o := newOutboxWithPrefix(700, prefix)
	runRelay(t, New(Config{BatchSize: 250, Stream: cfg}, js, o))
	waitDone(t, o, 700)
	o2 := newOutboxWithPrefix(700, prefix) // the same entries, published again
	runRelay(t, New(Config{Stream: cfg}, js, o2))
	waitDone(t, o2, 700)
	if ids := streamMsgIDs(t, js, name); len(ids) != 700 || hasRepeats(ids) {
		t.Errorf("stream holds %d messages (repeats: %v), want the 700 entries once", len(ids), hasRepeats(ids))
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Duplicates != time.Minute || info.Config.Storage != jetstream.FileStorage {
		t.Errorf("stream config %+v", info.Config)
	}
}

// TestEnsureStreamKeepsOperatorLimits: on the machine's server, a stream
// an operator tuned keeps its size limit and age across EnsureStream (a
// hub restart), the hub's own settings are restored, and an age the hub
// is configured with replaces the operator's.
func TestEnsureStreamKeepsOperatorLimits(t *testing.T) {
	js := machineJetStream(t)
	ctx := context.Background()
	suffix := time.Now().UnixNano()
	name := fmt.Sprintf("POPTEST_LIMITS_%d", suffix)
	subjects := []string{fmt.Sprintf("poplimits%d.>", suffix)}
	t.Cleanup(func() { js.DeleteStream(context.Background(), name) })
	cfg := StreamConfig{Name: name, Subjects: subjects}
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	info := streamConfig(t, js, name)
	if info.Replicas != 1 || info.MaxAge != 0 || info.Duplicates != 10*time.Minute || info.Discard != jetstream.DiscardOld {
		t.Fatalf("created %+v, want 1 replica, no age limit, a 10-minute duplicate window, discard old", info)
	}

	// The operator caps the stream and turns it to refuse new messages.
	info.MaxBytes, info.MaxAge, info.Discard = 64<<20, 72*time.Hour, jetstream.DiscardNew
	if _, err := js.UpdateStream(ctx, info); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	got := streamConfig(t, js, name)
	if got.MaxBytes != 64<<20 || got.MaxAge != 72*time.Hour {
		t.Errorf("after a restart: max bytes %d, max age %v; want the operator's 64 MiB and 72h", got.MaxBytes, got.MaxAge)
	}
	if got.Discard != jetstream.DiscardOld {
		t.Errorf("after a restart: discard %v; want old (a full stream must not refuse the relay)", got.Discard)
	}

	cfg.MaxAge = 24 * time.Hour
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if got := streamConfig(t, js, name); got.MaxAge != 24*time.Hour || got.MaxBytes != 64<<20 {
		t.Errorf("with --stream-max-age 24h: max age %v, max bytes %d", got.MaxAge, got.MaxBytes)
	}

	// An operator's age limit below the duplicate window shortens the
	// window, as JetStream requires, and the hub says so.
	got.MaxAge, got.Duplicates = 5*time.Minute, 5*time.Minute
	if _, err := js.UpdateStream(ctx, got); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg.MaxAge, cfg.Logger = 0, slog.New(slog.NewTextHandler(&logs, nil))
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if got := streamConfig(t, js, name); got.MaxAge != 5*time.Minute || got.Duplicates != 5*time.Minute {
		t.Errorf("with the operator's 5m age: max age %v, duplicate window %v; want both 5m", got.MaxAge, got.Duplicates)
	}
	if !strings.Contains(logs.String(), "shortens its duplicate window") {
		t.Errorf("no warning of the shorter duplicate window; logs: %q", logs.String())
	}
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config
}

// machineJetStream connects to the machine's NATS server (an older 2.9).
func machineJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	url := testenv.MachineNATS(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connecting to the machine's NATS server at %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func hasRepeats(sorted []string) bool {
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return true
		}
	}
	return false
}

// TestRelayRepublishesAfterHardRestart: a server that does not sync every
// write may lose acknowledged messages when it stops hard. The test stands
// in a server that lost everything (a new store directory on the same
// port) for one that lost its tail: with a republish window the relay
// publishes the window's entries again after the reconnect; without one
// they are gone, which is why the window exists.
func TestRelayRepublishesAfterHardRestart(t *testing.T) {
	for _, tc := range []struct {
		window time.Duration
		want   int
	}{
		{0, 0},
		{time.Minute, 400},
	} {
		t.Run(fmt.Sprintf("window %v", tc.window), func(t *testing.T) {
			srv := testenv.NATS(t, embedded.NATSConfig{SyncInterval: time.Minute})
			url := srv.ClientURL()
			js := connect(t, url)
			if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
				t.Fatal(err)
			}
			o := newOutbox(400)
			runRelay(t, New(Config{BatchSize: 100, AckTimeout: time.Second, RepublishWindow: tc.window}, js, o))
			waitDone(t, o, 400)
			srv.Close()
			testenv.NATS(t, embedded.NATSConfig{Addr: strings.TrimPrefix(url, "nats://")}) // a new, empty server at the same address
			// The hub's start-up would create the stream; here the test does.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for EnsureStream(ctx, js, StreamConfig{}) != nil {
				if ctx.Err() != nil {
					t.Fatal("stream not created on the restarted server")
				}
				time.Sleep(50 * time.Millisecond)
			}
			wait := 10 * time.Second
			if tc.want == 0 {
				wait = time.Second // time enough for a wrong republish to show
			}
			var got int
			for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if got = len(streamMsgIDs(t, js, schemas.StreamName)); got >= 400 {
					break
				}
			}
			if got != tc.want {
				t.Errorf("the restarted server holds %d notifications, want %d", got, tc.want)
			}
		})
	}
}

// TestRelayWake: an idle relay that would not poll for an hour publishes
// new entries as soon as it is woken, and reports what it did in metrics.
func TestRelayWake(t *testing.T) {
	n := natsServer(t, 0)
	js := connect(t, n.ClientURL())
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	o := newOutbox(0)
	r := New(Config{PollInterval: time.Hour, Meter: tel.Meter("test")}, js, o)
	runRelay(t, r)
	time.Sleep(100 * time.Millisecond) // the relay has found nothing and sleeps
	o.add(30, "pop")
	start := time.Now()
	r.Wake()
	waitDone(t, o, 30)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("woken relay took %v", d)
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, line := range []string{`pophub_notifications_published_total{kind="changed"} 30`,
		`pophub_notifications_published_total{kind="death"} 0`, "pophub_notifications_republished_total 0", "pophub_relay_publish_duration_seconds_count 1", "pophub_outbox_backlog ", "pophub_outbox_age_seconds "} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// BenchmarkRelay reports notifications/s through the relay next to raw
// async JetStream publishing of the same messages, to the embedded server
// syncing every write and syncing every second.
func BenchmarkRelay(b *testing.B) {
	const n = 20000
	for _, mode := range []struct {
		name  string
		relay bool
		sync  time.Duration
	}{
		{"raw/sync-always", false, 0},
		{"relay/sync-always", true, 0},
		{"raw/sync-1s", false, time.Second},
		{"relay/sync-1s", true, time.Second},
	} {
		b.Run(mode.name, func(b *testing.B) {
			total := 0
			b.StopTimer()
			for range b.N {
				srv := natsServer(b, mode.sync)
				js := connect(b, srv.ClientURL())
				if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
					b.Fatal(err)
				}
				o := newOutbox(n)
				b.StartTimer()
				if !mode.relay {
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
					done := make(chan struct{})
					go func() { New(Config{}, js, o).Run(ctx); close(done) }()
					waitDone(b, o, n)
					cancel()
					<-done
				}
				b.StopTimer()
				total += n
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// TestBackoffEndsWhenReconnected: a relay waiting out a backoff grown
// while NATS was down (up to 5 s) stops waiting once the connection is
// back, rather than hold the backlog for the rest of it; with no
// connection back it waits the whole backoff.
func TestBackoffEndsWhenReconnected(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.NATS(t, embedded.NATSConfig{StoreDir: dir})
	url := srv.ClientURL()
	nc := connect(t, url).Conn()
	srv.Close()
	for nc.IsConnected() {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if !sleepUntilConnected(context.Background(), nc, 300*time.Millisecond) {
		t.Fatal("sleepUntilConnected: false without a cancelled context")
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("still disconnected, waited %v of a 300ms backoff", waited)
	}

	const backoff = 30 * time.Second
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		sleepUntilConnected(context.Background(), nc, backoff)
		done <- time.Since(start)
	}()
	time.Sleep(200 * time.Millisecond)
	testenv.NATS(t, embedded.NATSConfig{Addr: url[len("nats://"):], StoreDir: dir}) // the same server again
	select {
	case waited := <-done:
		if !nc.IsConnected() {
			t.Errorf("returned after %v while still disconnected", waited)
		}
		t.Logf("the wait ended %v after it began, the server back after 200ms", waited.Round(time.Millisecond))
	case <-time.After(backoff - 5*time.Second):
		t.Fatalf("still waiting %v after the connection came back", backoff-5*time.Second)
	}
}
