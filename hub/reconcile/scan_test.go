package reconcile

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/schemas"
)

// startKafka runs the in-process broker (kfake) with the source and DLQ
// topics until the test ends.
func startKafka(t testing.TB, partitions int) []string {
	t.Helper()
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: partitions})
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return []string{k.Addr()}
}

// produce writes messages to their topics and partitions as given
// (Partition set explicitly), returning each one's offset.
func produce(t testing.TB, brokers []string, msgs []kafka.Message) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conns := map[string]*kafka.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	offs := make([]int64, len(msgs))
	for i, m := range msgs {
		id := m.Topic + "/" + strconv.Itoa(m.Partition)
		c := conns[id]
		if c == nil {
			var err error
			c, err = kafka.DialLeader(ctx, "tcp", brokers[0], m.Topic, m.Partition)
			if err != nil {
				t.Fatalf("dialing leader of %s: %v", id, err)
			}
			conns[id] = c
		}
		_, end, err := c.ReadOffsets()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteMessages(kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers}); err != nil {
			t.Fatalf("producing to %s: %v", id, err)
		}
		offs[i] = end
	}
	return offs
}

// commit sets the group's committed offsets.
func commit(t testing.TB, brokers []string, group string, offsets map[string]map[int]int64) {
	t.Helper()
	req := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for topic, parts := range offsets {
		for p, o := range parts {
			req.Topics[topic] = append(req.Topics[topic], kafka.OffsetCommit{Partition: p, Offset: o})
		}
	}
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	resp, err := cl.OffsetCommit(context.Background(), req)
	if err != nil {
		t.Fatalf("committing offsets: %v", err)
	}
	for topic, parts := range resp.Topics {
		for _, p := range parts {
			if p.Error != nil {
				t.Fatalf("committing %s/%d: %v", topic, p.Partition, p.Error)
			}
		}
	}
}

// keyStore is a KeyStore over a set, counting calls.
type keyStore struct {
	mu    sync.Mutex
	keys  map[schemas.EventKey]bool
	calls int
}

func (s *keyStore) KnownEvents(_ context.Context, keys []schemas.EventKey) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	out := make([]bool, len(keys))
	for i, k := range keys {
		out[i] = s.keys[k]
	}
	return out, nil
}

func envelope(src schemas.Source, id string) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":%q,"type":"x","subject":"s","time":"2025-01-01T00:00:00Z","data":{}}`, id, src)
}

