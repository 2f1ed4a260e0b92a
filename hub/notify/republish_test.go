package notify

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestRelayStartRepublishesKept stands in for a power loss that takes
// the hub and a NATS server that syncs once a minute down together: the
// server comes back without what it acknowledged last (here, without
// anything), and the hub comes back with a new relay on the same store.
// With a republish window the relay publishes the acknowledged
// notifications the store kept again, on both stores; without one they
// are gone.
func TestRelayStartRepublishesKept(t *testing.T) {
	ctx := context.Background()
	stores := []struct {
		name string
		// open returns a function opening the same store again.
		open func(t *testing.T) func() hub.Store
	}{
		{"memdb", func(t *testing.T) func() hub.Store {
			dir := t.TempDir()
			return func() hub.Store {
				s, err := memdb.Open(ctx, memdb.Config{Dir: dir})
				if err != nil {
					t.Fatalf("opening memdb store: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}},
		{"postgres", func(t *testing.T) func() hub.Store {
			schema := testenv.Schema(t)
			return func() hub.Store {
				s, err := postgres.Open(ctx, postgres.Config{URL: testenv.PostgresURL(), Schema: schema})
				if err != nil {
					t.Fatalf("opening PostgreSQL store: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}},
	}
	for _, st := range stores {
		for _, window := range []time.Duration{0, time.Minute} {
			t.Run(st.name+"/window "+window.String(), func(t *testing.T) {
				open := st.open(t)
				s := open()
				res := storetest.ApplyAll(t, s, storetest.Population(t, 20, 31), 40)
				srv := natsServer(t, time.Minute)
				js := connect(t, srv.ClientURL())
				if err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
					t.Fatal(err)
				}
				cfg := Config{BatchSize: 100, AckTimeout: 5 * time.Second, RepublishWindow: window}
				stop := startRelay(t, New(cfg, js, s))
				waitFor(t, "every notification published", func() bool {
					n, err := s.CountPendingOutbox(ctx)
					return err == nil && n == 0 && streamLen(t, js) == res.Notifications
				})
				stop()
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}

				if err := js.DeleteStream(ctx, schemas.StreamName); err != nil {
					t.Fatal(err)
				}
				ensureStreamAgain(t, js)
				s = open()
				stop = startRelay(t, New(cfg, js, s))
				defer stop()
				want, wait := res.Notifications, 20*time.Second
				if window == 0 {
					want, wait = 0, time.Second // time enough for a wrong republish to show
				}
				got := 0
				for deadline := time.Now().Add(wait); time.Now().Before(deadline) && got < res.Notifications; time.Sleep(20 * time.Millisecond) {
					got = streamLen(t, js)
				}
				if got != want {
					t.Fatalf("after the restart the stream holds %d notifications, want %d", got, want)
				}
				if ids := streamMsgIDsAny(t, js); hasRepeats(ids) {
					t.Fatal("a notification is in the stream twice")
				}
			})
		}
	}
}

// TestRelayKeepsWindowThroughOutage: published entries older than the
// window are deleted while the server is there, but not while it is
// down, so that after an outage longer than the window a server that
// lost them gets them again.
func TestRelayKeepsWindowThroughOutage(t *testing.T) {
	srv := testenv.NATS(t, embedded.NATSConfig{SyncInterval: time.Minute})
	url := srv.ClientURL()
	js := connect(t, url)
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	o := newOutbox(50)
	runRelay(t, New(Config{AckTimeout: time.Second, PollInterval: 20 * time.Millisecond, RepublishWindow: 300 * time.Millisecond}, js, o))
	waitDone(t, o, 50)
	srv.Close()
	time.Sleep(2500 * time.Millisecond) // past the window and the relay's one-second delete interval
	if n := o.kept(); n != 50 {
		t.Fatalf("%d of 50 published entries kept while the server was down", n)
	}
	testenv.NATS(t, embedded.NATSConfig{Addr: strings.TrimPrefix(url, "nats://")}) // a new, empty server at the same address
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for EnsureStream(ctx, js, StreamConfig{}) != nil {
		if ctx.Err() != nil {
			t.Fatal("stream not created on the restarted server")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, "the kept entries published again", func() bool { return streamLen(t, js) == 50 })
	waitFor(t, "the entries deleted once the server had them again", func() bool { return o.kept() == 0 })
}

// TestRelayRecreatesDeletedStream: a stream deleted while the relay runs
// (a lost volume, a deletion by mistake) is created again with the
// configured settings as soon as the relay has something to publish, and
// the entries kept for the republish window go into it again with the new
// ones. Ping, which readiness asks, reports the stream missing until then.
// The idle relay's own look for the stream is put off here, so that the
// publish finds it missing (TestRelayRecreatesStreamWhileIdle tests it).
func TestRelayRecreatesDeletedStream(t *testing.T) {
	ctx := context.Background()
	srv := natsServer(t, 0)
	js := connect(t, srv.ClientURL())
	stream := StreamConfig{MaxAge: 48 * time.Hour}
	if err := EnsureStream(ctx, js, stream); err != nil {
		t.Fatal(err)
	}
	var logs testenv.LogBuffer
	o := newOutbox(100)
	r := New(Config{PollInterval: time.Hour, AckTimeout: 2 * time.Second, RepublishWindow: time.Minute, Stream: stream,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, js, o)
	r.streamCheckEvery = time.Hour
	runRelay(t, r)
	waitDone(t, o, 100)
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("Ping with the stream there: %v", err)
	}

	if err := js.DeleteStream(ctx, schemas.StreamName); err != nil {
		t.Fatal(err)
	}
	if err := r.Ping(ctx); err == nil {
		t.Fatal("Ping reports ready while the stream is missing")
	}
	o.add(50, "pop")
	r.Wake()
	waitDone(t, o, 150)
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("Ping after the relay created the stream again: %v", err)
	}
	waitFor(t, "the kept entries in the new stream", func() bool { return streamLen(t, js) == 150 })
	if ids := streamMsgIDs(t, js, schemas.StreamName); len(ids) != 150 || hasRepeats(ids) {
		t.Fatalf("the new stream holds %d notifications (repeats: %v), want 150 once", len(ids), hasRepeats(ids))
	}
	if got := streamConfig(t, js, schemas.StreamName); got.MaxAge != 48*time.Hour || got.Storage != jetstream.FileStorage {
		t.Errorf("stream created again with max age %v, storage %v; want the configured 48h, file", got.MaxAge, got.Storage)
	}
	if !strings.Contains(logs.String(), "creating it again") {
		t.Errorf("the re-creation was not logged: %q", logs.String())
	}
}

// TestBacklogGaugeIsStoreCount: pophub_outbox_backlog is the store's
// count of entries waiting at the scrape, however many relay rounds they
// take, and falls to zero once they are published.
func TestBacklogGaugeIsStoreCount(t *testing.T) {
	srv := natsServer(t, 0)
	js := connect(t, srv.ClientURL())
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	o := newOutbox(0)
	r := New(Config{BatchSize: 100, PollInterval: time.Hour, Meter: tel.Meter("test")}, js, o)
	runRelay(t, r)
	time.Sleep(100 * time.Millisecond) // the relay has found nothing and sleeps
	o.add(5000, "pop")
	if got := backlog(t, tel); got != 5000 {
		t.Errorf("pophub_outbox_backlog = %d with 5,000 waiting (batches of 100), want 5000", got)
	}
	r.Wake()
	waitDone(t, o, 5000)
	if got := backlog(t, tel); got != 0 {
		t.Errorf("pophub_outbox_backlog = %d with nothing waiting", got)
	}
}

// backlog scrapes pophub_outbox_backlog.
func backlog(t *testing.T, tel *telemetry.Telemetry) int64 {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || (name != "pophub_outbox_backlog" && !strings.HasPrefix(name, "pophub_outbox_backlog{")) {
			continue
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("pophub_outbox_backlog: %q", line)
		}
		return int64(n)
	}
	t.Fatalf("/metrics has no pophub_outbox_backlog:\n%s", rec.Body.String())
	return 0
}

// startRelay runs r until the returned function is called.
func startRelay(t testing.TB, r *Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	return func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			t.Errorf("relay: %v", err)
		}
	}
}

// waitFor waits up to 30 s for cond.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// streamLen is the number of messages in the notification stream.
func streamLen(t testing.TB, js jetstream.JetStream) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Msgs)
}

// streamMsgIDsAny reads the message ids of the notification stream,
// sorted, whatever trace context the messages carry.
func streamMsgIDsAny(t testing.TB, js jetstream.JetStream) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, schemas.StreamName)
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
		ids = append(ids, m.Header.Get("Nats-Msg-Id"))
	}
	slices.Sort(ids)
	return ids
}

