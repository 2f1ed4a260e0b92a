package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
)

// TestReadyLogRepeatsALastingFailure: a check failing for a long time is
// logged again every stillFailingEvery with how long it has been down, so
// that a log read from the middle of an outage still shows it.
func TestReadyLogRepeatsALastingFailure(t *testing.T) {
	checks := []Check{{Name: "store"}, {Name: "nats"}}
	down := errors.New("connection refused")
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	steps := []struct {
		after   time.Duration
		results []error
		want    []string // lines logged by this probe
	}{
		{0, []error{down, nil}, []string{`level=WARN msg="readiness check failed" check=store err="connection refused"`}},
		{time.Minute, []error{down, nil}, nil},
		{stillFailingEvery, []error{down, down}, []string{
			`level=WARN msg="readiness check still failing" check=store down_for=5m0s err="connection refused"`,
			`level=WARN msg="readiness check failed" check=nats err="connection refused"`}},
		{stillFailingEvery + time.Minute, []error{down, down}, nil},
		{2*stillFailingEvery + time.Second, []error{nil, down}, []string{
			`level=INFO msg="readiness check passes again" check=store down_for=10m1s`,
			`level=WARN msg="readiness check still failing" check=nats down_for=5m1s err="connection refused"`}},
		{2*stillFailingEvery + 2*time.Second, []error{down, nil}, []string{
			`level=WARN msg="readiness check failed" check=store err="connection refused"`,
			`level=INFO msg="readiness check passes again" check=nats down_for=5m2s`}},
	}
	var l readyLog
	for _, st := range steps {
		var buf testenv.LogBuffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
		l.log(context.Background(), log, checks, st.results, t0.Add(st.after), t0.Add(st.after))
		var got []string
		if s := strings.TrimSpace(buf.String()); s != "" {
			got = strings.Split(s, "\n")
		}
		if strings.Join(got, "\n") != strings.Join(st.want, "\n") {
			t.Errorf("after %v: logged\n%s\nwant\n%s", st.after, strings.Join(got, "\n"), strings.Join(st.want, "\n"))
		}
	}
}
