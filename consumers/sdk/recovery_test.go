package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// debugLogger logs everything, down to debug, into l.
func debugLogger(l *testenv.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// counter reads the sum of a counter from reader, 0 when it was never
// recorded.
func counter(t *testing.T, reader *sdkmetric.ManualReader, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range s.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// migrationMsgs are migrations out of Harbin of citizens from..from+n-1,
// version 1 each.
func migrationMsgs(from, n int) []*nats.Msg {
	var msgs []*nats.Msg
	for i := from; i < from+n; i++ {
		m := sdktest.Migration(fmt.Sprintf("m%d", i), sdktest.CitizenID(i), 1, daoli, beijing)
		msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", m, ""), m, ""))
	}
	return msgs
}

// TestBootstrapCoveredNotifications: citizen B changes twice (v2, v3)
// while the snapshot is walked, after the stream sequence the walk
// carries, and the walk reads B at v3; citizen C is not in the snapshot.
// By default a handler sees only what the snapshot lacks; with
// DeliverCovered it also sees the two changes, marked as in the snapshot,
// as a handler whose notifications are work needs. Every covered delivery
// says the citizen's snapshot version (one after the walk's end says it
// only until the consumer is past the walk and drops the snapshot; see
// TestSnapshotDroppedPastWalk). (Listed sorted.)
func TestBootstrapCoveredNotifications(t *testing.T) {
	tests := []struct {
		name           string
		deliverCovered bool
		want           []string
	}{
		{"acked unseen by default", false, []string{"B v4 covered false", "C v1 covered false"}},
		{"delivered marked with DeliverCovered", true, []string{
			"B v2 covered true snapshot 3", "B v3 covered true snapshot 3", "B v4 covered false", "C v1 covered false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b, c := sdktest.CitizenID(2), sdktest.CitizenID(3)
			migration := func(id string, v int64) *nats.Msg {
				citizen := map[string]int{"B": 2, "C": 3}[id]
				n := sdktest.Migration(fmt.Sprintf("%s-v%d", id, v), sdktest.CitizenID(citizen), v, daoli, beijing)
				return sdktest.Msg(sdktest.Subject("pop", n, ""), n, "")
			}
			hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				st, err := e.js.Stream(r.Context(), schemas.StreamName)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				walkBegan := st.CachedInfo().State.LastSeq
				sdktest.Publish(t, e.js, migration("B", 2), migration("B", 3)) // applied while the page is read
				_ = json.NewEncoder(w).Encode(map[string]any{"stream_sequence": walkBegan, "next": "", "persons": []map[string]any{
					{"citizen_id": string(b), "version": 3, "status": "active", "hukou": map[string]any{"address_code": daoli}}}})
			}))
			t.Cleanup(hub.Close)

			var mu sync.Mutex
			var seen []string
			run(t, sdk.Config{Name: "covered", URL: e.srv.URL(), Filters: []sdk.Filter{{Kind: sdk.MigrationsOut, Region: "2301"}},
				Bootstrap: &sdk.Bootstrap{HubURL: hub.URL, Purpose: "p", DeliverCovered: tc.deliverCovered,
					Handle: func(context.Context, sdk.Person) error { return nil }},
				Handler: func(_ context.Context, d *sdk.Delivery) error {
					id := map[string]string{string(b): "B", string(c): "C"}[string(d.CitizenID)]
					mu.Lock()
					what := fmt.Sprintf("%s v%d covered %v", id, d.Version, d.InSnapshot)
					if d.InSnapshot {
						what += fmt.Sprintf(" snapshot %d", d.SnapshotVersion)
					}
					seen = append(seen, what)
					mu.Unlock()
					return nil
				}})
			waitFor(t, "the consumer", 10*time.Second, func() bool {
				_, err := e.js.Consumer(context.Background(), schemas.StreamName, "covered")
				return err == nil
			})
			sdktest.Publish(t, e.js, migration("B", 4), migration("C", 1))
			waitFor(t, "the notifications", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= len(tc.want) })
			time.Sleep(200 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			slices.Sort(seen) // citizens run in parallel; one citizen's in order, as versions say
			if got := strings.Join(seen, "; "); got != strings.Join(tc.want, "; ") {
				t.Errorf("handler saw\n  %s\nwant\n  %s", got, strings.Join(tc.want, "; "))
			}
		})
	}
}

