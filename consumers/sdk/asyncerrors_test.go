package sdk

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestAsyncErrors: the SDK's own connection keeps the expected refusal of
// the consumer list request out of standard error and the error log (its
// warning is checkLeftoverConsumers'), and still reports every other
// asynchronous error: at error level to a Logger the caller gave, else,
// as nats.go does by default, on standard error.
func TestAsyncErrors(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "si", Password: "si", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"allowed"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	const list, other, sentinel = "$JS.API.CONSUMER.LIST.POP", "pop.forbidden", "sentinel"
	tests := []struct {
		name     string
		logger   bool
		subject  string
		reported bool // at error level with a Logger, on standard error without
	}{
		{"list refused, with a Logger", true, list, false},
		{"list refused, without a Logger", false, list, false},
		{"other subject refused, with a Logger", true, other, true},
		{"other subject refused, without a Logger", false, other, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			cfg := Config{Name: "si", URL: srv.ClientURL(), User: "si", Password: "si",
				Filters: []Filter{{Kind: Deaths, Region: "2301"}}, Handler: func(context.Context, *Delivery) error { return nil }}
			if tt.logger {
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			stderr, restore := captureStderr(t)
			defer restore()
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			out := &logs
			if !tt.logger {
				out = stderr
			}
			// The handler takes the errors in order: once the sentinel's
			// refusal is reported, the subject's was handled.
			for _, subj := range []string{tt.subject, sentinel} {
				if err := s.nc.Publish(subj, nil); err != nil {
					t.Fatal(err)
				}
				if err := s.nc.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), sentinel); {
				if time.Now().After(deadline) {
					t.Fatalf("the sentinel's refusal was not reported; logs:\n%s\nstandard error:\n%s", logs.String(), stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			var reported bool
			for line := range strings.Lines(out.String()) {
				if strings.Contains(line, tt.subject) && (!tt.logger || strings.Contains(line, "level=ERROR")) {
					reported = true
				}
			}
			if reported != tt.reported {
				t.Errorf("refusal of %s reported: %t, want %t; logs:\n%s\nstandard error:\n%s", tt.subject, reported, tt.reported, logs.String(), stderr.String())
			}
			if tt.logger && stderr.String() != "" {
				t.Errorf("standard error got %q with a Logger, want nothing", stderr.String())
			}
		})
	}
}

// syncBuffer is a buffer written and read from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureStderr redirects os.Stderr, where nats.go's default error
// handler writes, into out until restore (or the cleanup) puts it back.
// Not for parallel tests: os.Stderr is the process's.
func captureStderr(t testing.TB) (out *syncBuffer, restore func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	out = &syncBuffer{}
	copied := make(chan struct{})
	go func() {
		io.Copy(out, r)
		close(copied)
	}()
	restore = sync.OnceFunc(func() {
		os.Stderr = old
		w.Close()
		<-copied
		r.Close()
	})
	t.Cleanup(restore)
	return out, restore
}

// CaptureStderr is captureStderr for the sdk_test package: the returned
// function restores os.Stderr and returns what was written to it.
func CaptureStderr(t testing.TB) func() string {
	out, restore := captureStderr(t)
	return func() string {
		restore()
		return out.String()
	}
}
