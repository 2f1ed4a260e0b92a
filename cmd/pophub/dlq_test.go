package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/ops/dashboards"
	"github.com/pophub/pophub/schemas"
)

// runDLQ runs `pophub dlq args...` against brokers and returns its output.
func runDLQ(t *testing.T, brokers []string, args ...string) (string, error) {
	t.Helper()
	return execute(t, dlqCommand(), append(args, "--kafka", strings.Join(brokers, ","))...)
}

// TestDLQCommand rejects a record through the real hub, then lists, shows
// and replays it with the command.
func TestDLQCommand(t *testing.T) {
	m := startHub(t, "memdb")
	id := string(personID(t, 7))
	bad := kafka.Message{Topic: schemas.Topic(schemas.Marriage), Key: []byte(id), Value: []byte(`{"subject":"` + id + `"`),
		Headers: []kafka.Header{{Key: "origin", Value: []byte("dlq-test")}}}
	produceAll(t, m.Brokers(), []kafka.Message{bad})
	waitFor(t, time.Minute, "the reject", func() bool { return m.Consumer.Counts().RejectedTotal() == 1 })

	out, err := runDLQ(t, m.Brokers(), "list")
	if err != nil {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	if !strings.Contains(out, "1 records") || !strings.Contains(out, "marriage  not_json  1") || strings.Contains(out, id[:17]) {
		t.Errorf("dlq list printed:\n%s\nwant one marriage not_json record and no citizen ID", out)
	}
	if out, err := runDLQ(t, m.Brokers(), "list", "--reason", "bad_vibes"); err == nil || !strings.Contains(err.Error(), "unknown reason") {
		t.Errorf("dlq list --reason bad_vibes: %v\n%s", err, out)
	}

	c, err := dlq.New(dlq.Config{Brokers: m.Brokers()})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := c.Records(context.Background(), dlq.Filter{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %v, %v", recs, err)
	}
	rid := recs[0].ID.String()
	out, err = runDLQ(t, m.Brokers(), "show", rid)
	if err != nil {
		t.Fatalf("dlq show: %v\n%s", err, out)
	}
	if strings.Contains(out, id[:17]) || !strings.Contains(out, id[:4]+"**********"+id[14:]) || !strings.Contains(out, "origin: dlq-test") {
		t.Errorf("dlq show printed:\n%s\nwant the ID masked and the original header", out)
	}
	if out, _ = runDLQ(t, m.Brokers(), "show", rid, "--reveal"); !strings.Contains(out, id) {
		t.Errorf("dlq show --reveal printed:\n%s\nwant the ID in full", out)
	}
	if out, err = runDLQ(t, m.Brokers(), "show", "0:99"); err == nil || !strings.Contains(err.Error(), "no such DLQ record") {
		t.Errorf("dlq show 0:99: %v\n%s", err, out)
	}

	if out, err = runDLQ(t, m.Brokers(), "replay"); err == nil {
		t.Errorf("dlq replay without a choice succeeded:\n%s", out)
	}
	out, err = runDLQ(t, m.Brokers(), "replay", "--offset", rid)
	if err != nil || !strings.Contains(out, "replayed "+rid+" -> pop.events.marriage") {
		t.Errorf("dlq replay: %v\n%s", err, out)
	}
	// The replayed record is still bad: the hub rejects it again.
	waitFor(t, time.Minute, "the replay rejected again", func() bool { return m.Consumer.Counts().RejectedTotal() == 2 })
	out, err = runDLQ(t, m.Brokers(), "replay", "--offset", rid)
	if err != nil || !strings.Contains(out, "skipped "+rid+": replayed before") {
		t.Errorf("second dlq replay: %v\n%s", err, out)
	}
	out, _ = runDLQ(t, m.Brokers(), "list")
	if !strings.Contains(out, "(replay of "+rid+")") {
		t.Errorf("dlq list does not show the replay:\n%s", out)
	}
}

func scrapeNames(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

// pophubSeries returns the names of the pophub_ series of a Prometheus
// text exposition, sorted, each once.
func pophubSeries(body string) []string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "pophub_") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			out = append(out, line[:i])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func hasSeries(body, name string) bool {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			return true
		}
	}
	return false
}

