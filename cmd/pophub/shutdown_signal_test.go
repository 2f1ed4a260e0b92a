package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/gateway"
	"github.com/pophub/pophub/internal/testenv"
)

// TestSIGTERMWithRequestInFlightExitsCleanly stops `pophub dev` with
// SIGTERM while HTTP requests are in flight, as on every rolling
// restart: a department's upload still arriving (the gateway allows a
// body a minute, --http-read-timeout), and none. The hub must stop well
// within a supervisor's 30 s, and a stop asked for is a clean stop:
// exit status 0, whatever a client was doing. A non-zero status marks
// the unit failed (systemd) and is counted as a crash.
func TestSIGTERMWithRequestInFlightExitsCleanly(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		name     string
		inFlight bool
	}{
		{name: "no request in flight"},
		{name: "a gateway upload in flight", inFlight: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, addr := startDevWithGateway(t, bin)
			if tt.inFlight {
				trickleUpload(t, addr)
				time.Sleep(500 * time.Millisecond)
			}
			start := time.Now()
			err := c.stop()
			took := time.Since(start)
			var exit *exec.ExitError
			code := 0
			if err != nil {
				code = -1
				if errors.As(err, &exit) {
					code = exit.ExitCode()
				}
			}
			t.Logf("stopped after %v, exit status %d", took.Round(time.Millisecond), code)
			if tt.inFlight && !strings.Contains(c.output(), "cut off without an answer") {
				t.Errorf("the log does not say a request was cut off:\n%s", c.output())
			}
			if code != 0 {
				out := c.output()
				if i := strings.Index(out, "shutting down"); i >= 0 {
					out = out[i:]
				}
				t.Errorf("SIGTERM with %s: exit status %d (%v), want 0; log from the stop:\n%s", tt.name, code, err, out)
			}
		})
	}
}

// startDevWithGateway starts `pophub dev` from bin with the gateway on for
// public_security (token ps-token), and returns it once it serves HTTP,
// with its HTTP address.
func startDevWithGateway(t *testing.T, bin string) (*child, string) {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - source: public_security\n    sha256: "+gateway.HashToken("ps-token")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	c := startChild(t, bin, "dev", "--data", filepath.Join(dir, "data"), "--kafka", freeAddr(t), "--nats", freeAddr(t),
		"--http", addr, "--partitions", "1", "--gateway-tokens", tokens)
	waitServing(t, c, addr)
	return c, addr
}

// blackHole accepts TCP connections and never answers on them, as a
// server whose host froze does; it returns its address.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestSIGTERMWhileStarting stops `pophub serve` with SIGTERM while it is
// still starting, waiting for a dependency that does not answer. A stop
// during start-up is asked for and must end promptly; nothing was
// started, so nothing is cut off.
func TestSIGTERMWhileStarting(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		name string
		args func(t *testing.T) []string
	}{
		{name: "postgres silent", args: func(t *testing.T) []string {
			return []string{"--postgres", "postgres://postgres@" + blackHole(t) + "/test", "--kafka", blackHole(t), "--nats", "nats://" + blackHole(t)}
		}},
		{name: "kafka silent", args: func(t *testing.T) []string {
			return []string{"--postgres", testenv.PostgresURL(), "--postgres-schema", testenv.Schema(t), "--kafka", blackHole(t), "--nats", "nats://" + blackHole(t)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := freeAddr(t)
			args := append([]string{"serve", "--http", addr}, tt.args(t)...)
			c := startChild(t, bin, args...)
			time.Sleep(3 * time.Second)
			if done, err := c.exited(); done {
				t.Fatalf("serve ended by itself before the stop (%v):\n%s", err, c.output())
			}
			start := time.Now()
			err := c.stop()
			took := time.Since(start)
			t.Logf("stopped after %v: %v\n%s", took.Round(time.Millisecond), err, c.output())
			if took > 10*time.Second {
				t.Errorf("SIGTERM while starting with %s: the process took %v to end, want a prompt stop", tt.name, took.Round(time.Millisecond))
			}
			if err != nil {
				t.Errorf("SIGTERM while starting with %s: %v, want exit status 0 (a stop asked for)", tt.name, err)
			}
		})
	}
}

// TestSecondSIGTERMEndsAtOnce: a stop waiting for something (here a
// request in flight, given up to 5 s) ends at once on a second SIGTERM or
// Ctrl-C, as an operator who pressed it twice means; before, every
// signal after the first was caught and ignored.
func TestSecondSIGTERMEndsAtOnce(t *testing.T) {
	bin := buildBinary(t)
	c, addr := startDevWithGateway(t, bin)
	trickleUpload(t, addr)
	time.Sleep(500 * time.Millisecond)
	c.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond) // the stop waits for the request
	start := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		t.Logf("ended %v after the second SIGTERM: %v", time.Since(start).Round(time.Millisecond), c.err)
	case <-time.After(3 * time.Second):
		t.Errorf("still running 3 s after a second SIGTERM")
	}
}
