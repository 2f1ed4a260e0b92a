package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Addresses used throughout: two counties of Harbin (2301), one of
// Daqing (2306), one of Beijing.
const (
	daoli   = "230102001001"
	nangang = "230103002001"
	saertu  = "230602002003"
	beijing = "110105001001"
)

// siFilters are the social-insurance bureau's filters for Harbin.
var siFilters = []sdk.Filter{{Kind: sdk.MigrationsOut, Region: "2301"}, {Kind: sdk.MigrationsIn, Region: "2301"}, {Kind: sdk.Deaths, Region: "2301"}}

// env is one test's NATS server and the hub's stream on it.
type env struct {
	srv *sdktest.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := sdktest.StartServer(t)
	nc, js := sdktest.Connect(t, srv.URL())
	sdktest.CreateStream(t, js, schemas.StreamName, "pop")
	return &env{srv: srv, nc: nc, js: js}
}

// run starts a subscriber; the returned stop cancels Run and waits for it.
func run(t *testing.T, cfg sdk.Config) (stop func()) {
	t.Helper()
	s, err := sdk.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return 30s after its context ended")
			}
			s.Close()
			s.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// recorder is a handler that remembers what it was given.
type recorder struct {
	mu       sync.Mutex
	byChange map[string]int              // deliveries per change id
	last     map[citizenid.ID]int64      // last version handled per citizen
	versions map[citizenid.ID][]int64    // versions in handling order
	busy     map[citizenid.ID]bool       // a handler call is running
	errs     []string                    // ordering violations
	fail     func(d *sdk.Delivery) error // optional failure injection
	calls    atomic.Int64
}

func newRecorder() *recorder {
	return &recorder{byChange: map[string]int{}, last: map[citizenid.ID]int64{}, versions: map[citizenid.ID][]int64{}, busy: map[citizenid.ID]bool{}}
}

func (r *recorder) handle(ctx context.Context, d *sdk.Delivery) error {
	r.calls.Add(1)
	r.mu.Lock()
	if r.busy[d.CitizenID] {
		r.errs = append(r.errs, fmt.Sprintf("two handlers at once for one citizen (version %d)", d.Version))
	}
	r.busy[d.CitizenID] = true
	r.mu.Unlock()
	defer func() { r.mu.Lock(); r.busy[d.CitizenID] = false; r.mu.Unlock() }()
	if r.fail != nil {
		if err := r.fail(d); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Version <= r.last[d.CitizenID] {
		r.errs = append(r.errs, fmt.Sprintf("version %d after %d", d.Version, r.last[d.CitizenID]))
	}
	r.last[d.CitizenID] = d.Version
	r.versions[d.CitizenID] = append(r.versions[d.CitizenID], d.Version)
	r.byChange[d.ChangeID]++
	return nil
}

func (r *recorder) distinct() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.byChange) }

func (r *recorder) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.byChange {
		n += c - 1
	}
	return n
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// migrations builds n notifications for citizens versions 1..perCitizen,
// interleaved across citizens, all leaving Harbin for Beijing.
func migrations(citizens, perCitizen int) []*nats.Msg {
	var msgs []*nats.Msg
	for v := 1; v <= perCitizen; v++ {
		for c := 0; c < citizens; c++ {
			n := sdktest.Migration(fmt.Sprintf("c%d-v%d", c, v), sdktest.CitizenID(c), int64(v), daoli, beijing)
			msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", n, ""), n, ""))
		}
	}
	return msgs
}

func TestOrderPerCitizenWithFailures(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	var failures atomic.Int64
	rec.fail = func(d *sdk.Delivery) error {
		// A tenth of the notifications fail on their first attempt.
		if d.Attempt == 1 && rand.IntN(10) == 0 {
			failures.Add(1)
			return errors.New("transient")
		}
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		return nil
	}
	const citizens, per = 100, 20
	sdktest.Publish(t, e.js, migrations(citizens, per)...)
	run(t, sdk.Config{Name: "order", URL: e.srv.URL(), Filters: siFilters, Handler: rec.handle, Concurrency: 6,
		Start: sdk.Start{Policy: sdk.StartAll}, Backoff: []time.Duration{5 * time.Millisecond}})
	waitFor(t, "all notifications", 60*time.Second, func() bool { return rec.distinct() == citizens*per })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.errs {
		t.Error(e)
	}
	for c := 0; c < citizens; c++ {
		if got := len(rec.versions[sdktest.CitizenID(c)]); got != per {
			t.Errorf("citizen %d: %d notifications handled, want %d", c, got, per)
		}
	}
	if failures.Load() == 0 {
		t.Error("no failure was injected")
	}
	t.Logf("%d handler calls, %d injected failures", rec.calls.Load(), failures.Load())
}

