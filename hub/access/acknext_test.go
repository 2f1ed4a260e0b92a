package access

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas"
)

// TestNATSAckNext: acknowledging with +NXT {"batch":3} (the
// JetStream protocol's ack-and-pull-next, what nats.js's msg.next() and
// other clients send) gets the next three notifications, as a pull
// request does; the acks are a service import of the hub's account.
func TestNATSAckNext(t *testing.T) {
	onEachNATSServer(t, func(t *testing.T, p *Policy, srv string) {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		hjs, _ := jetstream.New(connect(t, srv, p, "hub", nil))
		if _, err := hjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{schemas.StreamSubjects}}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := hjs.Publish(ctx, schemas.DeathSubject("230102001001"), fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				t.Fatal(err)
			}
		}
		nc := connect(t, srv, p, "si-harbin", nil)
		js, _ := jetstream.New(nc)
		cons, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{
			Durable: "si-harbin", FilterSubject: "pop.death.23.2301.*", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		b, err := cons.Fetch(1)
		if err != nil {
			t.Fatal(err)
		}
		var first jetstream.Msg
		for m := range b.Messages() {
			first = m
		}
		if first == nil {
			t.Fatal("no first message")
		}
		inbox := nc.NewInbox()
		sub, _ := nc.SubscribeSync(inbox)
		if err := nc.PublishMsg(&nats.Msg{Subject: first.Reply(), Reply: inbox, Data: []byte(`+NXT {"batch":3}`)}); err != nil {
			t.Fatal(err)
		}
		got := 0
		for {
			if _, err := sub.NextMsg(2 * time.Second); err != nil {
				break
			}
			got++
		}
		if got != 3 {
			ci, _ := cons.Info(ctx)
			t.Errorf("+NXT {\"batch\":3} brought %d notifications, want 3 (consumer delivered %d, ack pending %d)", got, ci.Delivered.Consumer, ci.NumAckPending)
		}
	})
}
