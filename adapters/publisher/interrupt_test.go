package publisher

import (
	"context"
	"errors"
	"testing"
)

// TestInterruptedPublishSaysSo: a publish whose context was cancelled
// (Ctrl-C) returns an error that is context.Canceled, whatever the
// cancelled attempt met on the way (here a broker that refuses
// connections): kafka-go sometimes gives that instead, and a caller
// telling an interruption from a broker's failure (pophub publish's
// report, a department's retry loop) must not depend on the race.
func TestInterruptedPublishSaysSo(t *testing.T) {
	p := newPublisher(t, Config{Brokers: []string{"127.0.0.1:1"}})
	events := population(t, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		_, err := p.Publish(ctx, events...)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Publish with a cancelled context: %v, want context.Canceled", err)
		}
	}
}
