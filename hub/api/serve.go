package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
)

// ListenAndServe listens on addr (host:port) and runs the API until ctx
// ends; see Run.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	return s.Run(ctx, ln)
}

// Run serves the API on ln until ctx ends, then shuts down gracefully:
// it stops accepting, lets requests in flight finish for up to
// Config.ShutdownTimeout, and closes ln. It returns nil after a stop, also
// one that had to cut requests off (it logs how many connections), and an
// error if serving failed. For TLS, pass a tls.NewListener.
//
// Request contexts are not cancelled when ctx ends, so that requests in
// flight can finish during the shutdown.
//
// Every server of the API is built here, so that each has the same
// timeouts and an ErrorLog that masks citizen IDs in net/http's own
// messages.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	var inFlight activeConns
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(citizenid.MaskingHandler(s.cfg.Logger.Handler()), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnState:         inFlight.track,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// A stop asked for is a clean stop, whatever a client was doing:
		// the requests still running (an upload the gateway allows a
		// minute, a slow reader) are cut off and get no answer, so none
		// is taken as done, and their clients send them again.
		cut := inFlight.count()
		_ = srv.Close()
		<-errc
		s.cfg.Logger.Warn("HTTP: requests still in flight when the stop's time ran out were cut off without an answer; their clients send them again",
			"connections", cut, "shutdown_timeout", s.cfg.ShutdownTimeout)
		return nil
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	return nil
}

// activeConns counts the connections serving a request, for the log of a
// stop that cuts them off.
type activeConns struct {
	mu     sync.Mutex
	active map[net.Conn]bool
}

// track is an http.Server's ConnState hook.
func (a *activeConns) track(c net.Conn, st http.ConnState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st == http.StateActive {
		if a.active == nil {
			a.active = map[net.Conn]bool{}
		}
		a.active[c] = true
		return
	}
	delete(a.active, c)
}

func (a *activeConns) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.active)
}
