package notify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/internal/faults"
	"github.com/pophub/pophub/internal/testenv"
)

// instance is one hub instance's relay on a shared PostgreSQL schema, with
// its own store, NATS connection and metrics.
type instance struct {
	name  string
	store *postgres.Store
	relay *Relay
	tel   *telemetry.Telemetry
	logs  *testenv.LogBuffer // the relay's log
	stop  func()             // stops the relay and waits for it
}

// startInstance opens a store on schema and runs a relay on it with the
// store's lease. Its PostgreSQL sessions carry name as application_name,
// the lease's followed by the host and process (cut to 63 bytes).
func startInstance(t *testing.T, name, schema, natsURL string) *instance {
	t.Helper()
	ctx := context.Background()
	store, err := postgres.Open(ctx, postgres.Config{URL: withApplicationName(testenv.Postgres(t), name), Schema: schema})
	if err != nil {
		t.Fatalf("opening the store of %s: %v", name, err)
	}
	t.Cleanup(func() { store.Close() })
	tel := newTelemetry(t)
	logs := &testenv.LogBuffer{}
	r := New(Config{Lease: store.RelayLease(), Meter: tel.Meter("test"), Logger: slog.New(slog.NewTextHandler(logs, nil))},
		connect(t, natsURL), store)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	in := &instance{name: name, store: store, relay: r, tel: tel, logs: logs}
	var stopped bool
	in.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("relay of %s returned %v, want context.Canceled", name, err)
		}
	}
	t.Cleanup(in.stop)
	return in
}

// withApplicationName sets application_name in a connection string, URL
// or key/value.
func withApplicationName(conn, name string) string {
	switch {
	case !strings.Contains(conn, "://"):
		return conn + " application_name=" + name
	case strings.Contains(conn, "?"):
		return conn + "&application_name=" + name
	}
	return conn + "?application_name=" + name
}

func newTelemetry(t testing.TB) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	return tel
}

// metricSum is a series' value as tel's /metrics shows it, summed over
// its labels; -1 when the series is missing.
func metricSum(t testing.TB, tel *telemetry.Telemetry, name string) float64 {
	t.Helper()
	families, err := tel.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			sum := 0.0
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
			return sum
		}
	}
	return -1
}

// waitWithin polls cond until it holds, failing the test after within,
// and returns how long it took.
func waitWithin(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestRelayLeaseOnePublisherPerStore runs two hub instances' relays on one
// PostgreSQL schema: only one publishes (the published counters summed
// over both instances equal the stream's messages, as an operator adds
// them up), and when the leader stops or its lease's session ends, the
// other takes over within a few seconds and nothing is lost.
func TestRelayLeaseOnePublisherPerStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		// lose ends the leader's lease.
		lose func(t *testing.T, leader *instance)
		// lostLog is the old leader's log line for the loss: a lease
		// lost to a failure stops the notifications and is a warning.
		lostLog string
	}{
		{"leader stops", func(t *testing.T, leader *instance) { leader.stop() }, `level=INFO msg="released the outbox relay lease: stopping"`},
		{"leader's session ends", func(t *testing.T, leader *instance) {
			// The server drops the leader's lease connection, as when
			// the network between them fails or the leader's host dies.
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, testenv.PostgresURL())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var ended int
			err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
				WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE left($1, 30) || '%'`, leader.name).Scan(&ended)
			if err != nil || ended != 1 {
				t.Fatalf("ending the leader's lease session: %d ended, %v", ended, err)
			}
		}, `level=WARN msg="lost the outbox relay lease: stopped publishing, standing by"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			schema := testenv.Schema(t)
			nats := testenv.NATS(t, embedded.NATSConfig{})
			js := connect(t, nats.ClientURL())
			if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
				t.Fatal(err)
			}
			// application_name tells the instances' sessions apart, also
			// from other test processes'.
			a := startInstance(t, "relay-a-"+schema, schema, nats.ClientURL())
			b := startInstance(t, "relay-b-"+schema, schema, nats.ClientURL())
			published := func(in *instance) float64 {
				return metricSum(t, in.tel, "pophub_notifications_published_total")
			}
			var leader, follower *instance
			// oneLeads finds the one relay that leads, if only one does.
			oneLeads := func() bool {
				switch {
				case a.relay.Leading() && !b.relay.Leading():
					leader, follower = a, b
				case b.relay.Leading() && !a.relay.Leading():
					leader, follower = b, a
				default:
					return false
				}
				return true
			}
			waitWithin(t, 5*time.Second, "one relay leads", oneLeads)
			if metricSum(t, leader.tel, "pophub_relay_leader") != 1 || metricSum(t, follower.tel, "pophub_relay_leader") != 0 {
				t.Errorf("pophub_relay_leader: leader %v, follower %v; want 1 and 0",
					metricSum(t, leader.tel, "pophub_relay_leader"), metricSum(t, follower.tel, "pophub_relay_leader"))
			}

			// Both instances apply events; the leader publishes them all.
			first := storetest.ApplyAll(t, follower.store, storetest.Population(t, 10, 1), 40).Notifications +
				storetest.ApplyAll(t, leader.store, storetest.Population(t, 10, 2), 40).Notifications
			waitWithin(t, 20*time.Second, fmt.Sprintf("%d notifications in the stream", first), func() bool {
				return streamLen(t, js) == first
			})
			waitWithin(t, 5*time.Second, "the leader's count", func() bool { return published(leader) == float64(first) })
			if got := published(follower); got != 0 {
				t.Errorf("the follower published %v notifications, want 0", got)
			}
			if got := metricSum(t, follower.tel, "pophub_notifications_duplicate_total") + metricSum(t, leader.tel, "pophub_notifications_duplicate_total"); got != 0 {
				t.Errorf("%v duplicate acknowledgements with one relay publishing, want 0", got)
			}

			old := leader
			tc.lose(t, old)
			// The leader stops publishing, and the follower takes the lease
			// at its next try (after a lost session, whichever of the two
			// tries first).
			took := waitWithin(t, 5*time.Second, "the leader stands down", func() bool { return !old.relay.Leading() })
			waitWithin(t, 5*time.Second, "the old leader logs "+tc.lostLog, func() bool { return strings.Contains(old.logs.String(), tc.lostLog) })
			took += waitWithin(t, 5*time.Second, "a relay leads again", oneLeads)
			t.Logf("%s leads %v after the leader lost its lease", leader.name, took.Round(time.Millisecond))
			if got := metricSum(t, leader.tel, "pophub_relay_leader"); got != 1 {
				t.Errorf("pophub_relay_leader of the new leader is %v, want 1", got)
			}

			before := published(follower)
			second := storetest.ApplyAll(t, old.store, storetest.Population(t, 10, 3), 40).Notifications
			total := first + second
			waitWithin(t, 20*time.Second, fmt.Sprintf("%d notifications in the stream", total), func() bool {
				return streamLen(t, js) == total
			})
			waitWithin(t, 5*time.Second, "the counts add up", func() bool {
				return published(a)+published(b) == float64(total)
			})
			if got := published(follower); got != before {
				t.Errorf("the relay standing by published %v notifications since, want none", got-before)
			}
			if n, err := old.store.CountPendingOutbox(context.Background()); err != nil || n != 0 {
				t.Errorf("%d notifications left pending (%v), want 0", n, err)
			}
		})
	}
}

