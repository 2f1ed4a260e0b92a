package ingest

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // the first one's finalizers may free more
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMemoryBoundedByBytes: with the store stuck on the first batch, the
// consumer holds a bounded number of bytes of the records behind it, not
// a number of records: a backlog of 1,200 records of 900 KiB (compressed
// on the topic, as producers send them) used to be held whole, 1.1 GB, by
// the reader's queue of 4,000 records and the pipeline's six batches of
// 2,000.
//
// The test's backlog, 500 such records (440 MiB), is over twice the bound
// and small enough to be read through within minutes under the race
// detector on a loaded machine.
//
// The records are valid events padded with a 900 KiB header: bad ones
// would be copied to the DLQ, which the test's in-process broker keeps in
// this process's heap, and a record's header, key and value weigh alike.
//
// The bound: at most six batches are held (two being applied, one
// waiting for its turn to start, two in the channel, one being
// fetched) of at most DefaultMaxBatchBytes each, 96 MiB; the reader's
// queue of readerQueue records and the one its partition reader is
// handing over, 8 MiB; the broker's fetch response being encoded, 16 MiB
// (the reader's MaxBytes): 120 MiB. 200 MiB leaves room for the garbage
// collector's timing and the buffers of the broker and the reader.
func TestMemoryBoundedByBytes(t *testing.T) {
	const (
		records = 500
		size    = 900 << 10
		bound   = 200 << 20
	)
	k := onePartitionBroker(t)
	pad := []kafka.Header{{Key: "pad", Value: bytes.Repeat([]byte("padding, "), size/9)}}
	tr := &kafka.Transport{}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		Compression: kafka.Snappy, BatchBytes: 1 << 20, Transport: tr}
	var msgs []kafka.Message
	for i := range records {
		v := cloudEvent("m-"+strconv.Itoa(i), "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`)
		msgs = append(msgs, kafka.Message{Topic: marriageTopic, Key: []byte(idA), Value: []byte(v), Headers: pad})
	}
	for i := 0; i < len(msgs); i += 100 {
		if err := w.WriteMessages(context.Background(), msgs[i:min(i+100, len(msgs))]...); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	tr.CloseIdleConnections()
	msgs, pad = nil, nil

	base := liveHeap()
	a := &slowApplier{started: make(chan struct{}), release: make(chan struct{})}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "memory"}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	release := sync.OnceFunc(func() { close(a.release) })
	defer func() { release(); stop() }()
	// Joining the group and fetching the first 16 MiB of padded records
	// takes over 30 s under the race detector on a loaded machine.
	select {
	case <-a.started:
	case <-time.After(2 * time.Minute):
		t.Fatal("the store was never called")
	}

	// The consumer reads on behind the stuck batch until its buffers are
	// full: wait until the heap has stopped growing for two seconds.
	var peak uint64
	grew, start := time.Now(), time.Now()
	for time.Since(grew) < 2*time.Second && time.Since(start) < time.Minute {
		time.Sleep(100 * time.Millisecond)
		h := liveHeap()
		if h > peak+(1<<20) {
			peak, grew = h, time.Now()
		}
		if h > base+bound {
			break
		}
	}
	if grown := int64(peak) - int64(base); grown > bound {
		t.Errorf("with the store stuck, the heap grew by %d MiB, want at most %d MiB", grown>>20, bound>>20)
	} else {
		t.Logf("with the store stuck, the heap grew by %d MiB", grown>>20)
	}

	release()
	for deadline := time.Now().Add(3 * time.Minute); c.Counts().Consumed != records; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for every record committed: %d of %d", c.Counts().Consumed, records)
		}
	}
	if got := c.Counts().Applied; got != records {
		t.Errorf("applied %d events, want %d", got, records)
	}
}

// batchRecorder records the event ids of each applied batch.
type batchRecorder struct {
	mu      sync.Mutex
	batches [][]string
	n       int
}

func (a *batchRecorder) Apply(ctx context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	// Take turns as a store does, so that batches applied at once take
	// effect in offset order.
	if err := hub.AwaitTurn(ctx); err != nil {
		return hub.ApplyResult{}, err
	}
	defer hub.PassTurn(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, len(batch))
	for i, in := range batch {
		ids[i] = in.Event.ID
	}
	a.batches = append(a.batches, ids)
	a.n += len(batch)
	return hub.ApplyResult{Applied: len(batch)}, nil
}

func (a *batchRecorder) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// TestBatchClosesAtByteBudget: a batch holds at most MaxBatchBytes of
// keys, values and headers, or one record larger than that; its records
// stay in offset order and none is left out or applied twice.
func TestBatchClosesAtByteBudget(t *testing.T) {
	const budget = 2000
	tests := []struct {
		name string
		pad  []int // bytes of header padding per record
	}{
		{"small records", []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"one record over the budget among small ones", []int{0, 0, 0, 0, 0, 3000, 0, 0, 0, 0, 0, 0}},
		{"records over the budget in a row", []int{2500, 3000, 0, 4000, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := onePartitionBroker(t)
			var msgs []kafka.Message
			weight := map[string]int{}
			for i, pad := range tc.pad {
				id := "m-" + strconv.Itoa(i)
				m := kafka.Message{Topic: marriageTopic, Key: []byte(idA),
					Value: []byte(cloudEvent(id, "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))}
				if pad > 0 {
					m.Headers = []kafka.Header{{Key: "pad", Value: bytes.Repeat([]byte("p"), pad)}}
				}
				msgs = append(msgs, m)
				weight[id] = recordBytes(m)
			}
			writeRecords(t, k.Addr(), msgs...)
			a := &batchRecorder{}
			c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "budget", MaxBatchBytes: budget, MaxWait: time.Second}, a)
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, c)
			waitUntil(t, "every event applied", func() bool { return a.count() >= len(msgs) })
			stop()
			var order []string
			for _, b := range a.batches {
				total := 0
				for _, id := range b {
					total += weight[id]
				}
				if total > budget && len(b) > 1 {
					t.Errorf("batch %v holds %d bytes, over the budget of %d", b, total, budget)
				}
				order = append(order, b...)
			}
			for i, id := range order {
				if want := "m-" + strconv.Itoa(i); id != want || len(order) != len(msgs) {
					t.Fatalf("applied %v, want m-0 to m-%d once each in order", order, len(msgs)-1)
				}
			}
			if len(a.batches) == len(msgs) && tc.pad[0] == 0 {
				t.Errorf("every record applied alone (%v), want small ones batched", a.batches)
			}
		})
	}
}
