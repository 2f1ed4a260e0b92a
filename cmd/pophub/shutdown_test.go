package main

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestShutdownWithDependencyHung stops `pophub serve` (Main.Close, what
// SIGTERM runs) while one of its dependencies has gone silent: every
// open connection to it carries nothing more and new ones are refused.
// A supervisor sends SIGKILL 30 s after SIGTERM (Kubernetes' default), so
// the stop must end well within that, whichever dependency hangs.
func TestShutdownWithDependencyHung(t *testing.T) {
	const limit = 20 * time.Second // "well within" the 30 s before SIGKILL
	tests := []struct {
		name string
		hang string // "postgres", "nats", "kafka"
		// midBatch: an event arrives after the dependency went silent,
		// so a batch is being applied when the stop comes.
		midBatch bool
	}{
		{name: "postgres silent under a batch", hang: "postgres", midBatch: true},
		{name: "nats silent", hang: "nats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pgURL, pgProxy := testenv.PostgresThroughProxy(t)
			_, natsProxy := natsThroughProxy(t)
			k := startBroker(t, embedded.KafkaConfig{})
			release := make(chan struct{})
			t.Cleanup(func() {
				select {
				case <-release:
				default:
					close(release)
				}
				k.Close()
			})
			m := startServe(t, Config{KafkaBrokers: []string{k.Addr()}, NATSURL: "nats://" + natsProxy.Addr(),
				PostgresURL: pgURL, PostgresSchema: testenv.Schema(t)})
			// Some work done: an event applied and its notification out.
			msgs := scenario(t)[:5]
			produceAll(t, m.Brokers(), msgs)
			waitCaughtUp(t, m.Main, len(msgs))

			switch tt.hang {
			case "postgres":
				pgProxy.SetDown(true)
				requireCut(t, "postgres stall", pgProxy.Stall())
			case "nats":
				natsProxy.SetDown(true)
				requireCut(t, "nats stall", natsProxy.Stall())
			case "kafka":
				cl := k.Cluster()
				cl.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
					cl.KeepControl()
					cl.SleepControl(func() { <-release })
					return nil, errors.New("broker gone"), true
				})
			}
			if tt.midBatch {
				produceAll(t, m.Brokers(), scenario(t)[5:6])
			}
			// A moment for the hub to notice (or not).
			time.Sleep(2 * time.Second)

			start := time.Now()
			closed := make(chan error, 1)
			go func() { closed <- m.Close() }()
			select {
			case err := <-closed:
				took := time.Since(start)
				t.Logf("Close returned after %v: %v", took.Round(time.Millisecond), err)
				if took > limit {
					t.Errorf("stopping the hub with %s silent took %v, want under %v (SIGKILL comes at 30 s)", tt.hang, took.Round(time.Millisecond), limit)
				}
			case <-time.After(90 * time.Second):
				t.Errorf("stopping the hub with %s silent: Close has not returned after 90s (SIGKILL comes at 30 s)", tt.hang)
			}
		})
	}
}

// TestShutdownUnderPolicyWithPostgresSilent is the production set-up
// (an access policy: the audit trail in the store's PostgreSQL schema)
// stopped while PostgreSQL has gone silent with a batch being applied and
// a read's audit record not yet written. Every step of the stop waits
// for PostgreSQL in turn: the batch's grace period (10 s), the audit
// log's flush (10 s), then the pool's connections (pgconn's 15 s close
// timeout), which add up to 25 s or more (36 s in one run here) of the
// 30 s after which a supervisor sends SIGKILL.
func TestShutdownUnderPolicyWithPostgresSilent(t *testing.T) {
	const limit = 20 * time.Second // "well within" the 30 s before SIGKILL
	pgURL, pgProxy := testenv.PostgresThroughProxy(t)
	cfg := Config{Embedded: true, DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Partitions: 2, NATSSync: time.Second, PolicyFile: examplePolicy, NATSPassword: access.DemoSecret("nats:hub"),
		Secrets: access.DemoResolver, PostgresURL: pgURL, PostgresSchema: testenv.Schema(t)}
	m := &Main{Config: cfg, Logger: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("starting hub: %v", err)
	}
	closed := make(chan error, 1)
	var closeOnce sync.Once
	closeHub := func() { closeOnce.Do(func() { go func() { closed <- m.Close() }() }) }
	t.Cleanup(func() { closeHub(); <-closed })

	msgs := scenario(t)
	ps := msgs[:2] // two public-security registrations
	if err := writeAs(t, m, "public_security", schemas.Topic(schemas.PublicSecurity), ps...); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, m, len(ps))

	pgProxy.SetDown(true)
	requireCut(t, "postgres stall", pgProxy.Stall())
	// A batch in flight, and a read whose audit record waits.
	if err := writeAs(t, m, "public_security", schemas.Topic(schemas.PublicSecurity), msgs[7]); err != nil {
		t.Fatal(err)
	}
	go func() {
		c := &http.Client{Timeout: 3 * time.Second}
		req, _ := http.NewRequest(http.MethodGet, m.HTTPURL()+"/v1/persons/"+string(personID(t, 1)), nil)
		req.Header.Set("Authorization", "Bearer "+access.DemoSecret("token:si-harbin"))
		req.Header.Set("X-Purpose", "benefit termination on death")
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(2 * time.Second)

	start := time.Now()
	closeHub()
	select {
	case err := <-closed:
		closed <- err
		took := time.Since(start)
		t.Logf("Close returned after %v: %v", took.Round(time.Millisecond), err)
		if took > limit {
			t.Errorf("stopping the hub (with --policy) while PostgreSQL is silent took %v, want under %v: SIGKILL comes at 30 s", took.Round(time.Millisecond), limit)
		}
	case <-time.After(90 * time.Second):
		t.Errorf("stopping the hub (with --policy) while PostgreSQL is silent: Close has not returned after 90s")
	}
}

// TestReadyzTurnsNotReadyBeforeListenerCloses: behind a Kubernetes
// Service or a load balancer, a stopping hub leaves the endpoints only
// once its readiness probe fails. With --shutdown-delay it answers 503 on
// /readyz and goes on serving for that long before its listener closes;
// before, the listener closed at the stop's first instant, and requests
// routed to it meanwhile were refused.
func TestReadyzTurnsNotReadyBeforeListenerCloses(t *testing.T) {
	m := startHub(t, "memdb")
	url := m.HTTPURL() + "/readyz"
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	status := func() (int, error) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	waitFor(t, time.Minute, "/readyz 200", func() bool { code, err := status(); return err == nil && code == http.StatusOK })
	m.Config.ShutdownDelay = time.Second
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	time.Sleep(100 * time.Millisecond)
	if code, err := status(); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("/readyz 100 ms into the stop: %d, %v; want 503 while the hub still serves", code, err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := status(); err == nil {
		t.Error("/readyz still answers after the stop")
	}
}