// TestOutboxAgeWhileServerDown: a relay that starts (a hub restart, a
// lease take-over) while NATS is unreachable reports the age of the
// oldest waiting entry from its first failed round on, whether or not
// published entries are kept for the republish window: republishing them
// fails every round then, and PophubOutboxDelayed/Stalled watch the age.
func TestOutboxAgeWhileServerDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		kept bool // entry 1 was published and is kept for the window
	}{
		{"nothing kept", false},
		{"published entries kept", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natsServer(t, 0)
			js := connect(t, srv.ClientURL())
			if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
				t.Fatal(err)
			}
			tel := newTelemetry(t)
			o := newOutbox(3)
			if tc.kept {
				o.MarkPublished(context.Background(), []int64{1})
			}
			o.mu.Lock()
			for i := range o.entries {
				o.entries[i].CreatedAt = time.Now().Add(-20 * time.Minute)
			}
			o.mu.Unlock()
			srv.Close() // NATS is down when the relay starts

			var logs testenv.LogBuffer
			r := New(Config{AckTimeout: 200 * time.Millisecond, PollInterval: 20 * time.Millisecond,
				RepublishWindow: 150 * time.Second, Meter: tel.Meter("test"),
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}, js, o)
			runRelay(t, r)
			waitFor(t, "a failed round", func() bool { return strings.Contains(logs.String(), "publishing notifications") })
			if age := metricSum(t, tel, "pophub_outbox_age_seconds"); age < 1200 {
				t.Errorf("after a failed round with entries waiting 20 min, pophub_outbox_age_seconds = %v (-1: absent), want >= 1200", age)
			}
		})
	}
}

