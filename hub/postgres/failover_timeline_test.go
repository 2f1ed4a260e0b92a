package postgres

import (
	"context"
	"log/slog"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pophub/pophub/hub/storetest"
)

// TestFailoverIsNoticed: a hub whose database's asynchronous standby is
// promoted at the primary's address, and lacks its last transactions,
// says so at once: an error in its log naming what to run, the failover
// on the status page with the timelines, pophub.store.failovers counting
// it, also while the database is away again. It once resumed on the
// promoted server as if nothing had happened, and only pophub reconcile
// showed the events lost. A restart of the same server is no failover.
func TestFailoverIsNoticed(t *testing.T) {
	ctx := context.Background()
	rig := newFailoverRig(t)
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	rec := &logRecorder{}
	cfg := rig.cfg
	cfg.Logger, cfg.Meter, cfg.timelineEvery = slog.New(rec), provider.Meter("test"), 20*time.Millisecond
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	in := chunks(storetest.Population(t, 20, 8), 10)
	applyRetrying(t, s, in[0])

	if err := rig.pg.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if err := rig.pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	applyRetrying(t, s, in[1])
	time.Sleep(200 * time.Millisecond) // ten looks at the timeline
	if _, _, _, ok := s.LastFailover(); ok {
		t.Fatal("a restart of the same server was taken for a failover")
	}

	rig.lag(t)
	applyRetrying(t, s, in[2]) // lost
	rig.failover(t)
	applyRetrying(t, s, in[3])
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, _, ok := s.LastFailover(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failover noticed 30 s after the standby was promoted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	from, to, _, _ := s.LastFailover()
	if from != 1 || to != 2 {
		t.Errorf("failover from timeline %d to %d, want 1 to 2", from, to)
	}
	if got := rec.logged("ERROR the database server's timeline changed: a standby was promoted"); len(got) != 1 {
		t.Errorf("logged %q, want the failover once, as an error", got)
	}
	if f := adminStatus(t, s).Store.Failover; f == nil || f.FromTimeline != 1 || f.ToTimeline != 2 {
		t.Errorf("the status has failover %+v, want timelines 1 to 2", f)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var counted int64 = -1
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "pophub.store.failovers" {
				counted = m.Data.(metricdata.Sum[int64]).DataPoints[0].Value
			}
		}
	}
	if counted != 1 {
		t.Errorf("pophub.store.failovers = %d, want 1", counted)
	}

	// The database away again (as often just after a failover): the
	// status says the store fails, and still shows the failover, which
	// it holds in memory.
	if err := rig.standby.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	st := adminStatusAnyway(t, s)
	if st.Store.OK || st.Store.Failover == nil {
		t.Errorf("with the database stopped the status has store ok %v and failover %+v, want failing and the failover", st.Store.OK, st.Store.Failover)
	}
}

// TestFailoverWhileNoHubRanIsNoticed: a failover while every instance was
// stopped (a deploy, the runbook's own restart) is noticed by the first
// to open afterwards, from the timeline the schema's instances last saw,
// which the promoted standby holds: an instance took the timeline it
// found for the first, and said nothing.
func TestFailoverWhileNoHubRanIsNoticed(t *testing.T) {
	ctx := context.Background()
	rig := newFailoverRig(t)
	in := chunks(storetest.Population(t, 20, 9), 10)
	s := rig.open(t)
	applyRetrying(t, s, in[0])
	rig.lag(t)
	applyRetrying(t, s, in[1]) // lost
	s.Close()
	rig.failover(t)

	rec := &logRecorder{}
	cfg := rig.cfg
	cfg.Logger = slog.New(rec)
	again, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if from, to, _, ok := again.LastFailover(); !ok || from != 1 || to != 2 {
		t.Errorf("failover while no hub ran: noticed %v, timelines %d to %d, want 1 to 2", ok, from, to)
	}
	if got := rec.logged("ERROR the database server's timeline changed"); len(got) != 1 {
		t.Errorf("logged %q, want the failover once, as an error", got)
	}

	// The next instance to open finds the new timeline saved.
	rec2 := &logRecorder{}
	cfg.Logger = slog.New(rec2)
	third, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if _, _, _, ok := third.LastFailover(); ok {
		t.Error("an instance opening after the failover was noticed reported it again")
	}
}
