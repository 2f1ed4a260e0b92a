package watch

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/notify"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestConsumerMadeAgainWhereDecidingStopped: a consumer that went is made
// again so that no change notification goes undecided: on the same
// stream from the first one not acknowledged (a batch returned for
// redelivery included), on a stream created anew from its first.
func TestConsumerMadeAgainWhereDecidingStopped(t *testing.T) {
	ctx := context.Background()
	srv := testenv.NATS(t, embedded.NATSConfig{})
	js := testenv.JetStream(t, srv.ClientURL())
	store, cat := storeAndCatalog(t)
	w, err := New(Config{JS: js, Store: store, Catalog: cat, Policies: []string{"heilongjiang/daqing"}})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		t.Helper()
		for range n {
			if _, err := js.Publish(ctx, "pop.changed.230602.hukou", []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// next fetches one batch of up to n and returns its stream sequences.
	next := func(cons jetstream.Consumer, n int) ([]jetstream.Msg, []uint64) {
		t.Helper()
		msgs, err := fetch(cons, n)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, m := range msgs {
			md, _ := m.Metadata()
			seqs = append(seqs, md.Sequence.Stream)
		}
		return msgs, seqs
	}
	lose := func(cons jetstream.Consumer, stream bool) jetstream.Consumer {
		t.Helper()
		if stream {
			if err := js.DeleteStream(ctx, schemas.StreamName); err != nil {
				t.Fatal(err)
			}
			ensureStreamAgain(t, js)
		} else if err := js.DeleteConsumer(ctx, schemas.StreamName, w.cfg.Durable); err != nil {
			t.Fatal(err)
		}
		publish(2)
		again, err := w.reattach(ctx, cons)
		if err != nil || again == cons {
			t.Fatalf("reattach after the consumer went: %v, a new consumer: %v", err, again != cons)
		}
		return again
	}

	if err := notify.EnsureStream(ctx, js, notify.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	publish(2) // 1, 2: before the consumer, not for it
	cons, err := w.attach(ctx, jetstream.DeliverNewPolicy, 0)
	if err != nil {
		t.Fatal(err)
	}
	publish(4) // 3, 4, 5, 6
	msgs, seqs := next(cons, 1)
	if !slices.Equal(seqs, []uint64{3}) {
		t.Fatalf("first batch %v, want [3]", seqs)
	}
	w.done(msgs, true)
	msgs, _ = next(cons, 1) // 4, returned for redelivery
	w.done(msgs, false)
	msgs, _ = next(cons, 2) // 5, 6
	w.done(msgs, true)

	if again, err := w.reattach(ctx, cons); err != nil || again != cons {
		t.Fatalf("reattach with the consumer there: %v, the same consumer: %v", err, again == cons)
	}
	cons = lose(cons, false) // 7, 8 published after it went
	if _, seqs := next(cons, 10); !slices.Equal(seqs, []uint64{4, 5, 6, 7, 8}) {
		t.Fatalf("consumer deleted alone: made again with %v, want [4 5 6 7 8]", seqs)
	}
	cons = lose(cons, true) // 1, 2 of the new stream
	if _, seqs := next(cons, 10); !slices.Equal(seqs, []uint64{1, 2}) {
		t.Fatalf("stream created anew: consumer made again with %v, want [1 2]", seqs)
	}
}

// TestProblemWhileTheStreamIsMissing: while the notification stream is
// missing the watcher can neither fetch nor make its consumer again;
// operators rely on /readyz (Problem) and one WARN saying so, and on
// both clearing once the stream is back.
func TestProblemWhileTheStreamIsMissing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := testenv.NATS(t, embedded.NATSConfig{})
	js := testenv.JetStream(t, srv.ClientURL())
	if err := notify.EnsureStream(ctx, js, notify.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	store, cat := storeAndCatalog(t)
	var log testenv.LogBuffer
	w, err := New(Config{JS: js, Store: store, Catalog: cat, Policies: []string{"heilongjiang/daqing"},
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s; Problem: %v; log:\n%s", what, w.Problem(), log.String())
			}
		}
	}
	waitFor("no consumer", func() bool { _, err := js.Consumer(ctx, schemas.StreamName, "pophub-eligibility"); return err == nil })
	if err := w.Problem(); err != nil {
		t.Fatalf("Problem while following: %v", err)
	}

	if err := js.DeleteStream(ctx, schemas.StreamName); err != nil {
		t.Fatal(err)
	}
	waitFor("the missing stream not on Problem", func() bool {
		err := w.Problem()
		return err != nil && strings.Contains(err.Error(), "stream "+schemas.StreamName+" is gone")
	})
	time.Sleep(2 * time.Second) // several fetches fail meanwhile
	if n := strings.Count(log.String(), "level=WARN msg=\"eligibility: cannot follow"); n != 1 {
		t.Errorf("%d WARN lines about the missing stream, want 1:\n%s", n, log.String())
	}

	ensureStreamAgain(t, js)
	waitFor("Problem still set with the stream back", func() bool { return w.Problem() == nil })
	if !strings.Contains(log.String(), "following change notifications again") {
		t.Errorf("the recovery is not logged:\n%s", log.String())
	}
}

// streamGoneOnce is JetStream whose stream goes, once, right after the
// watcher made its consumer: between the consumer's creation and the
// watcher's reading of the stream.
type streamGoneOnce struct {
	jetstream.JetStream
	t    *testing.T
	gone bool
}

func (j *streamGoneOnce) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	if !j.gone {
		if _, err := j.JetStream.Consumer(ctx, name, "pophub-eligibility"); err == nil {
			j.gone = true
			if err := j.JetStream.DeleteStream(ctx, name); err != nil {
				j.t.Error(err)
			}
		}
	}
	return j.JetStream.Stream(ctx, name)
}

// TestStreamGoneWhileStartingIsWaitedOut: the stream going while the
// watcher starts, between making its consumer and reading the stream,
// does not stop the watcher for good: it says so on Problem, waits for
// the stream, and follows it once the relay has made it again.
func TestStreamGoneWhileStartingIsWaitedOut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := testenv.NATS(t, embedded.NATSConfig{})
	js := testenv.JetStream(t, srv.ClientURL())
	if err := notify.EnsureStream(ctx, js, notify.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	store, cat := storeAndCatalog(t)
	var log testenv.LogBuffer
	w, err := New(Config{JS: &streamGoneOnce{JetStream: js, t: t}, Store: store, Catalog: cat, Policies: []string{"heilongjiang/daqing"},
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			select {
			case err := <-ran:
				ran <- err
				t.Fatalf("Run returned %v while %s; log:\n%s", err, what, log.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s; Problem: %v; log:\n%s", what, w.Problem(), log.String())
			}
		}
	}
	waitFor("waiting for the missing stream, on Problem", func() bool {
		err := w.Problem()
		return err != nil && strings.Contains(err.Error(), "stream "+schemas.StreamName+" is gone")
	})
	if err := notify.EnsureStream(ctx, js, notify.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	waitFor("following the stream made again", func() bool {
		_, err := js.Consumer(ctx, schemas.StreamName, "pophub-eligibility")
		return err == nil && w.Problem() == nil
	})
}

// ensureStreamAgain creates the notification stream just deleted. The
// server removes a deleted stream's files behind its answer and may
// refuse a new store under the same name for a moment ("error creating
// store for stream"): try again, as the relay does at its next round.
func ensureStreamAgain(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = notify.EnsureStream(context.Background(), js, notify.StreamConfig{}); err == nil {
			return
		}
	}
	t.Fatalf("creating the deleted stream again: %v", err)
}
