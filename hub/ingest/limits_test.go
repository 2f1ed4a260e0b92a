package ingest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pophub/pophub/schemas"
)

// TestTooLargeGoesToDLQ: a record with more than maxRecordHeaders headers
// is refused as too_large: its DLQ copy names the reason, keeps the first
// maxRecordHeaders headers, and the events around it are applied.
func TestTooLargeGoesToDLQ(t *testing.T) {
	k := onePartitionBroker(t)
	ctx := context.Background()
	many := make([]kgo.RecordHeader, maxRecordHeaders+1)
	for i := range many {
		many[i] = kgo.RecordHeader{Key: "h"}
	}
	event := func(i int) []byte {
		return []byte(cloudEvent("m-"+strconv.Itoa(i), "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))
	}
	for _, tc := range []struct {
		compress bool
		rec      *kgo.Record
	}{
		{false, &kgo.Record{Value: event(0)}},
		{false, &kgo.Record{Value: event(1), Headers: many}},
		{true, &kgo.Record{Value: event(2), Headers: many}},
		{false, &kgo.Record{Value: event(3)}},
	} {
		opts := []kgo.Opt{kgo.SeedBrokers(k.Addr()), kgo.ProducerBatchMaxBytes(16 << 20), kgo.ProducerBatchCompression(kgo.NoCompression())}
		if tc.compress {
			opts[2] = kgo.ProducerBatchCompression(kgo.ZstdCompression())
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		tc.rec.Topic, tc.rec.Key = marriageTopic, []byte(idA)
		if err := cl.ProduceSync(ctx, tc.rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	a := &recordingApplier{}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "too-large"}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	defer stop()
	waitUntil(t, "four records read", func() bool { return c.Counts().Consumed == 4 })
	if cnt := c.Counts(); cnt.Rejected[reasonTooLarge] != 2 || a.count() != 2 {
		t.Errorf("counts %+v, applied %v: want two too_large rejects and two events applied", cnt, a.ids)
	}
	copies := readTopic(t, k.Addr(), schemas.DLQTopic, 2)
	for i, want := range []struct {
		offset, field, dropped string
		headers                int
	}{
		{"1", "headers", "", maxRecordHeaders},
		{"2", "headers", "", maxRecordHeaders},
	} {
		m := copies[i]
		if got := header(m, HeaderOffset); got != want.offset {
			t.Errorf("copy %d is of offset %s, want %s", i, got, want.offset)
		}
		if got := header(m, HeaderReason); got != reasonTooLarge {
			t.Errorf("copy of offset %s: reason %q, want %q", want.offset, got, reasonTooLarge)
		}
		if got := header(m, HeaderField); got != want.field {
			t.Errorf("copy of offset %s: field %q, want %q", want.offset, got, want.field)
		}
		if got := header(m, HeaderDropped); got != want.dropped {
			t.Errorf("copy of offset %s: pophub-dropped %q, want %q", want.offset, got, want.dropped)
		}
		if string(m.Key) != idA {
			t.Errorf("copy of offset %s: key %q, want the record's", want.offset, m.Key)
		}
		if n := strings.Count(fmt.Sprint(m.Headers), "{h []}"); n != want.headers {
			t.Errorf("copy of offset %s: %d of the record's headers, want %d", want.offset, n, want.headers)
		}
		t.Logf("copy of offset %s: %s", want.offset, header(m, HeaderError))
	}
}

// TestMemoryBoundedByBytesManyHeaders: TestMemoryBoundedByBytes with the
// 1 MiB of padding spread over many tiny headers instead of one large one,
// as a buggy or hostile producer may send them. A header costs the hub
// about ten times its few bytes on the wire (a kafka.Header and a string
// for its name); MaxBatchBytes counted only the bytes of its name and
// value, and the consumer held 430 MiB of these records. recordBytes now
// counts headerOverhead per header, and such a record is refused as
// too_large (more than maxRecordHeaders headers).
func TestMemoryBoundedByBytesManyHeaders(t *testing.T) {
	const (
		records = 60
		headers = 240_000 // 4 bytes each on the wire: a record under 1 MiB
		bound   = 200 << 20
	)
	k := onePartitionBroker(t)
	writeRecords(t, k.Addr(), marriages(0, 1)...) // the event the store is stuck on
	pad := make([]kafka.Header, headers)
	for i := range pad {
		pad[i] = kafka.Header{Key: "ab"}
	}
	tr := &kafka.Transport{}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		BatchBytes: 4 << 20, Transport: tr}
	for i := range records {
		v := cloudEvent("pad-"+strconv.Itoa(i), "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`)
		if err := w.WriteMessages(context.Background(), kafka.Message{Topic: marriageTopic, Key: []byte(idA), Value: []byte(v), Headers: pad}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	tr.CloseIdleConnections()
	pad = nil

	grown := heapGrowthStuck(t, k.Addr(), "memory-headers")
	if grown > bound {
		t.Errorf("with the store stuck behind %d records of %d tiny headers (%d MiB on the wire), the heap grew by %d MiB, want at most %d MiB",
			records, headers, records*headers*4>>20, grown>>20, bound>>20)
	} else {
		t.Logf("with the store stuck, the heap grew by %d MiB", grown>>20)
	}
}

// heapGrowthStuck runs a consumer of group whose store is stuck on the
// first batch and returns the most the live heap grew meanwhile, once it
// stopped growing.
func heapGrowthStuck(t *testing.T, addr, group string) int64 {
	t.Helper()
	base := liveHeap()
	a := &slowApplier{started: make(chan struct{}), release: make(chan struct{})}
	c, err := New(Config{Brokers: []string{addr}, GroupID: group}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	release := sync.OnceFunc(func() { close(a.release) })
	defer func() { release(); stop() }()
	select {
	case <-a.started:
	case <-time.After(2 * time.Minute):
		t.Fatal("the store was never called")
	}
	var peak uint64
	grew, start := time.Now(), time.Now()
	for time.Since(grew) < 2*time.Second && time.Since(start) < time.Minute {
		time.Sleep(100 * time.Millisecond)
		h := liveHeap()
		if h > peak+(1<<20) {
			peak, grew = h, time.Now()
		}
	}
	return int64(peak) - int64(base)
}
