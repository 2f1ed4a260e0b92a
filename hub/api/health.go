package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
)

// Health is the body of /healthz and /readyz. Checks maps each readiness
// check's name to "ok" or its error text.
type Health struct {
	Status string            `json:"status"` // "ok" or "unavailable"
	Checks map[string]string `json:"checks,omitempty"`
}

// healthz answers liveness: the process serves HTTP.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, Health{Status: "ok"})
}

// readyz runs every readiness check concurrently, each under ReadyTimeout,
// and answers 200 when all pass, 503 otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	started := time.Now()
	results := make([]error, len(s.cfg.Ready))
	var wg sync.WaitGroup
	for i, c := range s.cfg.Ready {
		wg.Go(func() { results[i] = s.probe(r.Context(), c) })
	}
	wg.Wait()

	h := Health{Status: "ok", Checks: make(map[string]string, len(results))}
	status := http.StatusOK
	for i, err := range results {
		name := s.cfg.Ready[i].Name
		if err == nil {
			h.Checks[name] = "ok"
			continue
		}
		h.Status, status = "unavailable", http.StatusServiceUnavailable
		h.Checks[name] = citizenid.MaskText(err.Error())
	}
	s.ready.log(r.Context(), s.cfg.Logger, s.cfg.Ready, results, started, time.Now())
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, status, h)
}

// stillFailingEvery is how often a readiness check that keeps failing is
// logged again.
const stillFailingEvery = 5 * time.Minute

// readyLog logs the readiness checks' conditions, not their probes: a
// check that starts failing once at warn (again every stillFailingEvery
// while it fails), and once at info when it passes again. Probes come
// from kubelets, load balancers and anyone who can reach the port,
// without credentials: one line per probe would flood the log, and
// anyone could write them.
type readyLog struct {
	mu      sync.Mutex
	failing map[string]*failingCheck
	// changed is, per check, when the probe that last changed its
	// condition started: a probe that started before it answers for
	// an older condition and is not logged.
	changed map[string]time.Time
}

type failingCheck struct {
	since, logged time.Time
}

// log logs what the results of a probe that started at started and
// ended at now change. Probes overlap (a kubelet and a load balancer,
// each waiting up to ReadyTimeout on a hung dependency): a result from a
// probe that started before the one that last changed a check's
// condition speaks of an older condition, and is left out. An outage
// counts from the start of the probe that found it.
func (l *readyLog) log(ctx context.Context, log *slog.Logger, checks []Check, results []error, started, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = map[string]time.Time{}
	}
	for i, err := range results {
		name := checks[i].Name
		if started.Before(l.changed[name]) {
			continue // a probe older than the last change of condition
		}
		f := l.failing[name]
		if (err == nil) != (f == nil) {
			l.changed[name] = started
		}
		switch {
		case err == nil && f != nil:
			delete(l.failing, name)
			log.LogAttrs(ctx, slog.LevelInfo, "readiness check passes again",
				slog.String("check", name), slog.Duration("down_for", now.Sub(f.since).Round(time.Second)))
		case err != nil && f == nil:
			if l.failing == nil {
				l.failing = map[string]*failingCheck{}
			}
			l.failing[name] = &failingCheck{since: started, logged: now}
			log.LogAttrs(ctx, slog.LevelWarn, "readiness check failed",
				slog.String("check", name), slog.String("err", citizenid.MaskText(err.Error())))
		case err != nil && now.Sub(f.logged) >= stillFailingEvery:
			f.logged = now
			log.LogAttrs(ctx, slog.LevelWarn, "readiness check still failing",
				slog.String("check", name), slog.Duration("down_for", now.Sub(f.since).Round(time.Second)),
				slog.String("err", citizenid.MaskText(err.Error())))
		}
	}
}

// probe runs one check under the timeout, turning a panic into an error.
func (s *Server) probe(ctx context.Context, c Check) (err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("probing %s: panic: %v", c.Name, v)
		}
	}()
	err = c.Probe(ctx)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %v", s.cfg.ReadyTimeout)
	}
	return err
}
