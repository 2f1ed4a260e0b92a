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
