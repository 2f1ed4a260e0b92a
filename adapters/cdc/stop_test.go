package cdc

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// cancellingPublisher publishes, and on its call number at, cancels the
// stream's Run as it returns: a stop arriving while the stream publishes
// a batch and confirms its position.
type cancellingPublisher struct {
	pub    Publisher
	at     int32
	calls  atomic.Int32
	cancel func()
}

func (p *cancellingPublisher) Publish(ctx context.Context, events ...schemas.Event) ([]publisher.Result, error) {
	res, err := p.pub.Publish(ctx, events...)
	if p.calls.Add(1) == p.at {
		p.cancel()
	}
	return res, err
}

// TestStopWhilePublishingConfirms: a stop that arrives while a batch is
// being published and confirmed still confirms what Kafka took, so the
// next start sends none of it again.
func TestStopWhilePublishingConfirms(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	m := exampleMapping(t)

	// The snapshot is the first publish, the two inserts the second.
	cp := &cancellingPublisher{pub: pub, at: 2}
	s1 := newStream(t, table, cp, m)
	ctx, cancel := context.WithCancel(context.Background())
	cp.cancel = cancel
	done := make(chan error, 1)
	go func() { done <- s1.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for s1.Stats().Published < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	tx, err := db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, lease := range []int{2, 3} {
		if _, err := tx.Exec(context.Background(), `INSERT INTO `+table+` (lease_id, tenant_id, address_code, start_date, signed_at)
			VALUES ($1, $2, $3, '2025-01-01', '2025-01-01 10:00:00+08')`, lease, citizen(lease), addressCode); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not stop")
	}
	if n := s1.Stats().Published; n != 3 {
		t.Fatalf("published %d events before the stop, want 3", n)
	}

	s2 := newStream(t, table, pub, m)
	r2 := start(t, s2)
	waitFor(t, r2, "streaming", func() bool { return s2.Stats().Confirmed != 0 })
	time.Sleep(500 * time.Millisecond)
	r2.stop(t)
	if n := s2.Stats().Published; n != 0 {
		t.Errorf("the next start published %d events again", n)
	}
}