// TestRetryHoldsBackOnlyItsWorker: while one citizen's notification waits
// for its retry (here a Transient failure, retried until it passes), it
// holds back the later notifications of its own worker only; the other
// workers' citizens are handled meanwhile. When it passes, the held-back
// ones follow, each once and in order.
func TestRetryHoldsBackOnlyItsWorker(t *testing.T) {
	e := newEnv(t)
	bad := sdktest.CitizenID(999999)
	const others = 4000
	n := sdktest.Migration("bad", bad, 1, daoli, beijing)
	msgs := []*nats.Msg{sdktest.Msg(sdktest.Subject("pop", n, ""), n, "")}
	for i := range others {
		m := sdktest.Migration(fmt.Sprintf("ok%d", i), sdktest.CitizenID(i), 1, daoli, beijing)
		msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", m, ""), m, ""))
	}
	sdktest.Publish(t, e.js, msgs...)
	rec := newRecorder()
	outage := make(chan struct{})
	var badCalls atomic.Int64
	rec.fail = func(d *sdk.Delivery) error {
		if d.CitizenID != bad {
			return nil
		}
		badCalls.Add(1)
		select {
		case <-outage:
			return nil
		default:
			return sdk.Transient(errors.New("the bureau's database is down"))
		}
	}
	// The default 8 workers and queue sizes; a short backoff, so that the
	// bad citizen's worker keeps retrying (and holding back its queue) while
	// the others run.
	run(t, sdk.Config{Name: "holdback", URL: e.srv.URL(), Filters: siFilters, Handler: rec.handle,
		Start: sdk.Start{Policy: sdk.StartAll}, Backoff: []time.Duration{50 * time.Millisecond}})
	// About 7/8 of the others are on the other workers; 3/4 leaves room for
	// an uneven hash. Before the fix the workers all stalled at about 1,000.
	waitFor(t, "the other workers' citizens handled", 60*time.Second, func() bool { return rec.distinct() >= others*3/4 })
	if got := rec.distinct(); got >= others {
		t.Fatalf("%d of %d others handled: the bad citizen's worker should still hold some back", got, others)
	}
	rec.mu.Lock()
	handledBad := len(rec.versions[bad])
	rec.mu.Unlock()
	if handledBad != 0 || badCalls.Load() == 0 {
		t.Fatalf("the failing citizen was handled %d times after %d calls; want its retry still pending", handledBad, badCalls.Load())
	}
	t.Logf("%d of %d others handled while one citizen's retry was pending (%d attempts)", rec.distinct(), others, badCalls.Load())
	close(outage)
	waitFor(t, "every notification", 60*time.Second, func() bool { return rec.distinct() == others+1 })
	if d := rec.duplicates(); d != 0 {
		t.Errorf("%d notifications handled twice", d)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.errs {
		t.Error(e)
	}
}

func TestStartPositions(t *testing.T) {
	e := newEnv(t)
	batch := func(tag string, n int) []*nats.Msg {
		var out []*nats.Msg
		for i := 0; i < n; i++ {
			m := sdktest.Death(tag+strconv.Itoa(i), sdktest.CitizenID(i), 1, "2026-01-02")
			out = append(out, sdktest.Msg(sdktest.Subject("pop", m, nangang), m, ""))
		}
		return out
	}
	lastA := sdktest.Publish(t, e.js, batch("a", 10)...)
	time.Sleep(50 * time.Millisecond)
	// Everything after this instant was "missed" by a subscriber that
	// starts late: it replays from a time.
	missedSince := time.Now()
	time.Sleep(50 * time.Millisecond)
	sdktest.Publish(t, e.js, batch("b", 15)...)

	tests := []struct {
		name  string
		start sdk.Start
		want  int // notifications before the subscriber started
	}{
		{"all", sdk.Start{Policy: sdk.StartAll}, 25},
		{"time", sdk.Start{Policy: sdk.StartTime, Time: missedSince}, 15},
		{"sequence", sdk.Start{Policy: sdk.StartSequence, Sequence: lastA + 1}, 15},
		{"new", sdk.Start{Policy: sdk.StartNew}, 0},
	}
	recs := map[string]*recorder{}
	for _, tc := range tests {
		rec := newRecorder()
		recs[tc.name] = rec
		run(t, sdk.Config{Name: "start-" + tc.name, URL: e.srv.URL(), Filters: siFilters, Handler: rec.handle, Start: tc.start})
	}
	for _, tc := range tests {
		waitFor(t, tc.name, 20*time.Second, func() bool { return recs[tc.name].distinct() >= tc.want })
	}
	// Wait until the "new" consumer exists before publishing what it must get.
	waitFor(t, "consumer start-new", 10*time.Second, func() bool {
		_, err := e.js.Consumer(context.Background(), schemas.StreamName, "start-new")
		return err == nil
	})
	sdktest.Publish(t, e.js, batch("c", 5)...)
	for _, tc := range tests {
		waitFor(t, tc.name+" after more", 20*time.Second, func() bool { return recs[tc.name].distinct() >= tc.want+5 })
	}
	time.Sleep(200 * time.Millisecond)
	for _, tc := range tests {
		if got := recs[tc.name].distinct(); got != tc.want+5 {
			t.Errorf("%s: %d handled, want %d", tc.name, got, tc.want+5)
		}
		if d := recs[tc.name].duplicates(); d != 0 {
			t.Errorf("%s: %d duplicates", tc.name, d)
		}
	}
}

func TestDeadLetter(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int64
	handler := func(ctx context.Context, d *sdk.Delivery) error {
		calls.Add(1)
		if d.Deliveries != 1 {
			t.Errorf("attempt %d came with delivery %d: retries should stay in place", d.Attempt, d.Deliveries)
		}
		return errors.New("the bureau's system rejects it")
	}
	const n, attempts = 5, 3
	var msgs []*nats.Msg
	for i := 0; i < n; i++ {
		m := sdktest.Death("d"+strconv.Itoa(i), sdktest.CitizenID(i), 1, "2026-01-02")
		msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", m, daoli), m, ""))
	}
	sdktest.Publish(t, e.js, msgs...)
	run(t, sdk.Config{Name: "failing", URL: e.srv.URL(), Filters: siFilters, Handler: handler,
		Start: sdk.Start{Policy: sdk.StartAll}, MaxAttempts: attempts, Backoff: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}})

	ctx := context.Background()
	var dlq jetstream.Stream
	waitFor(t, "dead letters", 20*time.Second, func() bool {
		var err error
		if dlq, err = e.js.Stream(ctx, "POPDLQ"); err != nil {
			return false
		}
		info, err := dlq.Info(ctx)
		return err == nil && info.State.Msgs == n
	})
	for seq := uint64(1); seq <= n; seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "popdlq.failing" {
			t.Errorf("dead letter on %s", m.Subject)
		}
		if got := m.Header.Get(sdk.HeaderError); got != "the bureau's system rejects it" {
			t.Errorf("error header %q", got)
		}
		if got := m.Header.Get(sdk.HeaderAttempts); got != strconv.Itoa(attempts) {
			t.Errorf("attempts header %q", got)
		}
		if got := m.Header.Get(sdk.HeaderSubject); got != "pop.death.23.2301.230102" {
			t.Errorf("subject header %q", got)
		}
	}
	cons, err := e.js.Consumer(ctx, schemas.StreamName, "failing")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "nothing pending", 10*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if got := calls.Load(); got != n*attempts {
		t.Errorf("handler called %d times, want %d", got, n*attempts)
	}
}