// TestLeaderCutOffFromNATSLeavesTheLease: two hub instances share one
// PostgreSQL schema and one NATS server. The instance leading the relay
// loses its network path to NATS (a partition, a broken NATS route on its
// host), while its PostgreSQL session is fine. It leaves the lease, and
// the other instance, connected, publishes the notifications.
func TestLeaderCutOffFromNATSLeavesTheLease(t *testing.T) {
	schema := testenv.Schema(t)
	srv := testenv.NATS(t, embedded.NATSConfig{})
	js := connect(t, srv.ClientURL())
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	proxy, err := faults.NewProxy(strings.TrimPrefix(srv.ClientURL(), "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	a := startInstance(t, "relay-a-"+schema, schema, "nats://"+proxy.Addr())
	waitWithin(t, 5*time.Second, "instance a leads", a.relay.Leading)
	b := startInstance(t, "relay-b-"+schema, schema, srv.ClientURL())

	// a is cut off from NATS: its connection drops and reconnects are refused.
	proxy.SetDown(true)
	proxy.Reset()
	time.Sleep(time.Second)

	n := storetest.ApplyAll(t, b.store, storetest.Population(t, 10, 1), 40).Notifications
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for streamLen(t, js) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s, %d of %d notifications in the stream; a leading %v (readiness %v), b leading %v (readiness %v): the leader cut off from NATS kept the lease",
				streamLen(t, js), n, a.relay.Leading(), a.relay.Ping(context.Background()), b.relay.Leading(), b.relay.Ping(context.Background()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d notifications published %v after the leader lost NATS", n, time.Since(start).Round(time.Millisecond))
}

// TestOutboxAgeWhileNATSDownWithLease: the NATS server of two hub
// instances on one PostgreSQL schema goes away while notifications are
// committed. The leader leaves the lease after 5 s and neither takes it
// while disconnected, yet both report the age of the oldest waiting
// notification, which PophubOutboxDelayed/Stalled watch, and that they are
// not connected to NATS.
func TestOutboxAgeWhileNATSDownWithLease(t *testing.T) {
	schema := testenv.Schema(t)
	srv := natsServer(t, 0)
	js := connect(t, srv.ClientURL())
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	a := startInstance(t, "age-a-"+schema, schema, srv.ClientURL())
	waitWithin(t, 5*time.Second, "instance a leads", a.relay.Leading)
	b := startInstance(t, "age-b-"+schema, schema, srv.ClientURL())
	for _, in := range []*instance{a, b} {
		if got := metricSum(t, in.tel, "pophub_nats_connected"); got != 1 {
			t.Errorf("%s: pophub_nats_connected = %v while connected (-1: absent), want 1", in.name, got)
		}
	}

	srv.Close()
	n := storetest.ApplyAll(t, a.store, storetest.Population(t, 10, 1), 40).Notifications
	applied := time.Now()
	waitWithin(t, 15*time.Second, "instance a leaves the lease", func() bool { return !a.relay.Leading() })
	time.Sleep(time.Second) // a standing-by round of each
	for _, in := range []*instance{a, b} {
		waited := time.Since(applied).Seconds()
		age := metricSum(t, in.tel, "pophub_outbox_age_seconds")
		t.Logf("%s: %d notifications waiting %.1f s: age %v, backlog %v, relay_leader %v, nats_connected %v", in.name, n, waited,
			age, metricSum(t, in.tel, "pophub_outbox_backlog"), metricSum(t, in.tel, "pophub_relay_leader"), metricSum(t, in.tel, "pophub_nats_connected"))
		if age < waited {
			t.Errorf("%s: NATS down, %d notifications waiting %.1f s: pophub_outbox_age_seconds = %v (-1: absent), want at least %.1f",
				in.name, n, waited, age, waited)
		}
		if got := metricSum(t, in.tel, "pophub_nats_connected"); got != 0 {
			t.Errorf("%s: pophub_nats_connected = %v with NATS down, want 0", in.name, got)
		}
		if in.relay.Leading() {
			t.Errorf("%s leads the relay while not connected to NATS", in.name)
		}
	}
}
