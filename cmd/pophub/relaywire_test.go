package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas"
)

// TestReadinessFollowsStream: /readyz reports NATS not ready while the
// notification stream is missing, although the connection is up; the
// relay creates the stream again when it next publishes, notifications
// flow into it, and the hub is ready again.
func TestReadinessFollowsStream(t *testing.T) {
	m := startHub(t, "memdb")
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if code, checks := readiness(t, m); code != http.StatusOK || checks["nats"] != "ok" {
		t.Fatalf("/readyz before: HTTP %d, %v; want ready", code, checks)
	}

	ctx := context.Background()
	if err := js.DeleteStream(ctx, schemas.StreamName); err != nil {
		t.Fatal(err)
	}
	if code, checks := readiness(t, m); code == http.StatusOK || checks["nats"] == "ok" {
		t.Fatalf("/readyz with the stream missing: HTTP %d, %v; want NATS not ready", code, checks)
	}

	msgs := scenario(t)
	produceAll(t, m.Brokers(), msgs)
	waitCaughtUp(t, m, len(msgs))
	s, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		t.Fatalf("the stream was not created again: %v", err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs == 0 {
		t.Fatalf("the stream created again holds no notification (%v)", err)
	}
	waitFor(t, 10*time.Second, "the hub ready again", func() bool {
		code, checks := readiness(t, m)
		return code == http.StatusOK && checks["nats"] == "ok"
	})
}

// readiness asks /readyz.
func readiness(t *testing.T, m *Main) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(m.HTTPURL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	return resp.StatusCode, ready.Checks
}

// TestRepublishWindowValidate: the republish window must end before the
// stream's duplicate window, or notifications published again at a start
// or after a reconnect would be stored twice.
func TestRepublishWindowValidate(t *testing.T) {
	tests := []struct {
		window time.Duration
		ok     bool
	}{
		{0, true},
		{150 * time.Second, true},
		{10 * time.Minute, false},
		{-time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.window.String(), func(t *testing.T) {
			cfg := Config{KafkaBrokers: []string{"kafka:9092"}, NATSURL: "nats://nats:4222", DataDir: "/d", NATSRepublishWindow: tt.window}
			cfg.setDefaults()
			err := cfg.Validate()
			if tt.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "--nats-republish-window")) {
				t.Fatalf("Validate: %v; want ok = %v", err, tt.ok)
			}
		})
	}
}
