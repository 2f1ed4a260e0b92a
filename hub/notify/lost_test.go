package notify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/internal/testenv"
)

// notificationServers are the servers the lost-notification tests run on:
// the embedded one, with the hub's stream, and the machine's older 2.9,
// with a stream of the test's own.
var notificationServers = []struct {
	name string
	open func(t *testing.T) (jetstream.JetStream, StreamConfig, string)
}{
	{"embedded", func(t *testing.T) (jetstream.JetStream, StreamConfig, string) {
		return connect(t, natsServer(t, 0).ClientURL()), StreamConfig{}, "pop"
	}},
	{"machine", func(t *testing.T) (jetstream.JetStream, StreamConfig, string) {
		js := machineJetStream(t)
		suffix := time.Now().UnixNano()
		name, prefix := fmt.Sprintf("POPLOST_%d", suffix), fmt.Sprintf("poplost%d", suffix)
		t.Cleanup(func() { js.DeleteStream(context.Background(), name) })
		return js, StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, DuplicateWindow: time.Minute}, prefix
	}},
}

// TestRelayNoticesLostNotifications: the relay has published 300
// notifications when the stream loses them: purged (JetStream keeps their
// duplicate ids, so publishing them again would store nothing), deleted
// (the relay creates it again), or deleted and created again by someone
// else. The relay logs an error naming sequences 1 to 300 and counts them
// in pophub_notifications_lost_total, once, while it goes on publishing.
func TestRelayNoticesLostNotifications(t *testing.T) {
	for _, srv := range notificationServers {
		for _, tc := range streamLosses {
			t.Run(srv.name+"/"+tc.name, func(t *testing.T) {
				js, cfg, prefix := srv.open(t)
				if err := EnsureStream(context.Background(), js, cfg); err != nil {
					t.Fatal(err)
				}
				cfg.setDefaults()
				tel := newTelemetry(t)
				var logs testenv.LogBuffer
				o := newOutboxWithPrefix(300, prefix)
				r := New(Config{BatchSize: 100, PollInterval: 20 * time.Millisecond, Stream: cfg, Meter: tel.Meter("test"),
					Logger: slog.New(slog.NewTextHandler(&logs, nil))}, js, o)
				r.streamCheckEvery = 50 * time.Millisecond
				runRelay(t, r)
				waitDone(t, o, 300)
				time.Sleep(200 * time.Millisecond) // the idle relay has looked at the stream
				if got := metricSum(t, tel, "pophub_notifications_lost_total"); got != 0 {
					t.Fatalf("pophub_notifications_lost_total = %v before anything was lost (-1: absent), want 0", got)
				}

				tc.lose(t, js, cfg)
				o.add(200, prefix)
				r.Wake()
				waitDone(t, o, 500)
				waitWithin(t, 10*time.Second, "the loss logged", func() bool { return strings.Contains(logs.String(), "notifications lost from the stream") })
				time.Sleep(200 * time.Millisecond) // more looks, which must not count the loss again
				if got := metricSum(t, tel, "pophub_notifications_lost_total"); got != 300 {
					t.Errorf("pophub_notifications_lost_total = %v, want the 300 lost", got)
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

// TestRelayLimitsLoseNothing: messages the stream's own limits remove (its
// message limit, its age limit) are not reported lost.
func TestRelayLimitsLoseNothing(t *testing.T) {
	for _, srv := range notificationServers {
		for _, tc := range []struct {
			name    string
			limit   func(sc *jetstream.StreamConfig)
			empties bool // the limit removes every message in time
		}{
			{"message limit", func(sc *jetstream.StreamConfig) { sc.MaxMsgs = 100 }, false},
			{"age limit", func(sc *jetstream.StreamConfig) { sc.MaxAge, sc.Duplicates = time.Second, time.Second }, true},
		} {
			t.Run(srv.name+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				js, cfg, prefix := srv.open(t)
				if err := EnsureStream(ctx, js, cfg); err != nil {
					t.Fatal(err)
				}
				cfg.setDefaults()
				sc := streamConfig(t, js, cfg.Name)
				tc.limit(&sc)
				if _, err := js.UpdateStream(ctx, sc); err != nil {
					t.Fatal(err)
				}
				cfg.MaxAge, cfg.DuplicateWindow = sc.MaxAge, sc.Duplicates
				tel := newTelemetry(t)
				var logs testenv.LogBuffer
				o := newOutboxWithPrefix(0, prefix)
				r := New(Config{BatchSize: 100, PollInterval: 20 * time.Millisecond, Stream: cfg, Meter: tel.Meter("test"),
					Logger: slog.New(slog.NewTextHandler(&logs, nil))}, js, o)
				r.streamCheckEvery = 50 * time.Millisecond
				runRelay(t, r)
				for i := 1; i <= 4; i++ {
					o.add(100, prefix)
					r.Wake()
					waitDone(t, o, 100*i)
					time.Sleep(150 * time.Millisecond) // looks in between
				}
				if tc.empties {
					waitWithin(t, 10*time.Second, "the stream emptied by its limit", func() bool {
						s, err := js.Stream(ctx, cfg.Name)
						return err == nil && s.CachedInfo().State.Msgs == 0
					})
					time.Sleep(200 * time.Millisecond) // the relay looks at the empty stream
				}
				o.add(100, prefix)
				r.Wake()
				waitDone(t, o, 500)
				time.Sleep(200 * time.Millisecond)
				if got := metricSum(t, tel, "pophub_notifications_lost_total"); got != 0 {
					t.Errorf("pophub_notifications_lost_total = %v, want 0: the stream's limits removed them; log:\n%s", got, logs.String())
				}
			})
		}
	}
}

// streamLosses are the ways the notification stream loses what it held:
// purged (JetStream keeps the duplicate ids, so publishing again stores
// nothing), deleted (the relay creates it again), or deleted and created
// again by someone else.
var streamLosses = []struct {
	name string
	lose func(t *testing.T, js jetstream.JetStream, cfg StreamConfig)
}{
	{"purged", func(t *testing.T, js jetstream.JetStream, cfg StreamConfig) {
		s, err := js.Stream(context.Background(), cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Purge(context.Background()); err != nil {
			t.Fatalf("purging the stream: %v", err)
		}
	}},
	{"deleted", func(t *testing.T, js jetstream.JetStream, cfg StreamConfig) {
		if err := js.DeleteStream(context.Background(), cfg.Name); err != nil {
			t.Fatal(err)
		}
	}},
	{"replaced", func(t *testing.T, js jetstream.JetStream, cfg StreamConfig) {
		if err := js.DeleteStream(context.Background(), cfg.Name); err != nil {
			t.Fatal(err)
		}
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if err = EnsureStream(context.Background(), js, cfg); err == nil {
				return
			}
		}
		t.Fatalf("creating the deleted stream again: %v", err)
	}},
}