func dlqCopy(m kafka.Message, off int64, reason string) kafka.Message {
	return kafka.Message{Topic: schemas.DLQTopic, Partition: 0, Key: m.Key, Value: m.Value, Headers: []kafka.Header{
		{Key: ingest.HeaderReason, Value: []byte(reason)},
		{Key: ingest.HeaderTopic, Value: []byte(m.Topic)},
		{Key: ingest.HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
		{Key: ingest.HeaderOffset, Value: []byte(strconv.FormatInt(off, 10))},
	}}
}

// TestRunAgainstKafka lays out two sources' partitions by hand: applied
// events, a re-sent id, a malformed record in the DLQ, a lost event, a
// lost malformed record, and records past the committed offsets.
func TestRunAgainstKafka(t *testing.T) {
	brokers := startKafka(t, 2)
	hs, he := schemas.Topic(schemas.Housing), schemas.Topic(schemas.Health)
	msgs := []kafka.Message{
		{Topic: hs, Partition: 0, Value: envelope(schemas.Housing, "hs-1")},     // applied
		{Topic: hs, Partition: 0, Value: envelope(schemas.Housing, "hs-2")},     // applied
		{Topic: hs, Partition: 0, Value: []byte("not json")},                    // rejected
		{Topic: hs, Partition: 0, Value: envelope(schemas.Housing, "hs-1")},     // duplicate
		{Topic: hs, Partition: 1, Value: envelope(schemas.Housing, "hs-2")},     // duplicate, other partition
		{Topic: hs, Partition: 1, Value: envelope(schemas.Housing, "hs-lost")},  // gap
		{Topic: hs, Partition: 1, Value: envelope(schemas.Housing, "hs-late")},  // in flight
		{Topic: he, Partition: 0, Value: envelope(schemas.Health, "h-1")},       // applied
		{Topic: he, Partition: 0, Value: []byte(`{"id":"h-2","source":"tax"}`)}, // gap: source mismatch, not in DLQ
		{Topic: he, Partition: 1, Value: envelope(schemas.Health, "h-3")},       // rejected (invalid data), key known elsewhere
		{Topic: he, Partition: 1, Value: envelope(schemas.Health, "h-3")},       // applied: the first unrejected copy
	}
	offs := produce(t, brokers, msgs)
	produce(t, brokers, []kafka.Message{dlqCopy(msgs[2], offs[2], schemas.ReasonNotJSON), dlqCopy(msgs[9], offs[9], schemas.ReasonInvalidData),
		// a reject of another topic and a record without headers are ignored
		dlqCopy(kafka.Message{Topic: "elsewhere"}, 0, schemas.ReasonNotJSON), {Topic: schemas.DLQTopic, Partition: 1, Value: []byte("x")}})
	commit(t, brokers, "pophub", map[string]map[int]int64{hs: {0: 4, 1: 2}, he: {0: 2, 1: 2}})

	store := &keyStore{keys: map[schemas.EventKey]bool{}}
	for _, id := range []string{"hs-1", "hs-2", "hs-late"} {
		store.keys[schemas.EventKey{Source: schemas.Housing, ID: id}] = true
	}
	for _, id := range []string{"h-1", "h-3"} {
		store.keys[schemas.EventKey{Source: schemas.Health, ID: id}] = true
	}
	rep, err := Run(context.Background(), Config{Brokers: brokers, Store: store, Sources: []schemas.Source{schemas.Housing, schemas.Health}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `housing: 6 records up to committed offsets = 2 applied + 2 duplicates + 1 rejected; gap 1
  in flight: 1 records past the committed offsets (not checked)
  GAP pop.events.housing/1@1 event hs-lost: not in the DLQ and its event is not in the store
health: 4 records up to committed offsets = 2 applied + 0 duplicates + 1 rejected; gap 1
  GAP pop.events.health/0@1 event -: not in the DLQ and not a decodable event of this source
all sources: 10 records up to committed offsets = 4 applied + 2 duplicates + 2 rejected; gap 2; in flight 1
`
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
	if rep.Gaps() != 2 || rep.DLQRecords != 4 {
		t.Errorf("gaps %d, DLQ records %d; want 2 and 4", rep.Gaps(), rep.DLQRecords)
	}
}

// TestRunNothingCommitted: a group that committed nothing has every
// record in flight and nothing to check.
func TestRunNothingCommitted(t *testing.T) {
	brokers := startKafka(t, 1)
	produce(t, brokers, []kafka.Message{{Topic: schemas.Topic(schemas.Tax), Value: envelope(schemas.Tax, "t-1")}})
	rep, err := Run(context.Background(), Config{Brokers: brokers, Group: "nobody", Store: &keyStore{}, Sources: []schemas.Source{schemas.Tax}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	s := rep.Sources[0]
	if s.Records != 0 || s.InFlight != 1 || rep.Gaps() != 0 || s.Partitions[0].Committed != -1 {
		t.Errorf("got %+v", s)
	}
}

// TestRunExpiredUnread: retention deletes records past the committed
// offset while the hub is stopped. The hub never read them, so they are
// lost, and the report must count them among the gaps (which makes
// `pophub reconcile` exit 1) rather than pass them unseen.
func TestRunExpiredUnread(t *testing.T) {
	brokers := startKafka(t, 1)
	topic := schemas.Topic(schemas.Housing)
	var msgs []kafka.Message
	for i := range 6 {
		msgs = append(msgs, kafka.Message{Topic: topic, Partition: 0, Value: envelope(schemas.Housing, "h"+strconv.Itoa(i))})
	}
	produce(t, brokers, msgs)
	store := &keyStore{keys: map[schemas.EventKey]bool{
		{Source: schemas.Housing, ID: "h0"}: true, {Source: schemas.Housing, ID: "h1"}: true}}
	commit(t, brokers, "pophub", map[string]map[int]int64{topic: {0: 2}})
	deleteRecords(t, brokers, topic, 0, 4) // offsets 0 to 3: 2 and 3 were never read

	rep, err := Run(context.Background(), Config{Brokers: brokers, Store: store, Sources: []schemas.Source{schemas.Housing}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `housing: 0 records up to committed offsets = 0 applied + 0 duplicates + 0 rejected; gap 0; expired unread 2
  in flight: 2 records past the committed offsets (not checked)
  EXPIRED UNREAD pop.events.housing/0@2..3: committed offset 2 is below the log start 4; retention deleted 2 records the hub never read
all sources: 0 records up to committed offsets = 0 applied + 0 duplicates + 0 rejected; gap 0; expired unread 2; in flight 2
`
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
	if got := rep.Gaps(); got != 2 {
		t.Errorf("Gaps() = %d, want 2: offsets 2 and 3 were neither applied nor rejected", got)
	}
	if got := rep.Sources[0].ExpiredUnread; got != 2 {
		t.Errorf("ExpiredUnread = %d, want 2", got)
	}
}

// deleteRecords deletes a partition's records below offset before, as
// retention does.
func deleteRecords(t testing.TB, brokers []string, topic string, partition int32, before int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = partition, before
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatalf("deleting records of %s/%d: %v", topic, partition, err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("deleting records of %s/%d: %v", topic, partition, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := Run(context.Background(), Config{}); err == nil || !strings.Contains(err.Error(), "no Kafka brokers") || !strings.Contains(err.Error(), "no store") {
		t.Errorf("Run(Config{}) = %v", err)
	}
	if _, err := Run(context.Background(), Config{Brokers: []string{"x"}, Store: &keyStore{}, Sources: []schemas.Source{"nope"}}); err == nil {
		t.Error("an unknown source passed")
	}
}

// BenchmarkRun reconciles b.N rounds over 20,000 records in 8
// partitions (half of them re-sent ids, 1% in the DLQ).
func BenchmarkRun(b *testing.B) {
	const n = 20000
	brokers := startKafka(b, 8)
	topic := schemas.Topic(schemas.Housing)
	store := &keyStore{keys: map[schemas.EventKey]bool{}}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.RoundRobin{}, BatchSize: 1000, BatchTimeout: time.Millisecond}
	var msgs []kafka.Message
	for i := range n {
		id := "hs-" + strconv.Itoa(i%(n/2))
		msgs = append(msgs, kafka.Message{Value: envelope(schemas.Housing, id)})
		store.keys[schemas.EventKey{Source: schemas.Housing, ID: id}] = true
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		b.Fatal(err)
	}
	w.Close()
	offs := map[int]int64{}
	cl := &kafka.Client{Addr: kafka.TCP(brokers...)}
	var reqs []kafka.OffsetRequest
	for p := range 8 {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	// The broker may show the last batches a moment after the writer
	// returned; wait until the partitions hold every record.
	for deadline := time.Now().Add(10 * time.Second); ; {
		lo, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			b.Fatal(err)
		}
		var sum int64
		for _, o := range lo.Topics[topic] {
			offs[o.Partition] = o.LastOffset
			sum += o.LastOffset
		}
		if sum == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the topic holds %d records, want %d", sum, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	commit(b, brokers, "pophub", map[string]map[int]int64{topic: offs})
	b.ResetTimer()
	for b.Loop() {
		rep, err := Run(context.Background(), Config{Brokers: brokers, Store: store, Sources: []schemas.Source{schemas.Housing}})
		if err != nil {
			b.Fatal(err)
		}
		if s := rep.Sources[0]; s.Records != n || s.Applied != n/2 || len(s.Gaps) != 0 {
			b.Fatalf("got %+v", s)
		}
	}
	b.ReportMetric(float64(n), "records/op")
}

// TestRunRetriesTransientFetchErrors: a broker that answers a fetch with
// a retriable error (a leader moving) is asked again; the scan does not
// fail on one slow or busy answer.
func TestRunRetriesTransientFetchErrors(t *testing.T) {
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 1})
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	brokers := []string{k.Addr()}
	msgs := []kafka.Message{{Topic: schemas.Topic(schemas.Tax), Value: envelope(schemas.Tax, "t-1")},
		{Topic: schemas.Topic(schemas.Tax), Value: envelope(schemas.Tax, "t-2")}}
	produce(t, brokers, msgs)
	commit(t, brokers, "hub", map[string]map[int]int64{schemas.Topic(schemas.Tax): {0: 2}})

	var refused atomic.Int32
	c := k.Cluster()
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if refused.Load() >= fetchAttempts-1 {
			return nil, nil, false
		}
		refused.Add(1)
		fetch := req.(*kmsg.FetchRequest)
		resp := fetch.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range fetch.Topics {
			t := kmsg.NewFetchResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewFetchResponseTopicPartition()
				p.Partition, p.ErrorCode = rp.Partition, kerr.NotLeaderForPartition.Code
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil, true
	})
	rep, err := Run(context.Background(), Config{Brokers: brokers, Group: "hub", Sources: []schemas.Source{schemas.Tax},
		Store: &keyStore{keys: map[schemas.EventKey]bool{{Source: schemas.Tax, ID: "t-1"}: true, {Source: schemas.Tax, ID: "t-2"}: true}}})
	if err != nil {
		t.Fatalf("Run after %d refused fetches: %v", refused.Load(), err)
	}
	if refused.Load() != fetchAttempts-1 {
		t.Errorf("%d fetches refused, want %d: the test did not exercise the retry", refused.Load(), fetchAttempts-1)
	}
	if tot := rep.Total(); tot.Applied != 2 || rep.Gaps() != 0 {
		t.Errorf("report %+v, want 2 applied and no gap", tot)
	}
}
