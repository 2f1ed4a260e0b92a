package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// turnApplier takes turns like a store does (hub.AwaitTurn before its
// "lock", hub.PassTurn once it holds it) and records the order in which
// events took effect. The first batch, once it started, waits until a
// second batch entered Apply before taking the lock, failing that attempt
// first when failFirst is set: without turns, the second batch overtakes it.
type turnApplier struct {
	failFirst bool
	started   chan struct{}

	lock sync.Mutex // the store's lock

	mu        sync.Mutex
	firstID   string // the first batch's first event
	attempts  int    // calls with the first batch
	others    int    // calls with other batches
	overtaken bool   // another batch entered while the first waited
	order     []string
}

func (a *turnApplier) Apply(ctx context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	a.mu.Lock()
	if a.firstID == "" {
		a.firstID = batch[0].Event.ID
	}
	first := batch[0].Event.ID == a.firstID
	if first {
		a.attempts++
	} else {
		a.others++
	}
	attempt := a.attempts
	a.mu.Unlock()
	if err := hub.AwaitTurn(ctx); err != nil {
		return hub.ApplyResult{}, err
	}
	if first && attempt == 1 {
		close(a.started)
		deadline := time.Now().Add(30 * time.Second)
		for !a.overtaken && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			a.mu.Lock()
			a.overtaken = a.others > 0
			a.mu.Unlock()
		}
		if a.failFirst {
			return hub.ApplyResult{}, errors.New("store unavailable")
		}
	}
	a.lock.Lock()
	defer a.lock.Unlock()
	hub.PassTurn(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, in := range batch {
		a.order = append(a.order, in.Event.ID)
	}
	return hub.ApplyResult{Applied: len(batch)}, nil
}

// TestOnePartitionAppliedInOffsetOrder: two records of one person (one
// partition) in two batches applied at once take effect in offset order,
// also when the first batch's first attempt fails and ingest retries it.
func TestOnePartitionAppliedInOffsetOrder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failFirst bool
	}{
		{"FirstSlow", false},
		{"FirstRetried", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &turnApplier{failFirst: tc.failFirst, started: make(chan struct{})}
			addr, same := firstBatchWaiting(t, Config{GroupID: "g-order"}, a)
			produce(t, addr, same[1:2], nil)
			waitUntil(t, "both applied", func() bool {
				a.mu.Lock()
				defer a.mu.Unlock()
				return len(a.order) == 2
			})
			a.mu.Lock()
			defer a.mu.Unlock()
			if !a.overtaken {
				t.Fatal("the second batch never reached the store while the first waited")
			}
			if a.order[0] != same[0].Event.ID || a.order[1] != same[1].Event.ID {
				t.Errorf("store saw %v, want offset order [%s %s]", a.order, same[0].Event.ID, same[1].Event.ID)
			}
		})
	}
}

// TestRejectOnlyBatchKeepsOrder: a batch of nothing but rejects between two
// records of one person does not hand the later record's batch a turn it
// has not had itself, so with three batches in flight the later record
// still takes effect after the earlier.
func TestRejectOnlyBatchKeepsOrder(t *testing.T) {
	a := &turnApplier{started: make(chan struct{})}
	addr, same := firstBatchWaiting(t, Config{GroupID: "g-order-rejects", Concurrency: 3}, a)
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(context.Background(), kafka.Message{Topic: schemas.Topic(same[0].Event.Source),
		Key: []byte(same[0].Event.Subject), Value: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	readTopic(t, addr, schemas.DLQTopic, 1) // the reject-only batch is done
	produce(t, addr, same[1:2], nil)
	waitUntil(t, "both applied", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.order) == 2
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.order[0] != same[0].Event.ID || a.order[1] != same[1].Event.ID {
		t.Errorf("store saw %v, want offset order [%s %s]", a.order, same[0].Event.ID, same[1].Event.ID)
	}
}

// onePartition returns events of one source and person, which go to one
// partition in offset order: at least two.
func onePartition(t *testing.T) []hub.Input {
	t.Helper()
	in := storetest.Population(t, 1, 7)
	var same []hub.Input
	for _, e := range in {
		if e.Event.Source == in[0].Event.Source && e.Event.Subject == in[0].Event.Subject {
			same = append(same, e)
		}
	}
	if len(same) < 2 {
		t.Fatalf("population has %d events of one source and person, want 2", len(same))
	}
	return same
}

// firstBatchWaiting starts a broker and a consumer of cfg applying to a,
// produces the first of one partition's events and returns once a holds
// it in Apply: the broker's address and the partition's events.
func firstBatchWaiting(t *testing.T, cfg Config, a *turnApplier) (string, []hub.Input) {
	t.Helper()
	k := broker(t)
	same := onePartition(t)
	cfg.Brokers = []string{k.Addr()}
	c, err := New(cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run(t, c))
	produce(t, k.Addr(), same[:1], nil)
	select {
	case <-a.started:
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the first batch")
	}
	return k.Addr(), same
}
