package main

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
)

// TestBench runs `pophub bench` on a small population and checks what its
// figures rest on: every run measures a rate, stores its notifications in
// a stream of its own (on a stream shared with an earlier run, JetStream
// would drop the later run's notifications as duplicates of the earlier
// one's, sparing it the work; the bench refuses to report such a run),
// and the latency run hears its notifications. The two stores' runs need
// not store the same number of notifications: which sections an event
// changes depends on the order in which the topics' events meet.
func TestBench(t *testing.T) {
	testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	// A run that goes as it should logs no error: before, the latency
	// run continued the PostgreSQL run's store on a new, empty NATS
	// server, and the relay reported that run's notifications lost.
	var errs testenv.LogBuffer
	res, err := runBench(ctx, &out, slog.New(slog.NewTextHandler(&errs, &slog.HandlerOptions{Level: slog.LevelError})), benchOptions{
		Persons: 3000, Months: 12, Postgres: testenv.PostgresURL(),
		Rate: 300, LatencyFor: time.Second, NATSSync: time.Second,
	})
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	t.Log(out.String())

	if res.Events == 0 {
		t.Fatal("no events generated")
	}
	for name, rate := range map[string]float64{"baseline": res.Baseline, "postgres": res.Postgres.Rate, "memdb": res.Memdb.Rate} {
		if math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0 {
			t.Errorf("%s rate %v", name, rate)
		}
	}
	if res.Postgres.CPU <= 0 || res.Memdb.CPU <= 0 {
		t.Errorf("hub CPU an event: PostgreSQL run %s, memdb run %s", res.Postgres.CPU, res.Memdb.CPU)
	}
	if res.Postgres.Stored == 0 || res.Memdb.Stored == 0 {
		t.Errorf("notifications stored: PostgreSQL run %d, memdb run %d", res.Postgres.Stored, res.Memdb.Stored)
	}
	if res.Notified == 0 || res.P50 > res.P99 || res.P99 > res.PMax {
		t.Errorf("latency run: %d notifications, p50 %s, p99 %s, max %s", res.Notified, res.P50, res.P99, res.PMax)
	}
	if errs.String() != "" {
		t.Errorf("the bench logged errors:\n%s", errs.String())
	}
	for _, want := range []string{"raw PostgreSQL baseline", "hub end to end, PostgreSQL", "hub end to end, memdb", "µs of hub CPU an event", "notifications stored", "notification latency", "targets:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
}