// TestGracefulRestartsDoNotDeadLetter restarts a subscriber gracefully
// while one citizen's notifications queue behind a slow handler. Each
// shutdown naks what was fetched but not started, which the server counts
// as a delivery; MaxAttempts counts the handler's failures, so none of
// them is dead-lettered and every version is handled.
func TestGracefulRestartsDoNotDeadLetter(t *testing.T) {
	e := newEnv(t)
	const versions = 8
	var msgs []*nats.Msg
	for v := 1; v <= versions; v++ {
		n := sdktest.Migration(fmt.Sprintf("v%d", v), sdktest.CitizenID(1), int64(v), daoli, beijing)
		msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", n, ""), n, ""))
	}
	sdktest.Publish(t, e.js, msgs...)
	var mu sync.Mutex
	handled := map[int64]bool{}
	entered := make(chan struct{}, 100)
	handler := func(ctx context.Context, d *sdk.Delivery) error {
		entered <- struct{}{}
		time.Sleep(300 * time.Millisecond) // a slow handler: the rest wait queued
		mu.Lock()
		handled[d.Version] = true
		mu.Unlock()
		return nil
	}
	cfg := sdk.Config{Name: "restarts", URL: e.srv.URL(), Filters: siFilters, Handler: handler,
		Concurrency: 1, Start: sdk.Start{Policy: sdk.StartAll}}
	for range versions {
		stop := run(t, cfg)
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
		}
		time.Sleep(50 * time.Millisecond)
		stop() // graceful: the one in flight finishes, the queued ones are nakked
	}
	ctx := context.Background()
	dlq, err := e.js.Stream(ctx, "POPDLQ") // created by the first subscriber
	if err != nil {
		t.Fatal(err)
	}
	deadLetters := func() uint64 {
		info, err := dlq.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	stop := run(t, cfg)
	waitFor(t, "every version handled or dead-lettered", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return uint64(len(handled))+deadLetters() >= versions
	})
	stop()

	for seq := uint64(1); seq <= deadLetters(); seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("dead-lettered after graceful restarts, though the handler never failed: %s (attempts %s)",
			m.Header.Get(sdk.HeaderError), m.Header.Get(sdk.HeaderAttempts))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != versions {
		t.Errorf("handled versions %v, want all %d", handled, versions)
	}
}

