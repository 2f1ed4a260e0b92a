package ingest

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
)

// TestRetryLogsRecovery: an outage the batch loop waits out (PostgreSQL
// down, the DLQ topic refusing writes, commits failing) is logged while it
// lasts, each attempt with its cause, and its end once, or the on-call
// engineer cannot tell from the log whether and when ingest went on.
func TestRetryLogsRecovery(t *testing.T) {
	tests := []struct {
		name     string
		failures int
		want     []string // patterns of the lines, in order
	}{
		{"no failure: nothing to say", 0, nil},
		{"one failure", 1, []string{
			`level=WARN msg=retrying op="applying batch" attempt=1 err="connection refused" backoff=50ms`,
			`level=INFO msg=recovered op="applying batch" attempts=2 after=\d+ms`}},
		{"three failures", 3, []string{
			`level=WARN msg=retrying op="applying batch" attempt=1 .*`,
			`level=WARN msg=retrying op="applying batch" attempt=2 .*backoff=100ms`,
			`level=WARN msg=retrying op="applying batch" attempt=3 .*backoff=200ms`,
			`level=INFO msg=recovered op="applying batch" attempts=4 after=\d+ms`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf testenv.LogBuffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}))
			n := 0
			err := retry(context.Background(), log, "applying batch", func() error {
				if n < tt.failures {
					n++
					return errors.New("connection refused")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			if s := strings.TrimSpace(buf.String()); s != "" {
				lines = strings.Split(s, "\n")
			}
			if len(lines) != len(tt.want) {
				t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(tt.want), buf.String())
			}
			for i, pat := range tt.want {
				if !regexp.MustCompile("^" + pat + "$").MatchString(lines[i]) {
					t.Errorf("line %d = %s\nwant %s", i+1, lines[i], pat)
				}
			}
		})
	}
}