// ensureStreamAgain creates the stream just deleted. The server removes
// a deleted stream's files in the background and may refuse a new store
// under the same name for a moment ("error creating store for stream"),
// as the relay's own re-creation allows for by trying again on its next
// round; so does this.
func ensureStreamAgain(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = EnsureStream(context.Background(), js, StreamConfig{}); err == nil {
			return
		}
	}
	t.Fatalf("creating the deleted stream again: %v", err)
}

// TestRelayRecreatesStreamWhileIdle: a stream deleted while the relay has
// nothing to publish (a quiet night) is created again within seconds with
// the configured settings, without waiting for a new notification, so
// that readiness and subscribers recover; the entries kept for the
// republish window go into it again. A relay standing by for another
// instance's lease leaves it to the leader.
func TestRelayRecreatesStreamWhileIdle(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		lease  Lease
		want   int // notifications in the new stream; -1: no stream
	}{
		{"republish window", time.Minute, nil, 100},
		{"no window", 0, nil, 0},
		{"standing by", time.Minute, heldElsewhere{}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv := natsServer(t, 0)
			js := connect(t, srv.ClientURL())
			stream := StreamConfig{MaxAge: 48 * time.Hour}
			if err := EnsureStream(ctx, js, stream); err != nil {
				t.Fatal(err)
			}
			o := newOutbox(100)
			var logs testenv.LogBuffer
			r := New(Config{PollInterval: time.Hour, AckTimeout: 2 * time.Second, RepublishWindow: tc.window, Stream: stream,
				Lease: tc.lease, LeaseInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, js, o)
			runRelay(t, r)
			if tc.lease == nil {
				waitDone(t, o, 100)
			}
			time.Sleep(200 * time.Millisecond) // the relay has found nothing and sleeps

			if err := js.DeleteStream(ctx, schemas.StreamName); err != nil {
				t.Fatal(err)
			}
			if tc.want < 0 {
				time.Sleep(4 * time.Second)
				if _, err := js.Stream(ctx, schemas.StreamName); !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Fatalf("a relay standing by touched the stream: looking it up gave %v, want not found", err)
				}
				return
			}
			took := waitWithin(t, 10*time.Second, "the stream created again", func() bool { return r.Ping(ctx) == nil })
			t.Logf("stream created again %v after its deletion", took.Round(time.Millisecond))
			waitWithin(t, 10*time.Second, "the kept entries in the new stream", func() bool { return streamLen(t, js) >= tc.want })
			time.Sleep(200 * time.Millisecond) // time enough for a wrong extra publish to show
			if ids := streamMsgIDs(t, js, schemas.StreamName); len(ids) != tc.want || hasRepeats(ids) {
				t.Fatalf("the new stream holds %d notifications (repeats: %v), want %d once", len(ids), hasRepeats(ids), tc.want)
			}
			if got := streamConfig(t, js, schemas.StreamName); got.MaxAge != 48*time.Hour || got.Storage != jetstream.FileStorage {
				t.Errorf("stream created again with max age %v, storage %v; want the configured 48h, file", got.MaxAge, got.Storage)
			}
			if !strings.Contains(logs.String(), "creating it again") {
				t.Errorf("the re-creation was not logged: %q", logs.String())
			}
		})
	}
}

// heldElsewhere is a lease another instance holds for good.
type heldElsewhere struct{}

func (heldElsewhere) TryAcquire(context.Context) (bool, error) { return false, nil }
func (heldElsewhere) Check(context.Context) error              { return errors.New("not held") }
func (heldElsewhere) Release(context.Context)                  {}
