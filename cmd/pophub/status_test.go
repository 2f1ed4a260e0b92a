package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/schemas"
)

// TestStatus runs a scenario with a malformed record and a durable
// subscriber that acknowledged nothing, serves the admin routes with the
// Main's wiring (adminConfig) and checks `pophub status`, screen and JSON.
func TestStatus(t *testing.T) {
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{Durable: "si-harbin", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatalf("creating a durable consumer: %v", err)
	}
	srv := api.New(api.Config{Store: m.Store, Mount: api.AdminHandlers(m.adminConfig(js))})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	msgs := append(scenario(t), kafka.Message{Topic: schemas.Topic(schemas.Tax), Key: []byte(personID(t, 1)), Value: []byte("nope")})
	produceAll(t, m.Brokers(), msgs)
	waitCaughtUp(t, m, len(msgs))
	assertReconciled(t, m)

	run := func(args ...string) string {
		t.Helper()
		cmd := statusCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append([]string{"--hub", ts.URL}, args...))
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("status %v: %v", args, err)
		}
		return out.String()
	}
	var st api.Status
	if err := json.Unmarshal([]byte(run("--json")), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if !st.Store.OK || st.Store.Changes != 28 || st.Ingest == nil || st.Ingest.Counts.Consumed != int64(len(msgs)) ||
		st.DLQ == nil || st.DLQ.Records != 1 || st.Stream == nil || len(st.Stream.Consumers) != 1 {
		t.Fatalf("status %+v", st)
	}
	sub := st.Stream.Consumers[0]
	if sub.Name != "si-harbin" || sub.Pending != st.Stream.LastSeq || sub.AckFloor != 0 || st.Stream.LastSeq == 0 {
		t.Errorf("subscriber %+v, stream %+v", sub, st.Stream)
	}

	screen := run()
	for _, want := range []string{
		"store    ok\n         persons 3  changes 28  outbox pending 0",
		"ingest   group pophub  lag ",
		"since start: consumed 29 = applied 28 + duplicates 0 + rejected 1",
		"dlq      1 records: not_json 1\n         by source: tax 1",
		"stream   POP  messages ",
		"SUBSCRIBER  PENDING",
		"si-harbin ",
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("no %q in\n%s", want, screen)
		}
	}
	if strings.Contains(screen, string(personID(t, 1))) {
		t.Errorf("a citizen ID on the screen:\n%s", screen)
	}
	t.Logf("\n%s", screen)
}

// TestStatusUnauthorized: a hub with a token refuses a status request
// without it, and the command says so.
func TestStatusUnauthorized(t *testing.T) {
	m := startHub(t, "memdb")
	srv := api.New(api.Config{Store: m.Store, Mount: api.AdminHandlers(api.AdminConfig{Store: m.Store, Token: "t0ken"})})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	cmd := statusCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"--hub", ts.URL})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without a token: %v", err)
	}
	cmd = statusCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"--hub", ts.URL, "--token", "t0ken"})
	if err := cmd.Execute(); err != nil {
		t.Errorf("with the token: %v", err)
	}
}

// TestStatusUnderPolicy: under an access policy the brokers require a
// login, and the status page reads the DLQ as the hub, with its login
// and a Read grant on the DLQ topic. It once read without one, and every
// status under a policy said "dlq unreadable".
func TestStatusUnderPolicy(t *testing.T) {
	m := startSecureHub(t)
	code, body := call(t, "GET", "http://"+m.HTTPAddr()+"/v1/admin/status", "admin", "operations", nil)
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, body)
	}
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.DLQ == nil || st.DLQ.Error != "" {
		t.Errorf("dlq part %+v, want the DLQ counted: %s", st.DLQ, body)
	}
	if st.Stream == nil || st.Stream.Error != "" || !st.Store.OK {
		t.Errorf("stream %+v, store %+v: %s", st.Stream, st.Store, body)
	}
}

// TestStatusLagUnknown: while the lag cannot be measured, the status says
// so, with the reason and when it last was, instead of showing lag 0.
func TestStatusLagUnknown(t *testing.T) {
	at := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   api.IngestStatus
		want string
	}{
		{"measured", api.IngestStatus{Group: "pophub", Lag: []api.PartitionLag{{Topic: "pop.events.tax", Lag: 0}}},
			"ingest   group pophub  lag 0 (0 of 1 partitions behind)"},
		{"failing since", api.IngestStatus{Group: "pophub", Lag: []api.PartitionLag{}, LagMeasuredAt: &at, LagError: "dial tcp: connection refused"},
			"ingest   group pophub  lag UNKNOWN: dial tcp: connection refused (last measured 1m30s ago)"},
		{"never measured", api.IngestStatus{Group: "pophub", Lag: []api.PartitionLag{}, LagError: "no broker"},
			"lag UNKNOWN: no broker (last measured never)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			var out bytes.Buffer
			st := api.Status{Time: at.Add(90 * time.Second), Store: api.StoreStatus{OK: true}, Ingest: &in}
			if err := renderStatus(&out, "http://hub", st); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("no %q in\n%s", tt.want, out.String())
			}
		})
	}
}