// TestDashboardMetricsExported checks ops/dashboards/metrics.txt, the
// series the Grafana dashboards may use, against real scrapes: the hub's
// /metrics after it applied events, rejected one and published
// notifications, and an SDK subscriber's metrics after it handled them.
func TestDashboardMetricsExported(t *testing.T) {
	want, err := dashboards.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	m := startHub(t, "memdb")
	msgs := scenario(t)
	msgs = append(msgs, kafka.Message{Topic: schemas.Topic(schemas.Tax), Key: []byte("x"), Value: []byte("not json")})
	produceAll(t, m.Brokers(), msgs)
	waitCaughtUp(t, m, len(msgs))

	get := func(m *Main) string {
		resp, err := http.Get("http://" + m.HTTPAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	get(m) // so that pophub_http_requests_total has a sample
	hubBody := get(m)
	for _, name := range want["hub"] {
		if !hasSeries(hubBody, name) {
			t.Errorf("the hub's /metrics has no series %s (ops/dashboards/metrics.txt)", name)
		}
	}
	// And the other way round: every pophub_ series the hub exports is
	// listed, so that a new instrument is either on a dashboard's list or
	// left off knowingly. The list once lagged the hub by several series.
	for _, name := range pophubSeries(hubBody) {
		if !slices.Contains(want["hub"], name) {
			t.Errorf("the hub's /metrics has series %s, which ops/dashboards/metrics.txt does not list under \"hub\"", name)
		}
	}

	// Series of the PostgreSQL store, on a hub that has one.
	pg := startHub(t, "postgres")
	pgMsgs := scenario(t)
	produceAll(t, pg.Brokers(), pgMsgs)
	waitCaughtUp(t, pg, len(pgMsgs))
	pgBody := get(pg)
	for _, name := range want["hub-postgres"] {
		if !hasSeries(pgBody, name) {
			t.Errorf("the /metrics of a hub on PostgreSQL has no series %s (ops/dashboards/metrics.txt)", name)
		}
	}
	for _, name := range pophubSeries(pgBody) {
		if !slices.Contains(want["hub"], name) && !slices.Contains(want["hub-postgres"], name) {
			t.Errorf("the /metrics of a hub on PostgreSQL has series %s, which ops/dashboards/metrics.txt does not list under \"hub\" or \"hub-postgres\"", name)
		}
	}

	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "dashboard-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	s, err := sdk.New(sdk.Config{Name: "dashboards", URL: m.NATSURL(), MeterProvider: tel.MeterProvider,
		Filters: []sdk.Filter{{Kind: sdk.Changes}},
		Start:   sdk.Start{Policy: sdk.StartAll},
		Handler: func(context.Context, *sdk.Delivery) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The backlog gauges first appear after the subscriber's first backlog
	// refresh, which may come after its first notification.
	var sdkBody string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		sdkBody = scrapeNames(t, tel.MetricsHandler())
		if !slices.ContainsFunc(want["sdk"], func(name string) bool { return !hasSeries(sdkBody, name) }) || time.Now().After(deadline) {
			break
		}
	}
	for _, name := range want["sdk"] {
		if !hasSeries(sdkBody, name) {
			t.Errorf("the SDK's metrics have no series %s (ops/dashboards/metrics.txt)", name)
		}
	}
}

// TestDLQReplayBySource: --source picks one department's rejects, alone
// or with --reason, so that after a fix for that department the others'
// rejects, still bad, are not sent again with them.
func TestDLQReplayBySource(t *testing.T) {
	m := startHub(t, "memdb")
	id := string(personID(t, 11))
	// "settlement" is a reason of registration, not of migration; a
	// spouse_id naming the subject is refused: both invalid_data.
	mig := `{"specversion":"1.0","id":"ps-new-reason-1","source":"public_security","type":"hukou.migrated","subject":"` + id +
		`","time":"2026-01-01T00:00:00+08:00","data":{"from_address_code":"230102001001","to_address_code":"230602013004","reason":"settlement"}}`
	mar := `{"specversion":"1.0","id":"mar-self-1","source":"marriage","type":"marriage.registered","subject":"` + id +
		`","time":"2026-01-01T00:00:00+08:00","data":{"spouse_id":"` + id + `"}}`
	produceAll(t, m.Brokers(), []kafka.Message{
		{Topic: schemas.Topic(schemas.PublicSecurity), Key: []byte(id), Value: []byte(mig)},
		{Topic: schemas.Topic(schemas.Marriage), Key: []byte(id), Value: []byte(mar)},
	})
	waitFor(t, time.Minute, "both rejects", func() bool { return m.Consumer.Counts().RejectedTotal() == 2 })

	c, err := dlq.New(dlq.Config{Brokers: m.Brokers()})
	if err != nil {
		t.Fatal(err)
	}
	rejectOf := func(src schemas.Source) string {
		t.Helper()
		recs, err := c.Records(context.Background(), dlq.Filter{Source: src, Reason: schemas.ReasonInvalidData})
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s's invalid_data rejects: %v, %v; want one", src, recs, err)
		}
		return recs[0].ID.String()
	}
	psID, marID := rejectOf(schemas.PublicSecurity), rejectOf(schemas.Marriage)

	out, err := runDLQ(t, m.Brokers(), "list", "--source", "public_security", "--reason", "invalid_data")
	if err != nil || !strings.Contains(out, "1 records") {
		t.Fatalf("dlq list --source public_security --reason invalid_data: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		name    string
		args    []string
		want    []string // in the output, or in the error when wantErr
		notWant string
		wantErr bool
	}{
		{"source and reason", []string{"--source", "public_security", "--reason", "invalid_data"},
			[]string{"would replay " + psID + " -> pop.events.public_security", "1 chosen, 1 would replay"}, "pop.events.marriage", false},
		{"source alone", []string{"--source", "marriage"},
			[]string{"would replay " + marID + " -> pop.events.marriage", "1 chosen, 1 would replay"}, "pop.events.public_security", false},
		{"source without that reason", []string{"--source", "public_security", "--reason", "not_json"},
			[]string{"0 chosen"}, "would replay " + psID, false},
		{"unknown source", []string{"--source", "civil_affairs"},
			[]string{`unknown source "civil_affairs" (want one of `}, "--offset", true},
		{"source and all", []string{"--source", "marriage", "--all"}, []string{"choose the records"}, "", true},
		{"source and offset", []string{"--source", "marriage", "--offset", marID}, []string{"choose the records"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runDLQ(t, m.Brokers(), append([]string{"replay", "--dry-run"}, tc.args...)...)
			got := out
			if tc.wantErr {
				if err == nil {
					t.Fatalf("dlq replay %s succeeded:\n%s", strings.Join(tc.args, " "), out)
				}
				got = err.Error()
			} else if err != nil {
				t.Fatalf("dlq replay %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("dlq replay %s said:\n%s\nwant %q", strings.Join(tc.args, " "), got, w)
				}
			}
			if tc.notWant != "" && strings.Contains(got, tc.notWant) {
				t.Errorf("dlq replay %s said:\n%s\nwant no %q", strings.Join(tc.args, " "), got, tc.notWant)
			}
		})
	}

	// A real replay sends public_security's reject alone and records it in
	// the ledger; marriage's stays to be replayed.
	out, err = runDLQ(t, m.Brokers(), "replay", "--source", "public_security", "--reason", "invalid_data")
	if err != nil || !strings.Contains(out, "replayed "+psID+" -> pop.events.public_security") || !strings.Contains(out, "1 chosen, 1 replayed, 0 skipped") {
		t.Fatalf("dlq replay --source public_security --reason invalid_data: %v\n%s\nwant %s replayed alone", err, out, psID)
	}
	// Still invalid: the hub rejects the replay again.
	waitFor(t, time.Minute, "the replay rejected again", func() bool { return m.Consumer.Counts().RejectedTotal() == 3 })
	out, err = runDLQ(t, m.Brokers(), "replay", "--source", "public_security", "--dry-run")
	if err != nil || !strings.Contains(out, "skipped "+psID+": replayed before") {
		t.Errorf("dlq replay --source public_security after the replay: %v\n%s\nwant %s skipped", err, out, psID)
	}
	out, err = runDLQ(t, m.Brokers(), "replay", "--source", "marriage", "--dry-run")
	if err != nil || !strings.Contains(out, "would replay "+marID+" -> pop.events.marriage") || !strings.Contains(out, "0 skipped") {
		t.Errorf("dlq replay --source marriage after public_security's replay: %v\n%s\nwant %s still to replay", err, out, marID)
	}
	out, _ = runDLQ(t, m.Brokers(), "list", "--source", "marriage")
	if !strings.Contains(out, "1 records") {
		t.Errorf("dlq list --source marriage after public_security's replay:\n%s\nwant marriage's reject alone", out)
	}
}