// TestMaxDeliveries dead-letters a notification whose handling kills the
// process: the handler closes the subscriber's connection before anything
// is acked, so the server delivers the notification again after AckWait to
// the next instance, which starts counting the handler's attempts afresh.
func TestMaxDeliveries(t *testing.T) {
	e := newEnv(t)
	n := sdktest.Death("crash", sdktest.CitizenID(1), 1, "2026-01-02")
	sdktest.Publish(t, e.js, sdktest.Msg(sdktest.Subject("pop", n, daoli), n, ""))
	const maxDeliveries = 3
	var calls atomic.Int64
	ctx := context.Background()
	for instance := 1; instance <= maxDeliveries+1; instance++ {
		nc, _ := sdktest.Connect(t, e.srv.URL())
		crashed := make(chan struct{})
		handler := func(ctx context.Context, d *sdk.Delivery) error {
			calls.Add(1)
			if d.Attempt != 1 || d.Deliveries != instance {
				t.Errorf("instance %d: attempt %d, deliveries %d; want 1 and %d", instance, d.Attempt, d.Deliveries, instance)
			}
			nc.Close() // the process dies before it acks
			close(crashed)
			return nil
		}
		stop := run(t, sdk.Config{Name: "crashing", Conn: nc, Filters: siFilters, Handler: handler,
			Start: sdk.Start{Policy: sdk.StartAll}, AckWait: time.Second, MaxDeliveries: maxDeliveries})
		if instance <= maxDeliveries {
			select {
			case <-crashed:
			case <-time.After(20 * time.Second):
				t.Fatalf("instance %d: the handler was not called", instance)
			}
		} else {
			waitFor(t, "the dead letter", 20*time.Second, func() bool {
				dlq, err := e.js.Stream(ctx, "POPDLQ")
				if err != nil {
					return false
				}
				info, err := dlq.Info(ctx)
				return err == nil && info.State.Msgs == 1
			})
		}
		stop()
	}
	if got := calls.Load(); got != maxDeliveries {
		t.Errorf("handler called %d times, want %d", got, maxDeliveries)
	}
	dlq, err := e.js.Stream(ctx, "POPDLQ")
	if err != nil {
		t.Fatal(err)
	}
	m, err := dlq.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Header.Get(sdk.HeaderError), "delivered 4 times without an ack, more than MaxDeliveries (3)"; got != want {
		t.Errorf("error header %q, want %q", got, want)
	}
	if got := m.Header.Get(sdk.HeaderAttempts); got != "4" {
		t.Errorf("attempts header %q, want 4", got)
	}
}

