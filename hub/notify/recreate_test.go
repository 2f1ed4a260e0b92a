package notify

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestStreamCreatedAgainKeepsItsLimits: an operator bounded the
// notification stream with the NATS tools (nats stream edit --max-bytes,
// --max-age), which the hub keeps across its restarts; when the stream
// goes missing while the hub runs, the relay creates it again "with the
// same settings": the bounds the operator set included, or the stream
// grows without bound from then on.
func TestStreamCreatedAgainKeepsItsLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBytes int64
		maxAge   time.Duration
		maxMsgs  int64
	}{
		{"size", 1 << 30, 0, 0},
		{"age", 0, 30 * 24 * time.Hour, 0},
		{"messages", 0, 0, 1_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			js := connect(t, natsServer(t, 0).ClientURL())
			stream := StreamConfig{} // pophub serve without --stream-max-age
			if err := EnsureStream(ctx, js, stream); err != nil {
				t.Fatal(err)
			}
			// The operator's edit.
			cfg := streamConfig(t, js, schemas.StreamName)
			cfg.MaxBytes, cfg.MaxAge, cfg.MaxMsgs = tc.maxBytes, tc.maxAge, tc.maxMsgs
			if tc.maxBytes == 0 {
				cfg.MaxBytes = -1
			}
			if tc.maxMsgs == 0 {
				cfg.MaxMsgs = -1
			}
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			// A hub restart keeps them (README: "An existing stream keeps
			// the limits an operator set").
			if err := EnsureStream(ctx, js, stream); err != nil {
				t.Fatal(err)
			}
			o := newOutbox(10)
			var logs testenv.LogBuffer
			r := New(Config{PollInterval: time.Hour, AckTimeout: 2 * time.Second, RepublishWindow: time.Minute, Stream: stream,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}, js, o)
			runRelay(t, r)
			waitDone(t, o, 10)
			if err := js.DeleteStream(ctx, schemas.StreamName); err != nil {
				t.Fatal(err)
			}
			waitWithin(t, 10*time.Second, "the stream created again", func() bool { return r.Ping(ctx) == nil })
			got := streamConfig(t, js, schemas.StreamName)
			if (tc.maxBytes > 0 && got.MaxBytes != tc.maxBytes) || got.MaxAge != tc.maxAge || (tc.maxMsgs > 0 && got.MaxMsgs != tc.maxMsgs) {
				t.Errorf("stream created again with max_bytes %d, max_age %v, max_msgs %d; the operator had set max_bytes %d, max_age %v, max_msgs %d",
					got.MaxBytes, got.MaxAge, got.MaxMsgs, tc.maxBytes, tc.maxAge, tc.maxMsgs)
			}
			if !strings.Contains(logs.String(), "creating it again with the limits it had") {
				t.Errorf("the re-creation does not say it kept the limits:\n%s", logs.String())
			}
		})
	}
}
