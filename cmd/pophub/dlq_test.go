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
