package sdk

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestQueue: a worker gets every message once, in order; the fetch side
// blocks while the worker holds limit messages, queued or being handled;
// a sleeping worker wakes at gather messages or on a flush; close lets it
// finish what is queued.
func TestQueue(t *testing.T) {
	const limit, gather = 8, 3
	q := newQueue(limit)
	got := make(chan []uint64)
	release := make(chan struct{})
	go func() {
		var batch []item
		for {
			var ok bool
			if batch, ok = q.take(batch); !ok {
				close(got)
				return
			}
			var seqs []uint64
			for _, it := range batch {
				seqs = append(seqs, it.meta.Sequence.Stream)
			}
			got <- seqs
			<-release // the batch is being handled
		}
	}()
	push := func(seqs ...uint64) {
		for _, s := range seqs {
			q.push(item{meta: &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: s}}}, gather)
		}
	}
	expect := func(want ...uint64) {
		t.Helper()
		select {
		case seqs := <-got:
			if len(seqs) != len(want) {
				t.Fatalf("batch %v, want %v", seqs, want)
			}
			for i := range want {
				if seqs[i] != want[i] {
					t.Fatalf("batch %v, want %v", seqs, want)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no batch, want %v", want)
		}
	}
	quiet := func() {
		t.Helper()
		select {
		case seqs := <-got:
			t.Fatalf("batch %v before gather or a flush", seqs)
		case <-time.After(20 * time.Millisecond):
		}
	}

	waitSleeping(t, q)
	push(1, 2)
	quiet()
	push(3) // gather reached
	expect(1, 2, 3)

	// While 1-3 are being handled, the queue takes limit-3 more.
	push(4, 5, 6, 7, 8)
	pushed := make(chan struct{})
	go func() { push(9); close(pushed) }()
	select {
	case <-pushed:
		t.Fatal("push did not wait while the worker held limit messages")
	case <-time.After(20 * time.Millisecond):
	}
	release <- struct{}{}
	expect(4, 5, 6, 7, 8)
	<-pushed
	release <- struct{}{}
	expect(9) // taken by the awake worker without a wake-up
	release <- struct{}{}

	waitSleeping(t, q)
	push(10)
	quiet()
	q.flush()
	expect(10)
	release <- struct{}{}

	waitSleeping(t, q)
	push(11)
	q.close()
	expect(11)
	release <- struct{}{}
	if _, ok := <-got; ok {
		t.Fatal("the worker went on after close")
	}
}

func waitSleeping(t *testing.T, q *queue) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		q.mu.Lock()
		sleeping := q.sleeping
		q.mu.Unlock()
		if sleeping {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker does not sleep")
		}
	}
}

// TestQueueSeveralPushers: with a pull loop per consumer
// (ConsumerPerFilter) several pushers can wait on a full queue; when the
// worker takes, every one of them must go on, not only the first, even
// though nothing else will wake them (as at shutdown, when no flush comes).
func TestQueueSeveralPushers(t *testing.T) {
	const limit, gather, pushers = 4, 4, 3
	q := newQueue(limit)
	msg := func(s uint64) item {
		return item{meta: &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: s}}}
	}
	for s := range uint64(limit) {
		q.push(msg(s), gather)
	}
	done := make(chan struct{}, pushers)
	for p := range uint64(pushers) {
		go func() { q.push(msg(100+p), gather); done <- struct{}{} }()
	}
	// Let them all wait on the full queue.
	for deadline := time.Now().Add(5 * time.Second); len(done) == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		q.mu.Lock()
		n := len(q.items)
		q.mu.Unlock()
		if n == limit {
			time.Sleep(20 * time.Millisecond)
			break
		}
	}
	if len(done) != 0 {
		t.Fatal("a push did not wait on a full queue")
	}
	batch, ok := q.take(nil) // the worker takes the four…
	if !ok || len(batch) != limit {
		t.Fatalf("took %d, want %d", len(batch), limit)
	}
	// …handles them and comes back, which makes room for every pusher
	// (three items: below gather, so the worker sleeps on them).
	taken := make(chan []item)
	go func() { b, _ := q.take(batch); taken <- b }()
	for range pushers {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a pusher still waits on a queue that has room")
		}
	}
	q.close()
	if b := <-taken; len(b) != pushers {
		t.Errorf("the worker then took %d, want %d", len(b), pushers)
	}
}
