package access

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas"
)

// publishAll publishes n messages of body to subject as the hub, waiting
// for JetStream to take them.
func publishAll(ctx context.Context, t *testing.T, js jetstream.JetStream, subject func(i int) string, body []byte, n int) {
	t.Helper()
	for i := range n {
		if _, err := js.PublishAsync(subject(i), body, jetstream.WithMsgID(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("publishing timed out")
			}
		}
	}
}

// TestPushConsumerFlowControl: a subscriber may run its durable consumer
// as a push consumer delivering to its own inbox, with flow control, as
// the JavaScript client and the nats CLI do; its flow-control replies are
// granted, so it gets every notification, not the first 2 MiB and then
// nothing.
func TestPushConsumerFlowControl(t *testing.T) {
	p := examplePolicy(t)
	srv := startNATS(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	hjs, _ := jetstream.New(connect(t, srv, p, "hub", nil))
	if _, err := hjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{schemas.StreamSubjects}}); err != nil {
		t.Fatal(err)
	}
	const total = 6000 // of 500 bytes: 3 MB, past the server's first flow-control request
	body := []byte(`{"change_id":"x","pad":"` + strings.Repeat("p", 450) + `"}`)
	publishAll(ctx, t, hjs, func(int) string { return "pop.death.23.2301.230102" }, body, total)

	errs := make(chan error, 64)
	nc := connect(t, srv, p, "si-harbin", errs)
	inbox := nc.NewInbox()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{
		Durable: "si-harbin", FilterSubject: "pop.death.23.2301.*", AckPolicy: jetstream.AckExplicitPolicy,
		DeliverSubject: inbox, FlowControl: true, IdleHeartbeat: time.Second, MaxAckPending: total,
	}); err != nil {
		t.Fatalf("creating the push consumer: %v", err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		if len(m.Data) == 0 && m.Header.Get("Status") == "100" {
			switch {
			case m.Reply != "": // a flow-control request
				m.Respond(nil)
			case m.Header.Get("Nats-Consumer-Stalled") != "":
				nc.Publish(m.Header.Get("Nats-Consumer-Stalled"), nil)
			}
			return
		}
		m.Ack()
		if got.Add(1) == total {
			close(done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		var violation error
		select {
		case violation = <-errs:
		default:
		}
		t.Fatalf("the push consumer delivered %d of %d notifications (%v)", got.Load(), total, violation)
	}
}

// TestHubWatchesLargeBucket: the eligibility watcher reads its whole
// bucket at start with KeyValue.WatchAll, an ordered push consumer with
// flow control; under a policy it reads a bucket of more than 2 MiB to
// the end (a city's decisions), rather than stalling at the server's
// flow-control request and never starting.
func TestHubWatchesLargeBucket(t *testing.T) {
	p := examplePolicy(t)
	srv := startNATS(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make(chan error, 64)
	hjs, _ := jetstream.New(connect(t, srv, p, "hub", errs))
	kv, err := hjs.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: EligibilityBucket})
	if err != nil {
		t.Fatal(err)
	}
	const total = 12000 // of some 250 bytes with their subjects: 3 MB
	val := []byte(`{"eligible":false,"as_of":"2026-12-06","pad":"` + strings.Repeat("p", 100) + `"}`)
	publishAll(ctx, t, hjs, func(i int) string { return fmt.Sprintf("$KV.%s.heilongjiang_harbin.%064x", EligibilityBucket, i) }, val, total)
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for n := 0; ; {
		select {
		case e := <-w.Updates():
			if e == nil {
				if n != total {
					t.Errorf("the watch gave %d of %d entries", n, total)
				}
				return
			}
			n++
		case <-time.After(30 * time.Second):
			var violation error
			select {
			case violation = <-errs:
			default:
			}
			t.Fatalf("the hub's watch stalled after %d of %d entries (%v)", n, total, violation)
		}
	}
}
