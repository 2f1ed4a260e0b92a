package ingest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestTransactionReadOnceCommitted: a department publishes with a
// transactional producer (franz-go here, as Java's exactly-once producer
// would). While the transaction is open the hub reads nothing of the
// partition, not even a later record outside the transaction; once it
// commits both events are applied once, and the commit marker the
// coordinator wrote is skipped and counted, not copied to the DLQ.
func TestTransactionReadOnceCommitted(t *testing.T) {
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	topic := schemas.Topic(schemas.Marriage)

	// A fetch of the partition at offset 0 after the first means the
	// broker's answer to the one before held no records: the reader asks
	// again from where it stands.
	var fetchesAtStart atomic.Int32
	k.Cluster().ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		for _, ft := range req.(*kmsg.FetchRequest).Topics {
			for _, p := range ft.Partitions {
				if ft.Topic == topic && p.Partition == 0 && p.FetchOffset == 0 {
					fetchesAtStart.Add(1)
				}
			}
		}
		return nil, nil, false
	})

	ctx := context.Background()
	producer := openTransaction(t, k.Addr(), topic)
	writeRecords(t, k.Addr(), kafka.Message{Topic: topic, Key: []byte(idB),
		Value: []byte(cloudEvent("m-after", "marriage", "marriage.registered", idB, `{"spouse_id":"`+idA+`"}`))})

	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	a := &recordingApplier{}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "txn", Meter: tel.Meter("test")}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	defer stop()

	waitUntil(t, "the reader to fetch the open transaction's partition twice", func() bool { return fetchesAtStart.Load() >= 2 })
	if n := a.count(); n != 0 {
		t.Fatalf("%d events applied while the transaction was open, want none", n)
	}

	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The event, the commit marker and the later event.
	waitUntil(t, "three records read", func() bool {
		cnt := c.Counts()
		return cnt.Consumed+cnt.Skipped == 3
	})
	cnt := c.Counts()
	if a.ids["m-txn"] != 1 || a.ids["m-after"] != 1 || len(a.ids) != 2 {
		t.Errorf("applied %v, want m-txn and m-after once each", a.ids)
	}
	mc := cnt.Sources[schemas.Marriage]
	if cnt.Applied != 2 || cnt.RejectedTotal() != 0 || mc.Consumed != 2 || mc.Skipped != 1 || mc.RejectedTotal() != 0 {
		t.Errorf("counts %+v, marriage %+v; want 2 consumed and applied, 1 skipped, none rejected", cnt, mc)
	}
	if n := recordsLeft(t, k.Addr(), schemas.DLQTopic); n != 0 {
		t.Errorf("%d records in the DLQ, want none", n)
	}

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	for _, line := range []string{
		`pophub_events_skipped_total{reason="control",source="marriage"} 1`,
		`pophub_events_skipped_total{reason="control",source="health"} 0`,
		`pophub_events_consumed_total{source="marriage"} 2`,
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(string(body), "pophub_events"))
	}
}

