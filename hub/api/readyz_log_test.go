package api_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/internal/testenv"
)

// TestReadyzLogsConditionsNotProbes: a dependency that is down is one
// condition however often /readyz is probed (a kubelet every 10 s, a load
// balancer every 2 s, anyone who can reach the port): it is logged once
// when it starts failing, and once when it passes again. Every probe's
// answer still names it.
func TestReadyzLogsConditionsNotProbes(t *testing.T) {
	tests := []struct {
		name             string
		downProbes       int
		upProbes         int
		wantFail, wantOK int
	}{
		{"never down", 0, 5, 0, 0},
		{"down for 100 probes, then up", 100, 3, 1, 1},
		{"still down", 10, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var down atomic.Bool
			nats := api.Check{Name: "nats", Probe: func(context.Context) error {
				if down.Load() {
					return errors.New("not connected to NATS")
				}
				return nil
			}}
			var logs testenv.LogBuffer
			h := api.New(api.Config{Store: &memReader{}, Ready: []api.Check{nats}, ReadyTimeout: time.Second,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}).Handler()
			down.Store(true)
			for range tt.downProbes {
				if rec := do(t, h, "GET", "/readyz", nil); rec.Code != 503 || !strings.Contains(rec.Body.String(), "not connected to NATS") {
					t.Fatalf("/readyz while down: %d %s", rec.Code, rec.Body)
				}
			}
			down.Store(false)
			for range tt.upProbes {
				if rec := do(t, h, "GET", "/readyz", nil); rec.Code != 200 {
					t.Fatalf("/readyz while up: %d %s", rec.Code, rec.Body)
				}
			}
			out := logs.String()
			if n := strings.Count(out, `msg="readiness check failed" check=nats err="not connected to NATS"`); n != tt.wantFail {
				t.Errorf("%d probes while down logged the failure %d times, want %d:\n%s", tt.downProbes, n, tt.wantFail, out)
			}
			if n := strings.Count(out, `msg="readiness check passes again" check=nats down_for=`); n != tt.wantOK {
				t.Errorf("the recovery is logged %d times, want %d:\n%s", n, tt.wantOK, out)
			}
		})
	}
}

// TestReadyzIgnoresAStaleProbe: two probers (a kubelet and a
// load balancer). The store hangs, then recovers. A probe that started
// while it hung answers "no answer within" after a probe that started
// after the recovery already logged "passes again": the stale result
// must not log a new outage that never happened.
func TestReadyzIgnoresAStaleProbe(t *testing.T) {
	var hanging atomic.Bool
	store := api.Check{Name: "store", Probe: func(ctx context.Context) error {
		if hanging.Load() {
			<-ctx.Done()
			return errors.New("no answer")
		}
		return nil
	}}
	var logs testenv.LogBuffer
	h := api.New(api.Config{Store: &memReader{}, Ready: []api.Check{store}, ReadyTimeout: 500 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}).Handler()
	hanging.Store(true)
	do(t, h, "GET", "/readyz", nil) // outage starts: logged once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); do(t, h, "GET", "/readyz", nil) }() // started while hanging
	time.Sleep(100 * time.Millisecond)
	hanging.Store(false)            // the store recovers
	do(t, h, "GET", "/readyz", nil) // the other prober: passes again
	wg.Wait()                       // the stale probe times out
	do(t, h, "GET", "/readyz", nil) // the next probe
	out := logs.String()
	if n := strings.Count(out, `msg="readiness check failed"`); n != 1 {
		t.Errorf("one outage logged as %d failures:\n%s", n, out)
	}
	if n := strings.Count(out, `msg="readiness check passes again"`); n != 1 {
		t.Errorf("one recovery logged %d times:\n%s", n, out)
	}
}
