package notify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas"
)

// TestRelayRecoversFromUnansweredPublishes: a server that takes the
// relay's publishes but never acknowledges them (here the stream is gone
// and a plain subscriber takes its subjects; a JetStream whose store
// failed behaves so too) makes every round time out. Readiness says so
// once that has lasted, and once the server answers again every entry is
// published: the publishes given up on do not keep their places among the
// pending ones, which would stall every later publish for good.
func TestRelayRecoversFromUnansweredPublishes(t *testing.T) {
	n := natsServer(t, 0)
	js := connect(t, n.ClientURL())
	ctx := context.Background()
	if err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, schemas.StreamName); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sink, err := nc.Subscribe("pop.>", func(*nats.Msg) {}) // takes them, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	o := newOutbox(7000)
	r := New(Config{BatchSize: 2000, AckTimeout: 200 * time.Millisecond}, js, o)
	r.streamCheckEvery = time.Hour // the stream stays missing until the test creates it
	r.stallAfter = time.Second
	runRelay(t, r)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := r.Ping(ctx)
		if err != nil && strings.Contains(err.Error(), "publishing notifications has failed for") {
			t.Logf("readiness: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ping %v after 30 s of unanswered publishes, want it to say publishing fails", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // more rounds than the pending publishes a context takes (4,000)
	if o.done() != 0 {
		t.Fatalf("%d entries marked published without an acknowledgement", o.done())
	}

	if err := sink.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, o, 7000)
	waitWithin(t, 10*time.Second, "readiness once publishing works", func() bool { return r.Ping(ctx) == nil })
	if ids := streamMsgIDs(t, js, schemas.StreamName); len(ids) != 7000 || hasRepeats(ids) {
		t.Fatalf("stream holds %d messages (repeats: %v), want 7000 once", len(ids), hasRepeats(ids))
	}
}

// TestRelayReadyWhileSomeArePublished: rounds that publish some of their
// notifications while others are refused (here by a full stream)
// keep readiness: the relay is not stalled, and the published ones are
// deleted as in any round. Once nothing but the refused ones is left,
// readiness says publishing fails.
func TestRelayReadyWhileSomeArePublished(t *testing.T) {
	n := natsServer(t, time.Second)
	js := connect(t, n.ClientURL())
	ctx := context.Background()
	if err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	// A stream that takes one message of its subjects and refuses the
	// rest, at the head of every round.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "POX", Subjects: []string{"pox.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	o := newOutboxWithPrefix(10, "pox")
	o.add(20000, "pop")
	r := New(Config{BatchSize: 200, AckTimeout: 300 * time.Millisecond, PollInterval: 10 * time.Millisecond}, js, o)
	r.stallAfter = 100 * time.Millisecond
	runRelay(t, r)
	for o.done() < 20000 {
		if err := r.Ping(ctx); err != nil {
			t.Fatalf("readiness failed while the relay published (%d of 20000): %v", o.done(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if o.kept() == o.done() {
		t.Errorf("all %d published entries kept: rounds that published some never deleted the published ones", o.kept())
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Ping(ctx) == nil {
		if time.Now().After(deadline) {
			t.Fatal("readiness ok while every round fails")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRelayReadinessNamesTheStore: when the outbox cannot be read or
// marked (a memdb log on a full disk, PostgreSQL down) while NATS is
// well, readiness says the store holds notifications up, so that the
// operator is not sent to a healthy NATS.
func TestRelayReadinessNamesTheStore(t *testing.T) {
	n := natsServer(t, 0)
	js := connect(t, n.ClientURL())
	ctx := context.Background()
	if err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	o := newOutbox(10)
	o.fail = 1 << 30
	r := New(Config{}, js, o)
	r.stallAfter = time.Second
	runRelay(t, r)
	var err error
	waitWithin(t, 30*time.Second, "readiness to fail", func() bool { err = r.Ping(ctx); return err != nil })
	if msg := err.Error(); !strings.Contains(msg, "by the store, not by NATS") || !strings.Contains(msg, "store unavailable") {
		t.Fatalf("Ping: %v; want it to name the store's failure, not NATS", err)
	}
}
