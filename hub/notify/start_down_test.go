package notify

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestRelayStartsBeforeServer runs a relay on a connection made while the
// server was down (nats.RetryOnFailedConnect, as `pophub serve` connects):
// it says it is not connected, in Ping and in its log, and once the server
// is there it creates the missing stream and publishes every entry once.
func TestRelayStartsBeforeServer(t *testing.T) {
	first := testenv.NATS(t, embedded.NATSConfig{})
	natsURL := first.ClientURL()
	u, err := url.Parse(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	first.Close() // its port stays free for the server started later

	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatalf("connecting with retry to a server that is down: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	o := newOutbox(500)
	r := New(Config{BatchSize: 100, AckTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))}, js, o)
	runRelay(t, r)

	if err := r.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "not connected to NATS") {
		t.Errorf("Ping with the server down: %v, want not connected to NATS", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), `msg="publishing notifications" err="not connected to NATS`) {
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not say it is not connected to NATS; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := o.done(); d != 0 {
		t.Fatalf("%d entries marked published with the server down", d)
	}

	testenv.NATS(t, embedded.NATSConfig{Addr: u.Host})
	waitDone(t, o, 500)
	if ids := streamMsgIDs(t, js, schemas.StreamName); len(ids) != 500 || hasRepeats(ids) {
		t.Fatalf("stream holds %d messages (repeats: %v), want 500 once", len(ids), hasRepeats(ids))
	}
	if err := r.Ping(context.Background()); err != nil {
		t.Errorf("Ping with the server up: %v", err)
	}
}
