package dlq_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/schemas"
)

const (
	idA         = "230102199001011230"
	idB         = "11010519491231002X"
	traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
)

// reject is a DLQ record as hub/ingest writes it.
type reject struct {
	dlqPartition int
	key, value   string
	reason       string
	field        string
	topic        string // "" leaves out every origin header
	partition    int
	offset       int64
}

// seeded is the DLQ every test starts from: two partitions, in the order
// written, IDs 0:0 0:1 0:2 0:3 1:0.
var seeded = []reject{
	{0, idA, `{"id":"m-1","source":"marriage","subject":"` + idA + `","data":{"spouse_id":"` + idB + `"}}`, schemas.ReasonInvalidData, "data.spouse_id", schemas.Topic(schemas.Marriage), 1, 5},
	{0, idB, "\x00 not json " + idB, schemas.ReasonNotJSON, "", schemas.Topic(schemas.Health), 0, 7},
	{0, idB, `{"id":"m-2","source":"marriage","subject":"` + idB + `"}`, schemas.ReasonInvalidData, "data", schemas.Topic(schemas.Marriage), 0, 9},
	{0, idA, "junk", schemas.ReasonNotJSON, "", "", 0, 0},
	{1, idA, `{"id":"h-1","source":"housing","subject":"` + idA + `"}`, schemas.ReasonUnknownAddressCode, "data.address_code", schemas.Topic(schemas.Housing), 1, 3},
}

// originalHeaders are the headers the department sent with every record.
var originalHeaders = []kafka.Header{{Key: "traceparent", Value: []byte(traceparent)}, {Key: "origin", Value: []byte("test")}}

// setup starts a Kafka-protocol broker (two partitions per topic), writes
// the seeded rejects to its DLQ and returns a client for it.
func setup(t *testing.T) (*dlq.Client, string) {
	t.Helper()
	c, k := setupKafka(t)
	return c, k.Addr()
}

// setupKafka is setup, returning the broker itself.
func setupKafka(t *testing.T) (*dlq.Client, *embedded.Kafka) {
	t.Helper()
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	for _, r := range seeded {
		writeReject(t, k.Addr(), r)
	}
	c, err := dlq.New(dlq.Config{Brokers: []string{k.Addr()}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// TestSlowBroker: a broker that takes longer than a fast reader's wait to
// start answering a fetch (a busy broker, a distant one) is still read:
// kafka-go drops and asks again a fetch whose answer has not started
// within the reader's MaxWait, which at 100 ms never ended here.
func TestSlowBroker(t *testing.T) {
	c, k := setupKafka(t)
	cl := k.Cluster()
	cl.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		cl.SleepControl(func() { time.Sleep(300 * time.Millisecond) })
		return nil, nil, false // then answered as usual
	})
	all, err := c.Records(ctx(t), dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all), "0:0 0:1 0:2 0:3 1:0"; got != want {
		t.Errorf("records %s, want %s", got, want)
	}
}

// TestSpansOutOfTime: offsets asked of a broker slower than the caller's
// time are reported as the caller's deadline, not as the broker's
// "unexpected server error" that kafka-go puts on each partition of a
// request it gave up on (what pophub status shows).
func TestSpansOutOfTime(t *testing.T) {
	_, k := setupKafka(t)
	cl := k.Cluster()
	// kafka-go asks for first and last offsets in separate requests; the
	// first is answered at once, the others after the caller's time.
	var asked atomic.Int32
	cl.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		if asked.Add(1) > 1 {
			cl.SleepControl(func() { time.Sleep(time.Second) })
		}
		return nil, nil, false
	})
	client := &kafka.Client{Addr: kafka.TCP(k.Addr())}
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := dlq.Spans(c, client, schemas.DLQTopic)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Spans from a broker slower than the caller's 300 ms: %v, want the deadline", err)
	}
}

// writeReject writes r to the DLQ as ingest would, with extra headers
// last.
func writeReject(t *testing.T, addr string, r reject, extra ...kafka.Header) {
	t.Helper()
	writeRejectAs(t, addr, nil, r, extra...)
}

