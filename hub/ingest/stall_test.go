package ingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestStoreFailingBatchesIsNotReady: a store that answers its ping but
// fails every batch (read-only after a failover, a statement timeout
// shorter than a batch takes) stops ingest, which retries without
// skipping a record. Once that has lasted longer than applyGrace,
// StoreProblem says so with the store's error, for readiness; when a
// batch is applied again it clears, and the batch is applied once.
func TestStoreFailingBatchesIsNotReady(t *testing.T) {
	k := onePartitionBroker(t)
	store := &recordingApplier{failFor: 6} // 50+100+200+400+800 ms of backoff
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "store-fails"}, store)
	if err != nil {
		t.Fatal(err)
	}
	c.applyStall.grace = 300 * time.Millisecond
	stop := run(t, c)
	defer stop()
	if err := c.StoreProblem(); err != nil {
		t.Fatalf("StoreProblem before any batch: %v", err)
	}
	writeRecords(t, k.Addr(), kafka.Message{Topic: marriageTopic, Key: []byte(idA),
		Value: []byte(cloudEvent("m-1", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))})
	var problem error
	waitUntil(t, "StoreProblem reports the failing batches", func() bool { problem = c.StoreProblem(); return problem != nil })
	if !strings.Contains(problem.Error(), "applying batches to the store has failed for") || !strings.Contains(problem.Error(), "store unavailable") {
		t.Errorf("StoreProblem: %v; want how long and the store's error", problem)
	}
	waitUntil(t, "the batch is applied", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.ids["m-1"] == 1
	})
	if err := c.StoreProblem(); err != nil {
		t.Errorf("StoreProblem after the batch was applied: %v", err)
	}
}

// TestStall: a failure counts from its first attempt, shorter than the
// grace is no stall, and one success ends it.
func TestStall(t *testing.T) {
	s := stall{grace: 20 * time.Millisecond}
	if _, _, ok := s.stalled(); ok {
		t.Fatal("stalled before any attempt")
	}
	s.note(context.DeadlineExceeded)
	if _, _, ok := s.stalled(); ok {
		t.Fatal("stalled within the grace")
	}
	time.Sleep(30 * time.Millisecond)
	s.note(context.Canceled)
	d, err, ok := s.stalled()
	if !ok || d < 30*time.Millisecond || err != context.Canceled {
		t.Fatalf("stalled = %v, %v, %v; want since the first failure, with the last error", d, err, ok)
	}
	s.note(nil)
	if _, _, ok := s.stalled(); ok {
		t.Fatal("stalled after a success")
	}
}
