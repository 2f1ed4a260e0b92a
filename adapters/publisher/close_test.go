package publisher

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/schemas"
)

// TestCloseWaitsForCallsInFlight: a department's shutdown closes the
// publisher (`defer pub.Close()` in main) while a worker is still inside
// Publish. Close used to close the Kafka writer under the call, which
// then failed every event with kafka-go's "io: read/write on closed
// pipe", and returned at once having flushed nothing. Close now waits for
// the call, whose events are all delivered; a call made after Close sends
// nothing, reaches no broker, and says ErrClosed for every event.
func TestCloseWaitsForCallsInFlight(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.Topics()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var closed atomic.Bool
	var afterClose atomic.Int32 // requests the broker got once Close returned
	c.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		if closed.Load() {
			afterClose.Add(1)
		}
		return nil, nil, false
	})
	// The call's first metadata request is held until released (a broker
	// across a slow WAN): the call is in flight meanwhile.
	arrived, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	c.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		first.Do(func() {
			close(arrived)
			c.SleepControl(func() { <-release })
		})
		return nil, nil, false
	})
	p := newPublisher(t, Config{Brokers: c.ListenAddrs()})
	events := population(t, 3)

	type outcome struct {
		results []Result
		err     error
	}
	published := make(chan outcome, 1)
	go func() {
		res, err := p.Publish(context.Background(), events...)
		published <- outcome{res, err}
	}()
	<-arrived
	closeErr := make(chan error, 1)
	go func() { closeErr <- p.Close() }()
	select {
	case err := <-closeErr:
		close(release)
		t.Fatalf("Close returned (%v) while a Publish was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	o := <-published
	if o.err != nil {
		t.Errorf("Publish in flight when Close was called: %v", o.err)
	}
	for i, r := range o.results {
		if r.Err != nil {
			t.Fatalf("event %d of the call in flight: %v", i, r.Err)
		}
	}
	if err := <-closeErr; err != nil {
		t.Fatalf("Close: %v", err)
	}

	closed.Store(true)
	results, err := p.Publish(context.Background(), events[:5]...)
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: error %v, want ErrClosed", err)
	}
	for i, r := range results {
		if !errors.Is(r.Err, ErrClosed) || r.ID != events[i].ID {
			t.Errorf("Publish after Close: result %d is %+v, want ErrClosed for event %s", i, r, events[i].ID)
		}
	}
	if rep, err := p.PublishJSONL(context.Background(), strings.NewReader("{}\n")); !errors.Is(err, ErrClosed) || rep.Read != 0 {
		t.Errorf("PublishJSONL after Close: %+v, %v; want ErrClosed and nothing read", rep, err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	if n := afterClose.Load(); n != 0 {
		t.Errorf("the broker got %d requests from calls made after Close", n)
	}
	closed.Store(false)

	// What the call in flight sent is all on the brokers.
	topics := map[string]bool{}
	for _, ev := range events {
		topics[schemas.Topic(ev.Source)] = true
	}
	var names []string
	for topic := range topics {
		names = append(names, topic)
	}
	if got := consume(t, c.ListenAddrs()[0], names, len(events)); len(got) != len(events) {
		t.Errorf("%d records on the brokers, want the %d of the call in flight", len(got), len(events))
	}
}

// TestCloseAmidConcurrentPublishes: workers keep publishing while another
// goroutine closes the publisher. Each event is either delivered or
// refused with ErrClosed, never failed by the closed writer underneath.
func TestCloseAmidConcurrentPublishes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.Topics()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := newPublisher(t, Config{Brokers: c.ListenAddrs()})
	events := population(t, 3)
	var wg sync.WaitGroup
	var delivered, refused atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for round := 0; ; round++ {
				i := (w*7 + round) % len(events)
				results, _ := p.Publish(context.Background(), events[i:min(i+4, len(events))]...)
				for _, r := range results {
					switch {
					case r.Err == nil:
						delivered.Add(1)
					case errors.Is(r.Err, ErrClosed):
						refused.Add(1)
					default:
						t.Errorf("event %s: %v; want it delivered or refused with ErrClosed", r.ID, r.Err)
						return
					}
				}
				if len(results) > 0 && errors.Is(results[0].Err, ErrClosed) {
					return
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	if delivered.Load() == 0 || refused.Load() == 0 {
		t.Errorf("%d events delivered and %d refused as closed; want some of each", delivered.Load(), refused.Load())
	}
}