// writeRejectAs is writeReject logging in with login (nil: none).
func writeRejectAs(t *testing.T, addr string, login sasl.Mechanism, r reject, extra ...kafka.Header) {
	t.Helper()
	headers := append([]kafka.Header(nil), originalHeaders...)
	headers = append(headers,
		kafka.Header{Key: ingest.HeaderReason, Value: []byte(r.reason)},
		kafka.Header{Key: ingest.HeaderField, Value: []byte(r.field)},
		kafka.Header{Key: ingest.HeaderError, Value: []byte(r.reason + ": something is wrong")})
	if r.topic != "" {
		headers = append(headers,
			kafka.Header{Key: ingest.HeaderTopic, Value: []byte(r.topic)},
			kafka.Header{Key: ingest.HeaderPartition, Value: []byte(strconv.Itoa(r.partition))},
			kafka.Header{Key: ingest.HeaderOffset, Value: []byte(strconv.FormatInt(r.offset, 10))})
	}
	headers = append(headers, extra...)
	p := r.dlqPartition
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: schemas.DLQTopic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return p })}
	if login != nil {
		w.Transport = &kafka.Transport{SASL: login}
	}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte(r.key), Value: []byte(r.value), Headers: headers}); err != nil {
		t.Fatal(err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func ids(recs []dlq.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.ID.String())
	}
	return strings.Join(s, " ")
}

func TestRecordsGroupAndFilter(t *testing.T) {
	c, _ := setup(t)
	all, err := c.Records(ctx(t), dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all), "0:0 0:1 0:2 0:3 1:0"; got != want {
		t.Errorf("records %s, want %s", got, want)
	}
	sum := dlq.Summarize(all)
	want := map[schemas.Source]map[string]int{
		schemas.Marriage: {schemas.ReasonInvalidData: 2},
		schemas.Health:   {schemas.ReasonNotJSON: 1},
		schemas.Housing:  {schemas.ReasonUnknownAddressCode: 1},
		"":               {schemas.ReasonNotJSON: 1},
	}
	if sum.Total != 5 || len(sum.Counts) != len(want) {
		t.Errorf("summary %+v, want %v", sum, want)
	}
	for src, reasons := range want {
		for reason, n := range reasons {
			if sum.Counts[src][reason] != n {
				t.Errorf("count %q/%s = %d, want %d", src, reason, sum.Counts[src][reason], n)
			}
		}
	}
	if sum.ByReason[schemas.ReasonNotJSON] != 2 || sum.BySource[schemas.Marriage] != 2 {
		t.Errorf("by reason %v, by source %v", sum.ByReason, sum.BySource)
	}

	for _, tc := range []struct {
		name   string
		filter dlq.Filter
		want   string
	}{
		{"reason", dlq.Filter{Reason: schemas.ReasonInvalidData}, "0:0 0:2"},
		{"source", dlq.Filter{Source: schemas.Housing}, "1:0"},
		{"both", dlq.Filter{Source: schemas.Health, Reason: schemas.ReasonNotJSON}, "0:1"},
		{"none match", dlq.Filter{Source: schemas.Tax}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := c.Records(ctx(t), tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(recs); got != tc.want {
				t.Errorf("records %q, want %q", got, tc.want)
			}
		})
	}
	for _, f := range []dlq.Filter{{Reason: "bad_vibes"}, {Source: "police"}} {
		if _, err := c.Records(ctx(t), f); err == nil || !strings.Contains(err.Error(), "unknown") {
			t.Errorf("Records(%+v) error %v, want an unknown reason/source error", f, err)
		}
	}
}