func TestIsTransient(t *testing.T) {
	cause := errors.New("connection refused")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", cause, false},
		{"marked", sdk.Transient(cause), true},
		{"marked, then wrapped", fmt.Errorf("recording task: %w", sdk.Transient(cause)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sdk.IsTransient(tc.err); got != tc.want {
				t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if sdk.Transient(nil) != nil {
		t.Error("Transient(nil) is not nil")
	}
	if err := sdk.Transient(cause); !errors.Is(err, cause) || err.Error() != cause.Error() {
		t.Errorf("Transient(%v) = %v, which hides its cause", cause, err)
	}
}

// TestTransientFailuresOutlastMaxAttempts: a handler whose database is
// down for longer than the retries MaxAttempts allows says so with
// Transient, and its notifications wait, in order, until the database is
// back instead of being dead-lettered; an ordinary error still is
// dead-lettered after MaxAttempts.
func TestTransientFailuresOutlastMaxAttempts(t *testing.T) {
	e := newEnv(t)
	const outage = 8 // failed attempts, against MaxAttempts 2
	var msgs []*nats.Msg
	for v := int64(1); v <= 2; v++ {
		n := sdktest.Migration(fmt.Sprintf("waits-v%d", v), sdktest.CitizenID(1), v, daoli, beijing)
		msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", n, ""), n, ""))
	}
	rejected := sdktest.Migration("rejected", sdktest.CitizenID(2), 1, daoli, beijing)
	msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", rejected, ""), rejected, ""))
	sdktest.Publish(t, e.js, msgs...)

	rec := newRecorder()
	var mu sync.Mutex
	attempts := map[string]int{}
	rec.fail = func(d *sdk.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[d.ChangeID]++
		switch {
		case d.ChangeID == "rejected":
			return errors.New("the bureau's system rejects it")
		case d.ChangeID == "waits-v1" && attempts[d.ChangeID] <= outage:
			return fmt.Errorf("recording task: %w", sdk.Transient(errors.New("database unreachable")))
		}
		return nil
	}
	run(t, sdk.Config{Name: "outage", URL: e.srv.URL(), Filters: siFilters, Handler: rec.handle, Start: sdk.Start{Policy: sdk.StartAll},
		MaxAttempts: 2, Backoff: []time.Duration{time.Millisecond, 20 * time.Millisecond}})

	ctx := context.Background()
	waitFor(t, "the dead letter", 10*time.Second, func() bool {
		dlq, err := e.js.Stream(ctx, "POPDLQ")
		if err != nil {
			return false
		}
		info, err := dlq.Info(ctx)
		return err == nil && info.State.Msgs >= 1
	})
	waitFor(t, "the database back", 10*time.Second, func() bool { return rec.distinct() == 2 })
	time.Sleep(100 * time.Millisecond)
	dlq, err := e.js.Stream(ctx, "POPDLQ")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := dlq.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("dead-letter stream: %+v, %v; want only the rejected notification", info, err)
	}
	if dl, err := dlq.GetMsg(ctx, 1); err != nil || dl.Header.Get(sdk.HeaderSubject) == "" || string(dl.Data) != string(msgs[2].Data) {
		t.Errorf("dead letter %v (%v); want the rejected notification", dl, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if got := rec.versions[sdktest.CitizenID(1)]; fmt.Sprint(got) != "[1 2]" {
		t.Errorf("handled versions %v, want [1 2]", got)
	}
	if attempts["waits-v1"] != outage+1 || attempts["rejected"] != 2 {
		t.Errorf("attempts %v; want %d at the one waiting out the outage, 2 at the rejected one", attempts, outage+1)
	}
}

// TestGracefulRestartKeepsCitizenOrder: citizen 1's v1 fails and waits for
// its retry while v2 and v3, and citizen 2's notifications, queue behind
// it; a graceful restart hands them all back, and the next instance
// handles each citizen's in order.
func TestGracefulRestartKeepsCitizenOrder(t *testing.T) {
	e := newEnv(t)
	var msgs []*nats.Msg
	for v := int64(1); v <= 3; v++ {
		for c := 1; c <= 2; c++ {
			n := sdktest.Migration(fmt.Sprintf("c%d-v%d", c, v), sdktest.CitizenID(c), v, daoli, beijing)
			msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", n, ""), n, ""))
		}
	}
	sdktest.Publish(t, e.js, msgs...)
	rec := newRecorder()
	var mu sync.Mutex
	down := true
	failed := make(chan struct{}, 1)
	rec.fail = func(d *sdk.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			select {
			case failed <- struct{}{}:
			default:
			}
			return errors.New("database unavailable")
		}
		return nil
	}
	cfg := sdk.Config{Name: "deploy", URL: e.srv.URL(), Filters: siFilters, Handler: rec.handle, Concurrency: 1,
		Start: sdk.Start{Policy: sdk.StartAll}, Backoff: []time.Duration{3 * time.Second}}
	stop := run(t, cfg)
	select {
	case <-failed: // c1-v1 waits for its retry; everything else behind it
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was not called")
	}
	stop()
	mu.Lock()
	down = false
	mu.Unlock()
	run(t, cfg)
	waitFor(t, "every notification", 15*time.Second, func() bool { return rec.distinct() == len(msgs) })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.errs {
		t.Error(e)
	}
	for c := 1; c <= 2; c++ {
		if got := rec.versions[sdktest.CitizenID(c)]; fmt.Sprint(got) != "[1 2 3]" {
			t.Errorf("citizen %d: versions handled in the order %v, want [1 2 3]", c, got)
		}
	}
}

// TestLostConsumerCreatedAgainWhereItLeftOff: the durable consumer of a
// running subscriber that starts new consumers at new notifications
// disappears, with notifications published before the subscriber notices
// (or, lost in a restart, with no notice at all):
// it creates the consumer again where it left off, not as a new
// subscriber, so none is lost, and says so.
func TestLostConsumerCreatedAgainWhereItLeftOff(t *testing.T) {
	tests := []struct {
		name string
		lose func(t *testing.T, e *env)
	}{
		{"consumer deleted", func(t *testing.T, e *env) {
			if err := e.js.DeleteConsumer(context.Background(), schemas.StreamName, "lost"); err != nil {
				t.Fatal(err)
			}
		}},
		// No pull of the subscriber's is waiting on the consumer when it
		// goes, so the server has none to tell: the next pull finds no
		// one to answer it.
		{"consumer lost from the store in a restart", func(t *testing.T, e *env) {
			e.srv.RestartLosing(schemas.StreamName, "lost")
		}},
		{"stream created again", func(t *testing.T, e *env) {
			if err := e.js.DeleteStream(context.Background(), schemas.StreamName); err != nil {
				t.Fatal(err)
			}
			sdktest.CreateStream(t, e.js, schemas.StreamName, "pop") // as the hub's relay does
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rec := newRecorder()
			reader := sdkmetric.NewManualReader()
			var logs testenv.LogBuffer
			run(t, sdk.Config{Name: "lost", URL: e.srv.URL(), Filters: []sdk.Filter{{Kind: sdk.MigrationsOut, Region: "2301"}},
				Handler: rec.handle, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Logger: debugLogger(&logs)})
			waitFor(t, "the consumer", 10*time.Second, func() bool {
				_, err := e.js.Consumer(context.Background(), schemas.StreamName, "lost")
				return err == nil
			})
			sdktest.Publish(t, e.js, migrationMsgs(0, 5)...)
			waitFor(t, "the first five", 10*time.Second, func() bool { return rec.distinct() == 5 })

			tc.lose(t, e)
			sdktest.Publish(t, e.js, migrationMsgs(5, 10)...)
			waitFor(t, "the consumer again", 15*time.Second, func() bool {
				_, err := e.js.Consumer(context.Background(), schemas.StreamName, "lost")
				return err == nil
			})
			sdktest.Publish(t, e.js, migrationMsgs(15, 5)...)
			waitFor(t, "every notification", 15*time.Second, func() bool { return rec.distinct() == 20 })
			if got := counter(t, reader, "pophub_sdk_consumers_recreated_total"); got != 1 {
				t.Errorf("pophub_sdk_consumers_recreated_total = %d, want 1", got)
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "created it again where the subscriber left off") {
				t.Errorf("no error logged; logs:\n%s", logs.String())
			}
		})
	}
}

// TestGapReported: notifications the stream deletes before the
// subscriber took them are reported at ERROR and counted; unrelated
// messages expiring behind a quiet filter are not.
func TestGapReported(t *testing.T) {
	// newStream makes a POP stream keeping messages for maxAge.
	newStream := func(t *testing.T, maxAge time.Duration) (*sdktest.Server, jetstream.JetStream) {
		srv := sdktest.StartServer(t)
		_, js := sdktest.Connect(t, srv.URL())
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{"pop.>"},
			Storage: jetstream.FileStorage, MaxAge: maxAge, Duplicates: time.Second}); err != nil {
			t.Fatal(err)
		}
		return srv, js
	}
	waitForConsumer := func(t *testing.T, js jetstream.JetStream, name string) {
		waitFor(t, "the consumer", 10*time.Second, func() bool {
			_, err := js.Consumer(context.Background(), schemas.StreamName, name)
			return err == nil
		})
	}

	t.Run("down while its notifications expired", func(t *testing.T) {
		t.Parallel()
		srv, js := newStream(t, 2*time.Second)
		rec := newRecorder()
		reader := sdkmetric.NewManualReader()
		var logs testenv.LogBuffer
		cfg := sdk.Config{Name: "late", URL: srv.URL(), Filters: []sdk.Filter{{Kind: sdk.MigrationsOut, Region: "2301"}},
			Handler: rec.handle, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Logger: debugLogger(&logs)}
		stop := run(t, cfg)
		waitForConsumer(t, js, "late")
		sdktest.Publish(t, js, migrationMsgs(0, 5)...) // stream sequences 1-5
		waitFor(t, "the first five", 10*time.Second, func() bool { return rec.distinct() == 5 })
		stop()
		sdktest.Publish(t, js, migrationMsgs(5, 10)...) // 6-15, missed
		waitFor(t, "the missed ones to expire", 10*time.Second, func() bool {
			st, err := js.Stream(context.Background(), schemas.StreamName)
			return err == nil && st.CachedInfo().State.Msgs == 0
		})
		sdktest.Publish(t, js, migrationMsgs(15, 5)...) // 16-20

		run(t, cfg)
		waitFor(t, "the last five", 10*time.Second, func() bool { return rec.distinct() == 10 })
		if got := counter(t, reader, "pophub_sdk_gaps_total"); got != 1 {
			t.Errorf("pophub_sdk_gaps_total = %d, want 1", got)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "first_seq=6 last_seq=15") {
			t.Errorf("no error logged for stream sequences 6-15; logs:\n%s", logs.String())
		}
	})

	t.Run("unrelated messages expire behind a quiet filter", func(t *testing.T) {
		t.Parallel()
		// Kept long enough for a backlog refresh (every 5 s) to see the
		// consumer caught up before they expire, with seconds to spare
		// on a loaded machine.
		srv, js := newStream(t, 10*time.Second)
		rec := newRecorder()
		reader := sdkmetric.NewManualReader()
		var logs testenv.LogBuffer
		run(t, sdk.Config{Name: "quiet", URL: srv.URL(), Filters: []sdk.Filter{{Kind: sdk.Deaths, Region: "2301"}},
			Handler: rec.handle, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Logger: debugLogger(&logs)})
		waitForConsumer(t, js, "quiet")
		death := sdktest.Death("d1", sdktest.CitizenID(1), 1, "2026-01-02")
		sdktest.Publish(t, js, sdktest.Msg(sdktest.Subject("pop", death, daoli), death, ""))
		waitFor(t, "the death", 10*time.Second, func() bool { return rec.distinct() == 1 })
		sdktest.Publish(t, js, migrationMsgs(0, 10)...) // not deaths
		waitFor(t, "everything to expire", 20*time.Second, func() bool {
			st, err := js.Stream(context.Background(), schemas.StreamName)
			return err == nil && st.CachedInfo().State.Msgs == 0
		})
		time.Sleep(6 * time.Second) // a backlog refresh after the expiry
		if got := counter(t, reader, "pophub_sdk_gaps_total"); got != 0 {
			t.Errorf("pophub_sdk_gaps_total = %d, want 0: no death expired; logs:\n%s", got, logs.String())
		}
	})
}

// TestDeadLetterStreamRetention: the dead-letter stream the subscriber
// creates keeps dead letters until an operator deletes them; an existing
// one that deletes them at a limit is left as it is, with a warning.
func TestDeadLetterStreamRetention(t *testing.T) {
	tests := []struct {
		name     string
		existing time.Duration // the max age of an existing stream; 0: none exists
		wantAge  time.Duration
		warned   bool
	}{
		{"created without limits", 0, 0, false},
		{"an existing one with an age limit", 24 * time.Hour, 24 * time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			if tc.existing > 0 {
				if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "POPDLQ", Subjects: []string{"popdlq.>"}, MaxAge: tc.existing}); err != nil {
					t.Fatal(err)
				}
			}
			var logs testenv.LogBuffer
			stop := run(t, sdk.Config{Name: "dlq", URL: e.srv.URL(), Filters: siFilters, Handler: newRecorder().handle, Logger: debugLogger(&logs)})
			const warning = "the dead-letter stream deletes dead letters at a limit"
			// The check runs in the background after the consumer is
			// created: a warning that is due is waited for, since on a busy
			// machine it may come well after "created durable consumer".
			waitFor(t, "the subscriber to check the dead-letter stream", 20*time.Second, func() bool {
				if tc.warned {
					return strings.Contains(logs.String(), warning)
				}
				return strings.Contains(logs.String(), "created durable consumer")
			})
			time.Sleep(500 * time.Millisecond) // room for a warning that should not come
			stop()
			st, err := e.js.Stream(ctx, "POPDLQ")
			if err != nil {
				t.Fatal(err)
			}
			c := st.CachedInfo().Config
			if c.MaxAge != tc.wantAge || c.MaxMsgs > 0 || c.MaxBytes > 0 || c.MaxMsgsPerSubject > 0 {
				t.Errorf("POPDLQ max age %v, max msgs %d, max bytes %d, max msgs per subject %d; want max age %v and no other limit",
					c.MaxAge, c.MaxMsgs, c.MaxBytes, c.MaxMsgsPerSubject, tc.wantAge)
			}
			if got := strings.Contains(logs.String(), warning); got != tc.warned {
				t.Errorf("warned %v, want %v; logs:\n%s", got, tc.warned, logs.String())
			}
		})
	}
}

