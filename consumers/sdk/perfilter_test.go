package sdk_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/schemas"
)

// perFilterBatch is n notifications for citizens first, first+1, …: by
// turns a migration out of Harbin, one into it, one within it (both
// migration filters match it), a death in it, and a migration elsewhere
// (no filter matches). It returns the messages, the change ids the
// Harbin bureau wants, and those matching two filters.
func perFilterBatch(tag string, first, n int) (msgs []*nats.Msg, want, both []string) {
	for i := range n {
		id, change := sdktest.CitizenID(first+i), fmt.Sprintf("%s%d", tag, i)
		var note schemas.Notification
		address := ""
		switch i % 5 {
		case 0:
			note = sdktest.Migration(change, id, 1, daoli, beijing)
		case 1:
			note = sdktest.Migration(change, id, 1, beijing, nangang)
		case 2:
			note = sdktest.Migration(change, id, 1, daoli, nangang)
			both = append(both, change)
		case 3:
			note, address = sdktest.Death(change, id, 1, "2026-01-02"), nangang
		case 4:
			note = sdktest.Migration(change, id, 1, saertu, beijing)
		}
		if i%5 != 4 {
			want = append(want, change)
		}
		msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", note, address), note, ""))
	}
	return msgs, want, both
}

// consumersOf lists the stream's consumers: name → filter subject and
// creation time.
func consumersOf(t *testing.T, js jetstream.JetStream) map[string]jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, schemas.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]jetstream.ConsumerInfo{}
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		out[info.Name] = *info
	}
	if err := list.Err(); err != nil {
		t.Fatalf("listing consumers: %v", err)
	}
	return out
}

// waitDrained waits until none of the consumers has anything pending or
// unacknowledged: every copy was acked, including those the SDK skipped.
func waitDrained(t *testing.T, js jetstream.JetStream, names []string) {
	t.Helper()
	waitFor(t, "every consumer drained", 20*time.Second, func() bool {
		for _, n := range names {
			c, err := js.Consumer(context.Background(), schemas.StreamName, n)
			if err != nil {
				return false
			}
			info, err := c.Info(context.Background())
			if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
				return false
			}
		}
		return true
	})
}

// TestConsumerPerFilter runs the Harbin bureau's three filters with a
// durable consumer each. It checks that the consumers are named by
// schemas.FilterConsumerName and filter exactly their subjects; that a
// migration within Harbin, on two consumers, is handled once; that a
// restarted subscriber binds the same consumers (a new one would start
// over and handle everything again); that stopping in the middle of a
// backlog loses nothing; and that the pending gauge adds the consumers up.
func TestConsumerPerFilter(t *testing.T) {
	e := newEnv(t)
	reader := sdkmetric.NewManualReader()
	rec := newRecorder()
	var slow atomic.Bool
	rec.fail = func(*sdk.Delivery) error {
		if slow.Load() {
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	}
	cfg := sdk.Config{Name: "perfilter", URL: e.srv.URL(), Filters: siFilters, ConsumerPerFilter: true, Handler: rec.handle,
		Start: sdk.Start{Policy: sdk.StartAll}, Concurrency: 3, FetchBatch: 16,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}

	var names []string
	wantConsumers := map[string]string{}
	for _, f := range siFilters {
		subj := f.Subject("pop")
		name := schemas.FilterConsumerName("perfilter", subj)
		names = append(names, name)
		wantConsumers[name] = subj
	}
	s, err := sdk.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var gotDurables []string
	for _, d := range s.Durables() {
		gotDurables = append(gotDurables, d.Name+" "+d.FilterSubject)
		if strings.ContainsAny(d.Name, ".*> ") {
			t.Errorf("consumer name %q is not a valid NATS consumer name", d.Name)
		}
	}
	s.Close()
	var wantDurables []string
	for _, n := range names {
		wantDurables = append(wantDurables, n+" "+wantConsumers[n])
	}
	if !slices.Equal(gotDurables, wantDurables) {
		t.Errorf("Durables() = %q, want %q", gotDurables, wantDurables)
	}

	// First run: a backlog, handled to the end.
	msgsA, wantA, bothA := perFilterBatch("a", 0, 100)
	sdktest.Publish(t, e.js, msgsA...)
	stop := run(t, cfg)
	waitFor(t, "the first batch", 20*time.Second, func() bool { return rec.distinct() == len(wantA) })
	waitDrained(t, e.js, names)
	if d := rec.duplicates(); d != 0 {
		t.Errorf("%d notifications handled twice; the %d on two consumers must be handled once", d, len(bothA))
	}
	created := map[string]time.Time{}
	for name, info := range consumersOf(t, e.js) {
		if want, ok := wantConsumers[name]; !ok || info.Config.FilterSubject != want {
			t.Errorf("consumer %s filters %q; want only %v", name, info.Config.FilterSubject, wantConsumers)
		}
		created[name] = info.Created
	}
	if len(created) != len(wantConsumers) {
		t.Errorf("consumers %v, want %v", created, wantConsumers)
	}
	gaugeZero := func() bool {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "pophub.sdk.pending" && len(g.DataPoints) == 1 {
					return g.DataPoints[0].Value == 0
				}
			}
		}
		return false
	}
	waitFor(t, "the pending gauge at 0", 10*time.Second, gaugeZero)
	stop()

	// Published while the subscriber is down; the second run stops in the
	// middle of it, the third finishes it.
	msgsB, wantB, bothB := perFilterBatch("b", 1000, 300)
	sdktest.Publish(t, e.js, msgsB...)
	slow.Store(true)
	stop = run(t, cfg)
	waitFor(t, "part of the second batch", 20*time.Second, func() bool { return rec.distinct() > len(wantA)+len(wantB)/4 })
	stop()
	t.Logf("stopped after %d of %d", rec.distinct()-len(wantA), len(wantB))
	slow.Store(false)
	run(t, cfg)
	waitFor(t, "the second batch", 30*time.Second, func() bool { return rec.distinct() == len(wantA)+len(wantB) })
	waitDrained(t, e.js, names)

	rec.mu.Lock()
	for _, id := range slices.Concat(wantA, wantB) {
		if rec.byChange[id] == 0 {
			t.Errorf("notification %s lost", id)
		}
	}
	for id, n := range rec.byChange {
		switch {
		case !slices.Contains(wantA, id) && !slices.Contains(wantB, id):
			t.Errorf("notification %s handled, but no filter matches it", id)
		case n > 1 && !slices.Contains(bothB, id):
			// Only a copy whose twin was handled before the stop may
			// come again: at least once per filter across a restart.
			t.Errorf("notification %s handled %d times", id, n)
		}
	}
	for _, e := range rec.errs {
		if !strings.HasPrefix(e, "version") { // a repeat reads as "version 1 after 1"; counted above
			t.Error(e)
		}
	}
	rec.mu.Unlock()
	t.Logf("%d of %d notifications on two consumers handled twice across the mid-backlog stop", rec.duplicates(), len(bothB))

	after := consumersOf(t, e.js)
	for name, when := range created {
		if info, ok := after[name]; !ok || !info.Created.Equal(when) {
			t.Errorf("consumer %s was not bound again: created %v, now %v (present %v)", name, when, info.Created, ok)
		}
	}
	if len(after) != len(created) {
		t.Errorf("%d consumers after the restarts, want %d", len(after), len(created))
	}
}
