package telemetry_test

import (
	"errors"
	"log"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/pophub/pophub/hub/telemetry"
)

// TestOtelErrorsGoThroughTheLogger: with RouteErrors, as pophub's commands
// set it, a failed span export reaches neither standard error nor the log
// at warn once per batch (the span pipeline reports it, rate-limited);
// another otel error is logged at warn, each text at most once a minute.
func TestOtelErrorsGoThroughTheLogger(t *testing.T) {
	var std syncBuffer
	log.SetOutput(&std)
	t.Cleanup(func() {
		log.SetOutput(os.Stderr)
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Print(err) }))
	})
	// Exports on the batcher's timer, as in a running hub, not through
	// ForceFlush, which returns the error instead of handing it to otel.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")

	rc := newReceiver(t, http.StatusBadRequest, nil)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	telemetry.RouteErrors(logger)
	tel := setup(t, telemetry.Config{OTLPEndpoint: rc.URL, Logger: logger})
	for range 5 {
		endSpans(tel, 10)
		time.Sleep(300 * time.Millisecond)
	}
	if std.String() != "" {
		t.Errorf("failed exports wrote past the logger (standard log, standard error):\n%s", std.String())
	}
	if n := strings.Count(logs.String(), `msg="trace spans dropped`); n != 1 {
		t.Errorf("5 failed exports in 1.5 s logged %d drop lines, want 1 (at most every 10 s):\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), `level=WARN msg="telemetry error"`) {
		t.Errorf("a failed export was logged again as a telemetry error:\n%s", logs.String())
	}

	otel.Handle(errors.New("metric callback failed"))
	otel.Handle(errors.New("metric callback failed"))
	otel.Handle(errors.New("another failure"))
	if n := strings.Count(logs.String(), `level=WARN msg="telemetry error" err="metric callback failed"`); n != 1 {
		t.Errorf("an otel error repeated at once was logged %d times, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `level=WARN msg="telemetry error" err="another failure"`) {
		t.Errorf("another otel error was not logged:\n%s", logs.String())
	}
}

// TestHeldBackDropsAreLogged: drops the rate limit holds back are logged
// once it has passed, without waiting for another drop: the log accounts
// for the last burst of a collector's outage, as the metric does.
func TestHeldBackDropsAreLogged(t *testing.T) {
	defer telemetry.SetDropLogEvery(300 * time.Millisecond)()
	rc := newReceiver(t, http.StatusBadRequest, nil)
	var logs syncBuffer
	tel := setup(t, telemetry.Config{OTLPEndpoint: rc.URL, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	endSpans(tel, 10)
	flush(t, tel) // logged at once
	endSpans(tel, 20)
	flush(t, tel) // held back by the rate limit
	total := func() int {
		n := 0
		for _, m := range regexp.MustCompile(`export_failed=(\d+)`).FindAllStringSubmatch(logs.String(), -1) {
			v, _ := strconv.Atoi(m[1])
			n += v
		}
		return n
	}
	if got := total(); got != 10 {
		t.Fatalf("before the rate limit passed the log accounts for %d dropped spans, want 10:\n%s", got, logs.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for total() != 30 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := total(); got != 30 {
		t.Errorf("after the rate limit passed the log accounts for %d of 30 dropped spans:\n%s", got, logs.String())
	}
}