// TestChangedFiltersStopRun: a subscriber whose filters changed under the
// same name finds its durable consumer filtering the old cover. Retrying
// cannot help, so Run returns ErrFilterChanged at once, with what to do.
func TestChangedFiltersStopRun(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	stop := run(t, sdk.Config{Name: "si", URL: e.srv.URL(), Filters: []sdk.Filter{{Kind: sdk.MigrationsOut, Region: "2301"}}, Handler: rec.handle})
	waitFor(t, "the consumer", 10*time.Second, func() bool {
		_, err := e.js.Consumer(context.Background(), schemas.StreamName, "si")
		return err == nil
	})
	stop()
	var logs testenv.LogBuffer
	s, err := sdk.New(sdk.Config{Name: "si", URL: e.srv.URL(), Filters: siFilters, Handler: rec.handle, Logger: debugLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Run(ctx)
	if !errors.Is(err, sdk.ErrFilterChanged) || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v); want ErrFilterChanged at once; logs:\n%s", err, ctx.Err(), logs.String())
	}
	if h := s.Health(); !errors.Is(h, sdk.ErrFilterChanged) {
		t.Errorf("Health = %v after Run failed; want ErrFilterChanged", h)
	}
	if !strings.Contains(err.Error(), "delete it or use another name") {
		t.Errorf("Run = %v; want it to say what to do", err)
	}
}

// TestHealth: Health says why the subscriber is not consuming, for a
// health endpoint: before Run, while setting up (the hub's stream not
// created yet), while the server is down, after Run; and nil while it
// runs with its consumer set up.
func TestHealth(t *testing.T) {
	srv := sdktest.StartServer(t)
	_, js := sdktest.Connect(t, srv.URL())
	s, err := sdk.New(sdk.Config{Name: "health", URL: srv.URL(), Filters: siFilters, Handler: newRecorder().handle})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	unhealthy := func(what, want string) {
		t.Helper()
		waitFor(t, what, 20*time.Second, func() bool { err := s.Health(); return err != nil && strings.Contains(err.Error(), want) })
	}
	unhealthy("not started", "Run has not started")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	unhealthy("setting up without the stream", "setting up, retrying: looking up stream")
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	waitFor(t, "healthy", 20*time.Second, func() bool { return s.Health() == nil })
	srv.Shutdown()
	unhealthy("the server down", "not connected to NATS")
	srv.Restart()
	waitFor(t, "healthy again", 20*time.Second, func() bool { return s.Health() == nil })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	unhealthy("stopped", "Run returned")
}