func TestRecordDecodes(t *testing.T) {
	c, _ := setup(t)
	r, err := c.Record(ctx(t), dlq.ID{Partition: 0, Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	s := seeded[0]
	if string(r.Key) != s.key || string(r.Value) != s.value || r.Reason != s.reason || r.Field != s.field ||
		r.Topic != s.topic || r.Partition != s.partition || r.Offset != s.offset || r.Source() != schemas.Marriage {
		t.Errorf("record %+v, want %+v", r, s)
	}
	if len(r.Headers) != 2 || r.Headers[0].Key != "traceparent" || r.Headers[1].Key != "origin" {
		t.Errorf("headers %v, want the original two only", r.Headers)
	}
	noOrigin, err := c.Record(ctx(t), dlq.ID{Partition: 0, Offset: 3})
	if err != nil {
		t.Fatal(err)
	}
	if noOrigin.Topic != "" || noOrigin.Partition != -1 || noOrigin.Offset != -1 {
		t.Errorf("record without origin headers: %+v", noOrigin)
	}
	for _, tc := range []struct {
		id   dlq.ID
		want string
	}{
		{dlq.ID{Partition: 0, Offset: 99}, "partition 0 holds offsets 0 to 3"},
		{dlq.ID{Partition: 7, Offset: 0}, "no partition 7"},
		{dlq.ID{Partition: -1, Offset: 0}, "give PARTITION:OFFSET"},
	} {
		_, err := c.Record(ctx(t), tc.id)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Record(%v) error %v, want it to say %q", tc.id, err, tc.want)
		}
	}
	if _, err := c.Record(ctx(t), dlq.ID{Partition: 1, Offset: 5}); !errors.Is(err, dlq.ErrUnknownRecord) {
		t.Errorf("unknown offset: error %v, want ErrUnknownRecord", err)
	}
}

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want dlq.ID
		ok   bool
	}{
		{"3:17", dlq.ID{Partition: 3, Offset: 17}, true},
		{"17", dlq.ID{Partition: -1, Offset: 17}, true},
		{" 0:0 ", dlq.ID{}, true},
		{"-1:4", dlq.ID{}, false},
		{"a:1", dlq.ID{}, false},
		{"1:", dlq.ID{}, false},
		{"-3", dlq.ID{}, false},
		{"", dlq.ID{}, false},
	} {
		got, err := dlq.ParseID(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseID(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// readTopic returns every record of topic, by partition order.
func readTopic(t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	return readTopicAs(t, addr, nil, topic)
}

// readTopicAs is readTopic logging in with login (nil: none).
func readTopicAs(t *testing.T, addr string, login sasl.Mechanism, topic string) []kafka.Message {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second}
	var dialer *kafka.Dialer
	if login != nil {
		cl.Transport = &kafka.Transport{SASL: login}
		dialer = &kafka.Dialer{Timeout: 5 * time.Second, SASLMechanism: login}
	}
	resp, err := cl.ListOffsets(ctx(t), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.LastOffsetOf(0), kafka.LastOffsetOf(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	// In partition order: the response lists partitions in no fixed order.
	parts := resp.Topics[topic]
	slices.SortFunc(parts, func(a, b kafka.PartitionOffsets) int { return a.Partition - b.Partition })
	var out []kafka.Message
	for _, po := range parts {
		if po.LastOffset <= 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: po.Partition, MaxWait: 50 * time.Millisecond, Dialer: dialer})
		for range po.LastOffset {
			m, err := r.FetchMessage(ctx(t))
			if err != nil {
				t.Fatalf("reading %s/%d: %v", topic, po.Partition, err)
			}
			out = append(out, m)
		}
		r.Close()
	}
	return out
}

func header(m kafka.Message, key string) (string, int) {
	var v string
	n := 0
	for _, h := range m.Headers {
		if h.Key == key {
			v, n = string(h.Value), n+1
		}
	}
	return v, n
}

func TestReplay(t *testing.T) {
	c, addr := setup(t)
	marriage, housing, health := schemas.Topic(schemas.Marriage), schemas.Topic(schemas.Housing), schemas.Topic(schemas.Health)

	dry, err := c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{{Partition: 0, Offset: 0}, {Partition: 1, Offset: 0}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if ids(dry.Sent) != "0:0 1:0" || !dry.DryRun || len(readTopic(t, addr, marriage)) != 0 {
		t.Fatalf("dry run: %+v; it must send nothing", dry)
	}

	res, err := c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{{Partition: 0, Offset: 0}, {Partition: 1, Offset: 0}, {Partition: 0, Offset: 0}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if ids(res.Sent) != "0:0 1:0" || len(res.Skipped) != 0 {
		t.Errorf("first replay sent %q, skipped %q", ids(res.Sent), ids(res.Skipped))
	}
	check := func(topic string, want ...reject) {
		t.Helper()
		got := readTopic(t, addr, topic)
		if len(got) != len(want) {
			t.Fatalf("%s holds %d records, want %d", topic, len(got), len(want))
		}
		for i, m := range got {
			w := want[i]
			if string(m.Key) != w.key || string(m.Value) != w.value {
				t.Errorf("%s record %d: key %q value %q, want the original", topic, i, m.Key, m.Value)
			}
			if len(m.Headers) != 3 || m.Headers[0].Key != "traceparent" || m.Headers[1].Key != "origin" {
				t.Errorf("%s record %d headers %v, want traceparent, origin, %s", topic, i, m.Headers, dlq.HeaderReplayOf)
			}
			if v, _ := header(m, "traceparent"); v != traceparent {
				t.Errorf("traceparent %q", v)
			}
			if v, n := header(m, dlq.HeaderReplayOf); n != 1 || v != strconv.Itoa(w.dlqPartition)+":"+strconv.Itoa(indexIn(w)) {
				t.Errorf("%s = %q (%d times)", dlq.HeaderReplayOf, v, n)
			}
		}
	}
	check(marriage, seeded[0])
	check(housing, seeded[4])

	again, err := c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{{Partition: 1, Offset: 0}, {Partition: 0, Offset: 0}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Sent) != 0 || ids(again.Skipped) != "1:0 0:0" {
		t.Errorf("second replay sent %q, skipped %q; want nothing sent", ids(again.Sent), ids(again.Skipped))
	}
	check(marriage, seeded[0])
	check(housing, seeded[4])

	byReason, err := c.Replay(ctx(t), dlq.Selection{Reason: schemas.ReasonInvalidData}, false)
	if err != nil {
		t.Fatal(err)
	}
	if ids(byReason.Sent) != "0:2" || ids(byReason.Skipped) != "0:0" {
		t.Errorf("replay by reason sent %q, skipped %q", ids(byReason.Sent), ids(byReason.Skipped))
	}
	check(marriage, seeded[0], seeded[2])

	// Bad input fails before anything is sent.
	for _, tc := range []struct {
		name string
		sel  dlq.Selection
		want string
	}{
		{"unknown offset", dlq.Selection{IDs: []dlq.ID{{Partition: 0, Offset: 1}, {Partition: 0, Offset: 42}}}, "no such DLQ record"},
		{"no topic header", dlq.Selection{IDs: []dlq.ID{{Partition: 0, Offset: 1}, {Partition: 0, Offset: 3}}}, "0:3 has no pophub-topic header"},
		{"all, one without topic", dlq.Selection{All: true}, "0:3 has no pophub-topic header"},
		{"unknown reason", dlq.Selection{Reason: "bad_vibes"}, `unknown reason "bad_vibes"`},
		{"nothing chosen", dlq.Selection{}, "choose the records"},
		{"two choices", dlq.Selection{All: true, Reason: schemas.ReasonNotJSON}, "choose the records"},
		{"unknown source", dlq.Selection{Source: "civil_affairs"}, `unknown source "civil_affairs"`},
		{"source and all", dlq.Selection{All: true, Source: schemas.Marriage}, "choose the records"},
		{"source and IDs", dlq.Selection{IDs: []dlq.ID{{Partition: 0, Offset: 1}}, Source: schemas.Health}, "choose the records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Replay(ctx(t), tc.sel, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
	if got := readTopic(t, addr, health); len(got) != 0 {
		t.Errorf("a failed replay sent %d records to %s", len(got), health)
	}
}

// indexIn is a seeded reject's offset in its DLQ partition.
func indexIn(r reject) int {
	n := 0
	for _, s := range seeded {
		if s == r {
			return n
		}
		if s.dlqPartition == r.dlqPartition {
			n++
		}
	}
	return -1
}

// TestReplayBySource: a source alone chooses every record from its topic
// (and not the topic-less 0:3, on which --all fails), with a reason those
// of that reason; the other sources' rejects are neither sent nor
// recorded in the ledger.
func TestReplayBySource(t *testing.T) {
	c, addr := setup(t)
	marriage, housing, health := schemas.Topic(schemas.Marriage), schemas.Topic(schemas.Housing), schemas.Topic(schemas.Health)
	for _, tc := range []struct {
		name string
		sel  dlq.Selection
		want string // the chosen records, all to be sent
	}{
		{"source alone", dlq.Selection{Source: schemas.Health}, "0:1"},
		{"source and reason", dlq.Selection{Source: schemas.Marriage, Reason: schemas.ReasonInvalidData}, "0:0 0:2"},
		{"source without that reason", dlq.Selection{Source: schemas.Health, Reason: schemas.ReasonInvalidData}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dry, err := c.Replay(ctx(t), tc.sel, true)
			if err != nil {
				t.Fatal(err)
			}
			if ids(dry.Chosen) != tc.want || ids(dry.Sent) != tc.want || len(dry.Skipped) != 0 {
				t.Errorf("dry run chose %q, would send %q, skip %q; want %q sent", ids(dry.Chosen), ids(dry.Sent), ids(dry.Skipped), tc.want)
			}
		})
	}
	if got := readTopic(t, addr, health); len(got) != 0 {
		t.Fatalf("a dry run sent %d records to %s", len(got), health)
	}

	res, err := c.Replay(ctx(t), dlq.Selection{Source: schemas.Marriage, Reason: schemas.ReasonInvalidData}, false)
	if err != nil {
		t.Fatal(err)
	}
	if ids(res.Sent) != "0:0 0:2" {
		t.Errorf("replay of marriage's invalid_data sent %q, want 0:0 0:2", ids(res.Sent))
	}
	for topic, n := range map[string]int{marriage: 2, health: 0, housing: 0} {
		if got := readTopic(t, addr, topic); len(got) != n {
			t.Errorf("%s holds %d records after marriage's replay, want %d", topic, len(got), n)
		}
	}
	again, err := c.Replay(ctx(t), dlq.Selection{Source: schemas.Marriage}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Sent) != 0 || ids(again.Skipped) != "0:0 0:2" {
		t.Errorf("second replay of marriage would send %q, skip %q; want both skipped", ids(again.Sent), ids(again.Skipped))
	}
	other, err := c.Replay(ctx(t), dlq.Selection{Source: schemas.Housing}, true)
	if err != nil {
		t.Fatal(err)
	}
	if ids(other.Sent) != "1:0" || len(other.Skipped) != 0 {
		t.Errorf("replay of housing after marriage's would send %q, skip %q; want 1:0 sent", ids(other.Sent), ids(other.Skipped))
	}
}

// TestReplayRefusesDroppedCopy: a copy that ingest wrote without its value
// (too large for the DLQ) decodes with Dropped set, and replaying it fails
// with an error that says where the original was, sending nothing, rather
// than sending an empty record in its place. Here the source topic does
// not hold that offset: the error says the value is lost.
func TestReplayRefusesDroppedCopy(t *testing.T) {
	c, addr := setup(t)
	marriage := schemas.Topic(schemas.Marriage)
	writeReject(t, addr, reject{1, idA, "", schemas.ReasonNotJSON, "", marriage, 0, 12},
		kafka.Header{Key: ingest.HeaderDropped, Value: []byte("value")})
	id := dlq.ID{Partition: 1, Offset: 1}

	r, err := c.Record(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != "value" || r.Topic != marriage || r.Offset != 12 || len(r.Headers) != len(originalHeaders) {
		t.Errorf("record %+v; want Dropped \"value\", the origin, and only the original headers", r)
	}

	_, err = c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{{Partition: 0, Offset: 0}, id}}, false)
	want := "DLQ record 1:1 is a copy without its value (too large for the DLQ), and " + marriage + " partition 0 no longer holds the original at offset 12"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("replay error %v, want it to say %q", err, want)
	}
	if got := readTopic(t, addr, marriage); len(got) != 0 {
		t.Errorf("a refused replay sent %d records to %s", len(got), marriage)
	}
}

// TestSASL: against brokers that require SASL/SCRAM-SHA-512 (an access
// policy), a client with Config.SASL lists, shows and replays, through
// every connection it makes (metadata, readers, the replay writer, the
// ledger); one without is refused.
func TestSASL(t *testing.T) {
	admin := access.SCRAMClient{User: "admin", Password: "pw"}
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 2,
		Options: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(access.SCRAMMechanism, admin.User, admin.Password)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	r := seeded[0]
	writeRejectAs(t, k.Addr(), admin, r)

	anonymous, err := dlq.New(dlq.Config{Brokers: []string{k.Addr()}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anonymous.Records(ctx(t), dlq.Filter{}); err == nil {
		t.Error("a client without SASL read the DLQ of brokers that require it")
	}

	c, err := dlq.New(dlq.Config{Brokers: []string{k.Addr()}, Timeout: 5 * time.Second, SASL: admin})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := c.Records(ctx(t), dlq.Filter{})
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	if ids(recs) != "0:0" {
		t.Fatalf("records %s, want 0:0", ids(recs))
	}
	if rec, err := c.Record(ctx(t), dlq.ID{Partition: 0, Offset: 0}); err != nil || string(rec.Value) != r.value {
		t.Fatalf("Record 0:0: %q, %v; want the seeded value", rec.Value, err)
	}
	sel := dlq.Selection{IDs: []dlq.ID{{Partition: 0, Offset: 0}}}
	res, err := c.Replay(ctx(t), sel, false)
	if err != nil || ids(res.Sent) != "0:0" {
		t.Fatalf("Replay: sent %q, %v", ids(res.Sent), err)
	}
	if got := readTopicAs(t, k.Addr(), admin, r.topic); len(got) != 1 || string(got[0].Value) != r.value {
		t.Errorf("%s holds %d records, want the replayed one", r.topic, len(got))
	}
	// The ledger, written and read through SASL too, skips it next time.
	res, err = c.Replay(ctx(t), sel, false)
	if err != nil || len(res.Sent) != 0 || ids(res.Skipped) != "0:0" {
		t.Errorf("second Replay: sent %q, skipped %q, %v; want 0:0 skipped", ids(res.Sent), ids(res.Skipped), err)
	}
}