func TestNATSRestartLosesNothing(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	rec.fail = func(*sdk.Delivery) error { time.Sleep(100 * time.Microsecond); return nil }
	all := migrations(300, 10)
	half := len(all) / 2
	sdktest.Publish(t, e.js, all[:half]...)
	run(t, sdk.Config{Name: "restart", URL: e.srv.URL(), Filters: siFilters, Handler: rec.handle,
		Start: sdk.Start{Policy: sdk.StartAll}, AckWait: 2 * time.Second, Concurrency: 4})
	waitFor(t, "some handled", 20*time.Second, func() bool { return rec.distinct() > half/3 })
	reconnects := e.nc.Stats().Reconnects
	e.srv.Restart()
	t.Logf("restarted NATS after %d notifications", rec.distinct())
	// Until the publisher notices the old connection is gone, it still
	// reports being connected.
	waitFor(t, "publisher reconnected", 10*time.Second, func() bool { return e.nc.IsConnected() && e.nc.Stats().Reconnects > reconnects })
	sdktest.Publish(t, e.js, all[half:]...)
	waitFor(t, "all notifications", 60*time.Second, func() bool { return rec.distinct() == len(all) })
	rec.mu.Lock()
	for _, e := range rec.errs {
		t.Log("after the restart:", e) // redeliveries of unacked messages may reorder
	}
	rec.mu.Unlock()
	t.Logf("%d duplicates after the restart (acks lost with the server)", rec.duplicates())
}

func TestShutdownFinishesInFlight(t *testing.T) {
	e := newEnv(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	handler := func(ctx context.Context, d *sdk.Delivery) error {
		close(entered)
		<-release
		if ctx.Err() != nil {
			return ctx.Err()
		}
		finished.Store(true)
		return nil
	}
	m := sdktest.Death("only", sdktest.CitizenID(1), 1, "2026-01-02")
	sdktest.Publish(t, e.js, sdktest.Msg(sdktest.Subject("pop", m, daoli), m, ""))
	stop := run(t, sdk.Config{Name: "graceful", URL: e.srv.URL(), Filters: siFilters, Handler: handler, Start: sdk.Start{Policy: sdk.StartAll}})
	<-entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a handler was running")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	<-stopped
	if !finished.Load() {
		t.Fatal("the in-flight handler's context was cancelled")
	}
	cons, err := e.js.Consumer(context.Background(), schemas.StreamName, "graceful")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ack", 5*time.Second, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 1 && info.NumAckPending == 0
	})
}

