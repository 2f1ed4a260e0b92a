package notify

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestRelayRestartRestoresLostTail: a server that lost the tail of what
// it acknowledged (a power loss before its sync) gets exactly that tail
// again when the hub restarts within the stream's duplicate window: the
// relay publishes every notification the store keeps for the republish
// window, and the stream drops those it still holds. Times are scaled
// down: a 2 s duplicate window (10 minutes by default) and a 1.5 s
// republish window (150 s under serve). Both stores.
func TestRelayRestartRestoresLostTail(t *testing.T) {
	ctx := context.Background()
	for _, store := range []string{"memdb", "postgres"} {
		for _, lost := range []int{1, 100} {
			t.Run(fmt.Sprintf("%s/%d lost", store, lost), func(t *testing.T) {
				dir, schema := t.TempDir(), ""
				if store == "postgres" {
					schema = testenv.Schema(t)
				}
				open := func() hub.Store {
					var s hub.Store
					var err error
					if store == "postgres" {
						s, err = postgres.Open(ctx, postgres.Config{URL: testenv.PostgresURL(), Schema: schema})
					} else {
						s, err = memdb.Open(ctx, memdb.Config{Dir: dir})
					}
					if err != nil {
						t.Fatal(err)
					}
					return s
				}
				s := open()
				res := storetest.ApplyAll(t, s, storetest.Population(t, 20, 31), 40)
				if res.Notifications <= lost {
					t.Fatalf("%d notifications: too few to lose %d", res.Notifications, lost)
				}
				srv := natsServer(t, 0)
				js := connect(t, srv.ClientURL())
				streamCfg := StreamConfig{DuplicateWindow: 2 * time.Second}
				if err := EnsureStream(ctx, js, streamCfg); err != nil {
					t.Fatal(err)
				}
				cfg := Config{BatchSize: 100, AckTimeout: 5 * time.Second, RepublishWindow: 1500 * time.Millisecond, Stream: streamCfg}
				stop := startRelay(t, New(cfg, js, s))
				waitFor(t, "every notification published", func() bool {
					n, err := s.CountPendingOutbox(ctx)
					return err == nil && n == 0 && streamLen(t, js) == res.Notifications
				})
				stop()
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				keepFirst(t, js, streamCfg, res.Notifications-lost)

				s = open()
				defer s.Close()
				stop = startRelay(t, New(cfg, js, s))
				defer stop()
				// The relay republishes before it publishes anything new:
				// once these are in the stream, the republish is over.
				more := storetest.ApplyAll(t, s, storetest.Population(t, 3, 77), 40)
				want := res.Notifications + more.Notifications
				waitFor(t, "the new notifications published", func() bool {
					n, err := s.CountPendingOutbox(ctx)
					return err == nil && n == 0 && streamLen(t, js) >= want
				})
				if got := streamLen(t, js); got != want {
					t.Fatalf("the stream holds %d notifications, want %d (%d stored a second time)", got, want, got-want)
				}
				if ids := streamMsgIDsAny(t, js); hasRepeats(ids) {
					t.Fatal("a notification is in the stream twice")
				}
			})
		}
	}
}

// keepFirst stands in for a server that lost the tail of what it
// acknowledged: the stream is created again holding only its first n
// messages, as they were.
func keepFirst(t *testing.T, js jetstream.JetStream, cfg StreamConfig, n int) {
	t.Helper()
	ctx := context.Background()
	stream, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var kept []*nats.Msg
	for seq := uint64(1); len(kept) < n; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("reading message %d: %v", seq, err)
		}
		kept = append(kept, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	if err := js.DeleteStream(ctx, schemas.StreamName); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	for _, m := range kept {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
}
