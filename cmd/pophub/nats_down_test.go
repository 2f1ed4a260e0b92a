package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestServeStartsWithoutNATS starts the hub as `pophub serve` does
// (external broker and NATS, memdb under a data directory) while its NATS
// server is down, as after a restart of the hub during a NATS outage: the
// hub must start, ingest from Kafka into the store and the outbox, report
// NATS on /readyz, and once NATS is there create the stream and publish
// what waited. With eligibility announcements on, the watcher (which
// reads the stream) waits for NATS too instead of stopping the hub.
func TestServeStartsWithoutNATS(t *testing.T) {
	for _, tc := range []struct {
		name        string
		eligibility []string
	}{{"plain", nil}, {"eligibility-notify", []string{"all"}}} {
		t.Run(tc.name, func(t *testing.T) { testServeWithoutNATS(t, tc.eligibility) })
	}
}

func testServeWithoutNATS(t *testing.T, eligibility []string) {
	// A NATS server started and stopped again reserves its port for the
	// one started later on the same address.
	first := testenv.NATS(t, embedded.NATSConfig{})
	natsURL := first.ClientURL()
	u, err := url.Parse(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	brokers := []string{testenv.Kafka(t, 4)}
	logs := &testenv.LogBuffer{}
	var w io.Writer = logs
	if testing.Verbose() {
		w = io.MultiWriter(logs, testWriter{t})
	}
	m := &Main{
		Config: Config{KafkaBrokers: brokers, NATSURL: natsURL, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0",
			Partitions: 4, GroupID: fmt.Sprintf("nats-down-%d", time.Now().UnixNano()), EligibilityNotify: eligibility},
		Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("starting the hub while NATS is down: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Wait() }()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Logf("closing hub: %v", err)
		}
	})
	if !strings.Contains(logs.String(), "starting without NATS") {
		t.Errorf("no warning that the hub starts without NATS; log:\n%s", logs.String())
	}

	// Ingest goes on: every event is applied and readable over HTTP.
	msgs := scenario(t)
	produceAll(t, brokers, msgs)
	want := expected(t, msgs)
	base := m.HTTPURL()
	waitFor(t, 2*time.Minute, "every event applied while NATS is down", func() bool {
		c := m.Consumer.Counts()
		if c.Applied+c.Duplicates+c.RejectedTotal() < int64(len(msgs)) {
			return false
		}
		for id := range want {
			var hist []hub.Change
			if code := getInto(t, base+"/v1/persons/"+string(id)+"/history", &hist); code != http.StatusOK || len(hist) == 0 {
				return false
			}
		}
		return true
	})
	for id, rec := range want {
		got, code := getRecord(t, m, id)
		if code != http.StatusOK || !reflect.DeepEqual(normal(got), normal(rec)) {
			t.Errorf("person %v: status %d, record\n%+v\nwant\n%+v", id, code, normal(got), normal(rec))
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the hub stopped while NATS was down: %v", err)
	default:
	}

	// Everything waits in the outbox, and /readyz names NATS.
	st, err := m.Store.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	notes := st.OutboxPending
	if notes == 0 {
		t.Fatal("no notification waits in the outbox while NATS is down")
	}
	var health struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	code := readyz(t, base, &health)
	if code != http.StatusServiceUnavailable || !strings.Contains(health.Checks["nats"], "not connected to NATS") {
		t.Errorf("/readyz while NATS is down: %d %+v, want 503 with nats: not connected to NATS", code, health)
	}
	if health.Checks["store"] != "ok" || health.Checks["kafka"] != "ok" {
		t.Errorf("/readyz while NATS is down: %+v, want store and kafka ok", health.Checks)
	}

	// NATS comes up, empty: the hub creates the stream and publishes.
	second := testenv.NATS(t, embedded.NATSConfig{Addr: u.Host, StoreDir: t.TempDir()})
	stored, js := streamMessages(t, natsURL)
	waitFor(t, 2*time.Minute, fmt.Sprintf("the stream to hold the %d notifications of the outbox", notes), func() bool {
		st, err := m.Store.Stats(ctx)
		n := stored()
		// The watcher may announce eligibility on the stream as well.
		return err == nil && st.OutboxPending == 0 && (n == uint64(notes) || eligibility != nil && n > uint64(notes))
	})
	if eligibility != nil {
		waitFor(t, time.Minute, "the eligibility watcher's consumer", func() bool {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := js.Consumer(cctx, schemas.StreamName, "pophub-eligibility")
			return err == nil
		})
	}
	waitFor(t, time.Minute, "/readyz to answer 200 once NATS is back", func() bool {
		return readyz(t, base, nil) == http.StatusOK
	})
	if !strings.Contains(logs.String(), `level=INFO msg="connected to NATS`) {
		t.Errorf("the connection made once NATS was up is not logged at INFO; log:\n%s", logs.String())
	}

	// The running hub losing NATS says so in its log, not only on /readyz.
	second.Close()
	waitFor(t, 30*time.Second, "the lost connection logged", func() bool {
		return strings.Contains(logs.String(), `level=WARN msg="lost the connection to NATS`)
	})
	select {
	case err := <-done:
		t.Fatalf("the hub stopped: %v", err)
	default:
	}
}

// readyz reads /readyz into v (when not nil) and returns its status.
func readyz(t testing.TB, base string, v any) int {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("decoding /readyz: %v", err)
		}
	}
	return resp.StatusCode
}

// streamMessages returns a function reading how many messages stream POP
// holds at url (0 while it does not exist), and its JetStream context.
func streamMessages(t testing.TB, url string) (func() uint64, jetstream.JetStream) {
	t.Helper()
	_, js := sdktest.Connect(t, url)
	return func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, schemas.StreamName)
		if err != nil {
			return 0
		}
		info, err := s.Info(ctx)
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}, js
}

// testWriter writes log lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
