package publisher

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/schemas"
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

// TestClosedConnectionHint: a broker that closes the connection on a
// produce (as one that wants a login or TLS does) gives each event an
// error that says what that most likely means. kafka-go reports it for
// the whole write when the first request fails, and for each message
// when only the produce does; both must carry the hint.
func TestClosedConnectionHint(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, schemas.Topics()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, errors.New("closing the connection"), true
	})
	p := newPublisher(t, Config{Brokers: c.ListenAddrs(), MaxAttempts: 1})
	results, err := p.Publish(context.Background(), population(t, 1)[0])
	if err == nil && results[0].Err == nil {
		t.Fatal("the event was published to a broker that closes every produce")
	}
	if got := results[0].Err; got == nil || !strings.Contains(got.Error(), "does it require TLS or SASL credentials?") {
		t.Errorf("event error %v, want a hint that the broker may require credentials", got)
	} else if !Retriable(got) {
		t.Errorf("event error %v is not retriable; a connection closed may be a connection lost", got)
	}
}