// TestTransactionAbortedIsReported: the coordinator aborts a department's
// transaction without the department asking (its producer restarted with
// the same transactional id and fenced the old one, which was in the
// middle of a transaction). The hub's Kafka client cannot leave the
// aborted records out, so the hub must at least say so: the abort marker
// is counted apart from commit markers, in Counts and in /metrics, and a
// warning names its topic, partition and offset.
func TestTransactionAbortedIsReported(t *testing.T) {
	k := onePartitionBroker(t)
	ctx := context.Background()
	first, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.TransactionalID("marriage.registry"))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := first.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := first.ProduceSync(ctx, &kgo.Record{Topic: marriageTopic, Key: []byte(idA),
		Value: []byte(cloudEvent("m-aborted", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The restart: same transactional id, while the first is still open.
	second, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.TransactionalID("marriage.registry"))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := second.ProduceSync(ctx, &kgo.Record{Topic: marriageTopic, Key: []byte(idB),
		Value: []byte(cloudEvent("m-committed", "marriage", "marriage.registered", idB, `{"spouse_id":"`+idA+`"}`))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := second.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	var logs testenv.LogBuffer
	a := &recordingApplier{}
	c, err := New(withLog(Config{Brokers: []string{k.Addr()}, GroupID: "aborted", Meter: tel.Meter("test")}, &logs), a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	defer stop()

	// Two events, an abort marker and a commit marker.
	waitUntil(t, "four records read", func() bool {
		cnt := c.Counts()
		return cnt.Consumed+cnt.Skipped == 4
	})
	if a.ids["m-committed"] != 1 {
		t.Errorf("applied %v, want m-committed once", a.ids)
	}
	cnt := c.Counts()
	if cnt.Skipped != 2 || cnt.Aborted != 1 {
		t.Errorf("counts %+v: want 2 markers skipped, 1 of them an abort", cnt)
	}

	// The abort marker is the second record of the partition: the one
	// after the aborted event.
	var warned []string
	for _, l := range strings.Split(grepLines(logs.String(), "level=WARN"), "\n") {
		if strings.Contains(l, "aborted") {
			warned = append(warned, l)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "topic="+marriageTopic) ||
		!strings.Contains(warned[0], "partition=0") || !strings.Contains(warned[0], "abort_marker_offset=1") {
		t.Errorf("want one warning naming the abort marker at %s/0 offset 1, got %q\nlog:\n%s", marriageTopic, warned, logs.String())
	}

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	for _, line := range []string{
		`pophub_events_skipped_total{reason="aborted_transaction",source="marriage"} 1`,
		`pophub_events_skipped_total{reason="control",source="marriage"} 1`,
		// Born at 0 for every source, so that increase() sees the first
		// abort after a start (PophubAbortedTransactionApplied).
		`pophub_events_skipped_total{reason="aborted_transaction",source="health"} 0`,
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("/metrics lacks %s:\n%s", line, grepLines(string(body), "pophub_events_skipped"))
		}
	}
}

// TestDecodeChunkSkipsControlRecords: commit and abort markers, as Kafka
// writes them, are skipped and counted; records of nearly that shape are
// a department's and go to the DLQ.
func TestDecodeChunkSkipsControlRecords(t *testing.T) {
	topic := schemas.Topic(schemas.Marriage)
	marker := []byte{0, 0, 0, 0, 0, 7} // version 0, coordinator epoch 7
	for _, tc := range []struct {
		name       string
		key, value []byte
		control    bool
	}{
		{"commit", []byte{0, 0, 0, 1}, marker, true},
		{"abort", []byte{0, 0, 0, 0}, marker, true},
		{"other control type", []byte{0, 0, 0, 2}, marker, false},
		{"key version 1", []byte{0, 1, 0, 1}, marker, false},
		{"value version 1", []byte{0, 0, 0, 1}, []byte{0, 1, 0, 0, 0, 7}, false},
		{"value too long", []byte{0, 0, 0, 1}, append(marker, 0), false},
		{"value too short", []byte{0, 0, 0, 1}, marker[:5], false},
		{"no value", []byte{0, 0, 0, 1}, nil, false},
		{"citizen ID key", []byte(idA), marker, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decodeChunk([]kafka.Message{{Topic: topic, Key: tc.key, Value: tc.value, Time: time.Now()}})
			st := d.tally[schemas.Marriage]
			if tc.control {
				if st.control != 1 || st.consumed != 0 || len(d.rejects) != 0 || len(d.inputs) != 0 {
					t.Errorf("tally %+v, %d rejects, %d inputs; want the marker skipped and counted, nothing consumed", *st, len(d.rejects), len(d.inputs))
				}
				return
			}
			if st.control != 0 || st.consumed != 1 || len(d.rejects) != 1 {
				t.Errorf("tally %+v, %d rejects; want the record consumed and rejected", *st, len(d.rejects))
			}
		})
	}
}

// openTransaction begins a transaction as a department's transactional
// producer would (franz-go), writes event m-txn of idA to topic in it, and
// leaves it open; the test's end closes the producer.
func openTransaction(t *testing.T, addr, topic string) *kgo.Client {
	t.Helper()
	producer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("marriage-registry"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := producer.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(idA),
		Value: []byte(cloudEvent("m-txn", "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return producer
}

// TestOpenTransactionSaysWhy: while a department's transaction stays
// open, the hub reads nothing past its first record, and kafka-go took
// each empty fetch there for a broken read: a warning "unexpected EOF"
// every few seconds, counted as a reader error, pointing at the broker or
// the network. The hub now says that records wait behind a transaction
// (topic, partition, offset, how many), keeps those fetches out of its
// warnings, and says when the wait ends.
func TestOpenTransactionSaysWhy(t *testing.T) {
	k := onePartitionBroker(t)
	topic := schemas.Topic(schemas.Marriage)
	ctx := context.Background()
	producer := openTransaction(t, k.Addr(), topic)
	var logs lockedBuffer
	a := &recordingApplier{}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "open-txn", heldWarning: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	defer stop()

	waitUntil(t, "the hub to say records wait behind a transaction", func() bool {
		return strings.Contains(logs.String(), "records wait behind a Kafka transaction")
	})
	warned := grepLines(logs.String(), "records wait behind a Kafka transaction")
	for _, want := range []string{"level=WARN", "topic=" + topic, "partition=0", "offset=0", "records=1"} {
		if !strings.Contains(warned, want) {
			t.Errorf("the warning %q lacks %s", warned, want)
		}
	}
	eofWarnings := func() int {
		return strings.Count(grepLines(logs.String(), "level=WARN"), "unexpected EOF")
	}
	before := eofWarnings()
	time.Sleep(6 * time.Second) // beyond the reader log's 5 s window
	if after := eofWarnings(); after != before {
		t.Errorf("%d more warnings of an unexpected EOF while the transaction stayed open, want none:\n%s", after-before, logs.String())
	}

	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the event applied and the end of the wait said", func() bool {
		return a.count() == 1 && strings.Contains(logs.String(), "records no longer wait behind a Kafka transaction")
	})
}
