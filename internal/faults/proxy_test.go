package faults

import (
	"bufio"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// echoServer echoes every line back until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func dialProxy(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "ping\n" {
		t.Fatalf("echo %q", line)
	}
	return time.Since(start), nil
}

func TestProxy(t *testing.T) {
	p, err := NewProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	t.Run("forwards", func(t *testing.T) {
		c, r := dialProxy(t, p)
		if _, err := roundTrip(t, c, r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("latency", func(t *testing.T) {
		c, r := dialProxy(t, p)
		p.SetLatency(50 * time.Millisecond)
		defer p.SetLatency(0)
		d, err := roundTrip(t, c, r)
		if err != nil {
			t.Fatal(err)
		}
		if d < 100*time.Millisecond {
			t.Fatalf("round trip %v, want at least 100ms", d)
		}
	})
	t.Run("cut", func(t *testing.T) {
		c, r := dialProxy(t, p)
		if _, err := roundTrip(t, c, r); err != nil {
			t.Fatal(err)
		}
		if n := p.Cut(); n < 1 {
			t.Fatalf("cut %d connections", n)
		}
		if _, err := roundTrip(t, c, r); err == nil {
			t.Fatal("connection still works after Cut")
		}
	})
	t.Run("reset", func(t *testing.T) {
		c, r := dialProxy(t, p)
		if _, err := roundTrip(t, c, r); err != nil {
			t.Fatal(err)
		}
		p.Reset()
		_, err := roundTrip(t, c, r)
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("after Reset: %v, want connection reset", err)
		}
	})
	t.Run("stall", func(t *testing.T) {
		c, r := dialProxy(t, p)
		if _, err := roundTrip(t, c, r); err != nil {
			t.Fatal(err)
		}
		if n := p.Stall(); n < 1 {
			t.Fatalf("stalled %d connections", n)
		}
		// The write succeeds; no answer, no error, no close arrives.
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatalf("writing to a stalled connection: %v", err)
		}
		var ne net.Error
		if _, err := r.ReadString('\n'); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("reading a stalled connection: %v, want a timeout", err)
		}
		c2, r2 := dialProxy(t, p)
		if _, err := roundTrip(t, c2, r2); err != nil {
			t.Fatalf("a new connection after Stall: %v", err)
		}
	})
	t.Run("down", func(t *testing.T) {
		p.SetDown(true)
		if c, err := net.Dial("tcp", p.Addr()); err == nil {
			_, err = roundTrip(t, c, bufio.NewReader(c))
			c.Close()
			if err == nil {
				t.Fatal("a new connection works while down")
			}
		}
		p.SetDown(false)
		c, r := dialProxy(t, p)
		if _, err := roundTrip(t, c, r); err != nil {
			t.Fatalf("after down: %v", err)
		}
	})
}
