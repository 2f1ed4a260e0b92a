package notify

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub"
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
		for _, tc := range []struct {
			name string
			lose func(t *testing.T, js jetstream.JetStream, cfg StreamConfig)
			lost bool
		}{
			{"kept", func(*testing.T, jetstream.JetStream, StreamConfig) {}, false},
			{"purged", func(t *testing.T, js jetstream.JetStream, cfg StreamConfig) {
				s, err := js.Stream(context.Background(), cfg.Name)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Purge(context.Background()); err != nil {
					t.Fatalf("purging the stream: %v", err)
				}
			}, true},
			{"deleted", func(t *testing.T, js jetstream.JetStream, cfg StreamConfig) {
				if err := js.DeleteStream(context.Background(), cfg.Name); err != nil {
					t.Fatal(err)
				}
			}, true},
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
			}, true},
		} {
			t.Run(srv.name+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				js, cfg, prefix := srv.open(t)
				if err := EnsureStream(ctx, js, cfg); err != nil {
					t.Fatal(err)
				}
				cfg.setDefaults()
				dir := t.TempDir()
				o := newOutboxWithPrefix(300, prefix)
				start := func() (*Relay, *telemetry.Telemetry, *testenv.LogBuffer, func()) {
					store, err := memdb.Open(ctx, memdb.Config{Dir: dir})
					if err != nil {
						t.Fatal(err)
					}
					tel := newTelemetry(t)
					logs := &testenv.LogBuffer{}
					r := New(Config{BatchSize: 100, PollInterval: 20 * time.Millisecond, Stream: cfg, Meter: tel.Meter("test"),
						Logger: slog.New(slog.NewTextHandler(logs, nil))}, js, markedOutbox{o, store})
					r.streamCheckEvery = 50 * time.Millisecond
					rctx, cancel := context.WithCancel(ctx)
					done := make(chan error, 1)
					go func() { done <- r.Run(rctx) }()
					stop := func() {
						cancel()
						if err := <-done; err != nil && err != context.Canceled {
							t.Errorf("relay: %v", err)
						}
						if err := store.Close(); err != nil {
							t.Error(err)
						}
					}
					return r, tel, logs, stop
				}

				_, _, _, stop := start()
				waitDone(t, o, 300)
				time.Sleep(200 * time.Millisecond) // the idle relay has looked at the stream
				stop()

				tc.lose(t, js, cfg)
				_, tel, logs, stop := start()
				defer stop()
				if tc.lost {
					waitWithin(t, 10*time.Second, "the loss logged", func() bool { return strings.Contains(logs.String(), "notifications lost from the stream") })
				}
				time.Sleep(300 * time.Millisecond) // more looks, which must not count the loss again
				want := 0.0
				if tc.lost {
					want = 300
				}
				if got := metricSum(t, tel, "pophub_notifications_lost_total"); got != want {
					t.Fatalf("pophub_notifications_lost_total = %v, want %v; log:\n%s", got, want, logs)
				}
				if !tc.lost {
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
