package cdc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
)

// TestMappedColumnRetypedAfterAnInterruptedCopy: the first start's copy
// fails (Kafka away); before the next start a row changes and the DBA
// gives a mapped column another type (end_date date → timestamp). The
// next start sends the ends the interrupted copy owes from the slot's
// changes, in a session without a catalog connection, where the change
// made before the retype is described with the old type: it must take
// the copy again, not crash on every start.
func TestMappedColumnRetypedAfterAnInterruptedCopy(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	s := newStream(t, table, &failCopyAfter{p: pub}, exampleMapping(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("first start: %v, want the injected failure", err)
	}
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_id = 1")
	exec(t, db, "ALTER TABLE "+table+" ALTER COLUMN end_date TYPE timestamp")

	s2 := newStream(t, table, pub, exampleMapping(t))
	var panicked any
	done := make(chan error, 1)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				panicked = p
				done <- errors.New("panicked")
			}
		}()
		done <- s2.Run(ctx2)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for s2.Stats().Published < 1 && time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			deadline = time.Now()
		default:
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel2()
	err := <-done
	if panicked != nil {
		t.Fatalf("the start after the interrupted copy panicked: %v", panicked)
	}
	if s2.Stats().Published < 1 {
		t.Errorf("the start after the interrupted copy sent nothing: %v", err)
	}
}
