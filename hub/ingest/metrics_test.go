package ingest

import (
	"context"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/ops/dashboards"
)

// TestIngestSeriesListedFromStart scrapes a fresh consumer's /metrics,
// before it read anything: every counter that alerts and dashboards take
// rate() or increase() of is there at zero (a series born at its first
// error has no earlier sample to increase from), and every pophub_ series
// it exports is one that ops/dashboards/metrics.txt lists for the hub,
// which claims to list them all.
func TestIngestSeriesListedFromStart(t *testing.T) {
	k := broker(t)
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "fresh", Meter: tel.Meter("test")}, &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, line := range []string{
		"pophub_ingest_reader_errors_total 0\n",
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %s", strings.TrimSpace(line))
		}
	}

	known, err := dashboards.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	series := regexp.MustCompile(`(?m)^(pophub_[a-zA-Z0-9_]+)`)
	seen := map[string]bool{}
	for _, m := range series.FindAllStringSubmatch(body, -1) {
		if name := m[1]; !seen[name] {
			seen[name] = true
			if !slices.Contains(known["hub"], name) {
				t.Errorf("the consumer exports %s; ops/dashboards/metrics.txt does not list it for the hub", name)
			}
		}
	}
	if len(seen) == 0 {
		t.Fatalf("no pophub_ series on /metrics:\n%s", body)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