func TestTraceContinued(t *testing.T) {
	e := newEnv(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	m := sdktest.Migration("traced", sdktest.CitizenID(3), 1, beijing, nangang)
	sdktest.Publish(t, e.js, sdktest.Msg(sdktest.Subject("pop", m, ""), m, "00-"+traceID+"-"+parent+"-01"))
	var seen atomic.Bool
	run(t, sdk.Config{Name: "traced", URL: e.srv.URL(), Filters: siFilters, TracerProvider: tp, Start: sdk.Start{Policy: sdk.StartAll},
		Handler: func(ctx context.Context, d *sdk.Delivery) error { seen.Store(true); return nil }})
	waitFor(t, "handled", 10*time.Second, func() bool { return seen.Load() && len(spans.Ended()) == 1 })
	s := spans.Ended()[0]
	if got := s.SpanContext().TraceID().String(); got != traceID {
		t.Errorf("trace id %s, want %s", got, traceID)
	}
	if got := s.Parent().SpanID().String(); got != parent {
		t.Errorf("parent span %s, want %s", got, parent)
	}
	for _, a := range s.Attributes() {
		if v := a.Value.Emit(); len(v) == 18 && v == string(sdktest.CitizenID(3)) {
			t.Errorf("span attribute %s holds the citizen ID", a.Key)
		}
	}
}

// TestTraceContinuedWithoutProvider: with tracing off the SDK stops
// starting spans (see startSpan), and every handler still gets the hub's
// span context, the first notification as well as the later ones.
func TestTraceContinuedWithoutProvider(t *testing.T) {
	e := newEnv(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var msgs []*nats.Msg
	for i := range 5 {
		m := sdktest.Migration(fmt.Sprintf("untraced%d", i), sdktest.CitizenID(i), 1, beijing, nangang)
		msgs = append(msgs, sdktest.Msg(sdktest.Subject("pop", m, ""), m, fmt.Sprintf("00-%s-%016x-01", traceID, i+1)))
	}
	sdktest.Publish(t, e.js, msgs...)
	var mu sync.Mutex
	got := map[string]string{} // change id → trace id/parent span id in the handler's context
	run(t, sdk.Config{Name: "untraced", URL: e.srv.URL(), Filters: siFilters, TracerProvider: tracenoop.NewTracerProvider(),
		Start: sdk.Start{Policy: sdk.StartAll},
		Handler: func(ctx context.Context, d *sdk.Delivery) error {
			sc := trace.SpanContextFromContext(ctx)
			mu.Lock()
			got[d.ChangeID] = sc.TraceID().String() + "/" + sc.SpanID().String()
			mu.Unlock()
			return nil
		}})
	waitFor(t, "handled", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(msgs) })
	for i := range msgs {
		id := fmt.Sprintf("untraced%d", i)
		if want := fmt.Sprintf("%s/%016x", traceID, i+1); got[id] != want {
			t.Errorf("%s: handler's trace %s, want %s", id, got[id], want)
		}
	}
}

// TestMachineNATS runs against the machine's NATS server (2.9) with a
// stream, subject prefix and dead-letter prefix of its own, so it cannot
// collide with a hub or another test on that server.
func TestMachineNATS(t *testing.T) {
	url := testenv.MachineNATS(t)
	nc, js := sdktest.Connect(t, url)
	t.Logf("server version %s", nc.ConnectedServerVersion())
	tag := strconv.FormatUint(rand.Uint64()%1e12, 36)
	stream, prefix, dlq := "POPTEST_"+tag, "poptest"+tag, "poptestdlq"+tag
	sdktest.CreateStream(t, js, stream, prefix)
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), "DLQ_"+tag) })

	var msgs []*nats.Msg
	want := 0
	for i := 0; i < 200; i++ {
		from, to := daoli, beijing
		switch i % 4 {
		case 1:
			from, to = beijing, nangang
		case 2:
			from, to = saertu, beijing // not Harbin
		case 3:
			from, to = daoli, nangang // within Harbin: matches both filters, handled once
		}
		if i%4 != 2 {
			want++
		}
		n := sdktest.Migration("m"+strconv.Itoa(i), sdktest.CitizenID(i), 1, from, to)
		msgs = append(msgs, sdktest.Msg(sdktest.Subject(prefix, n, ""), n, ""))
	}
	sdktest.Publish(t, js, msgs...)
	// Both ways of serving several filters: one consumer on their cover,
	// and one consumer per filter (which a 2.9 server must support too).
	for _, perFilter := range []bool{false, true} {
		t.Run(fmt.Sprintf("consumer per filter %v", perFilter), func(t *testing.T) {
			rec := newRecorder()
			run(t, sdk.Config{Name: fmt.Sprintf("smoke-%v", perFilter), URL: url, Stream: stream, SubjectPrefix: prefix,
				DeadLetterPrefix: dlq, DeadLetterStream: "DLQ_" + tag, Filters: siFilters, ConsumerPerFilter: perFilter,
				Handler: rec.handle, Start: sdk.Start{Policy: sdk.StartAll}})
			waitFor(t, "all wanted", 20*time.Second, func() bool { return rec.distinct() == want })
			time.Sleep(100 * time.Millisecond)
			if got, d := rec.distinct(), rec.duplicates(); got != want || d != 0 {
				t.Errorf("handled %d (%d duplicates), want %d", got, d, want)
			}
		})
	}
}
