package publisher

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/trace"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

const partitions = 3

func newPublisher(t testing.TB, cfg Config) *Publisher {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func population(t testing.TB, persons int) []schemas.Event {
	t.Helper()
	var out []schemas.Event
	if err := synth.Generate(context.Background(), synth.Config{Persons: persons, Seed: 9}, func(ev schemas.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// consume reads n records from the topics, from the start.
func consume(t testing.TB, addr string, topics []string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(out), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetching %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// invalidEvents are one event for each way a department can get it wrong,
// with the reason the hub would give.
func invalidEvents(t testing.TB, valid schemas.Event) ([]schemas.Event, []string) {
	t.Helper()
	badData := valid
	badData.ID, badData.Data, badData.Payload = "bad-data", []byte(`{"unexpected":true}`), nil
	badSubject := valid
	badSubject.ID = "bad-subject"
	check := byte('1')
	if valid.Subject[17] == '1' {
		check = '2'
	}
	badSubject.Subject = valid.Subject[:17] + citizenid.ID(check)
	wrongSource := valid
	wrongSource.ID, wrongSource.Source = "wrong-source", schemas.Tax
	noID := valid
	noID.ID = ""
	future := valid
	future.ID, future.Time = "future", time.Now().AddDate(0, 1, 0)
	return []schemas.Event{badData, badSubject, wrongSource, noID, future},
		[]string{schemas.ReasonInvalidData, schemas.ReasonInvalidSubject, schemas.ReasonSourceMismatch, schemas.ReasonNotCloudEvent, schemas.ReasonNotCloudEvent}
}

// TestPublish: valid events land on their source's topic, keyed by the
// citizen ID, on the partition a Java client would choose, with the
// caller's trace context, byte for byte as the hub decodes them; invalid
// ones are reported each with its reason and not sent.
func TestPublish(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}})
	events := population(t, 200)
	bad, reasons := invalidEvents(t, events[0])
	all := append(append([]schemas.Event(nil), events[:len(events)/2]...), bad...)
	all = append(all, events[len(events)/2:]...)

	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	before := time.Now().Truncate(time.Millisecond)
	results, err := p.Publish(ctx, all...)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if len(results) != len(all) {
		t.Fatalf("%d results for %d events", len(results), len(all))
	}
	badAt := map[string]string{}
	for i, ev := range bad {
		badAt[ev.ID] = reasons[i]
	}
	for i, r := range results {
		if r.ID != all[i].ID {
			t.Fatalf("result %d is for %q, want %q", i, r.ID, all[i].ID)
		}
		want, isBad := badAt[r.ID]
		if i < len(events)/2 || i >= len(events)/2+len(bad) {
			isBad = false
		}
		switch {
		case isBad && schemas.ReasonOf(r.Err) != want:
			t.Errorf("invalid event %q: result %v, want reason %s", r.ID, r.Err, want)
		case !isBad && r.Err != nil:
			t.Errorf("event %s: %v", r.ID, r.Err)
		}
	}

	want := map[string][]byte{} // by topic/id: the encoded event
	perTopic := map[string]int{}
	for _, ev := range events {
		v, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		want[schemas.Topic(ev.Source)+"/"+ev.ID] = v
		perTopic[schemas.Topic(ev.Source)]++
	}
	if len(perTopic) != len(schemas.Sources) {
		t.Fatalf("the population covers %d sources, want all %d", len(perTopic), len(schemas.Sources))
	}
	records := consume(t, addr, schemas.Topics(), len(events))
	javaPartition := kgo.StickyKeyPartitioner(nil)
	traceparent := regexp.MustCompile(`^00-` + sc.TraceID().String() + `-[0-9a-f]{16}-01$`)
	for _, r := range records {
		ev, err := schemas.Decode(schemas.Input{Topic: r.Topic, Key: r.Key, Value: r.Value})
		if err != nil {
			t.Fatalf("a record on %s does not decode: %v", r.Topic, err)
		}
		v, ok := want[r.Topic+"/"+ev.ID]
		if !ok {
			t.Fatalf("unexpected record %s on %s", ev.ID, r.Topic)
		}
		delete(want, r.Topic+"/"+ev.ID)
		if !bytes.Equal(r.Value, v) {
			t.Errorf("record %s differs from the event published", ev.ID)
		}
		if string(r.Key) != string(ev.Subject) {
			t.Errorf("record %s: key is not the citizen ID", ev.ID)
		}
		if got, want := r.Partition, int32(javaPartition.ForTopic(r.Topic).Partition(&kgo.Record{Key: r.Key}, partitions)); got != want {
			t.Errorf("record %s on partition %d; the Java partitioner chooses %d", ev.ID, got, want)
		}
		if tp := header(r, "traceparent"); !traceparent.MatchString(tp) {
			t.Errorf("record %s: traceparent %q does not carry the caller's trace", ev.ID, tp)
		}
		// Time-based retention and lag read the record's timestamp.
		if r.Timestamp.Before(before) || r.Timestamp.After(after) {
			t.Errorf("record %s stamped %s, not when it was published", ev.ID, r.Timestamp)
		}
	}
	for topic, n := range perTopic {
		if got := testenv.RecordCount(t, addr, topic); got != int64(n) {
			t.Errorf("%s holds %d records, want the %d valid events", topic, got, n)
		}
	}
	if got := testenv.RecordCount(t, addr, schemas.DLQTopic); got != 0 {
		t.Errorf("the publisher wrote %d records to the DLQ", got)
	}
}

func TestSourceRestriction(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}, Source: schemas.Housing})
	var housing, other schemas.Event
	for _, e := range population(t, 40) {
		switch {
		case e.Source == schemas.Housing && housing.ID == "":
			housing = e
		case e.Source == schemas.PublicSecurity && other.ID == "":
			other = e
		}
	}
	res, err := p.Publish(context.Background(), other, housing)
	if err != nil {
		t.Fatal(err)
	}
	if schemas.ReasonOf(res[0].Err) != schemas.ReasonSourceMismatch || res[1].Err != nil {
		t.Fatalf("results %+v: want source_mismatch for the public_security event, success for the housing one", res)
	}
	if n := testenv.RecordCount(t, addr, schemas.Topic(schemas.PublicSecurity)); n != 0 {
		t.Errorf("%d records on the public_security topic", n)
	}
}

func TestEventID(t *testing.T) {
	a := EventID(schemas.Housing, "lease-77", 3)
	if a != EventID(schemas.Housing, "lease-77", 3) {
		t.Error("EventID is not deterministic")
	}
	for _, other := range []string{
		EventID(schemas.Housing, "lease-77", 4),
		EventID(schemas.Tax, "lease-77", 3),
		EventID(schemas.Housing, "lease-7", 73),
		EventID(schemas.Housing, "lease-773", 0),
	} {
		if other == a {
			t.Errorf("EventID collides: %s", a)
		}
	}
	if !regexp.MustCompile(`^housing-[0-9a-f]{24}-[0-9a-f]{16}$`).MatchString(a) {
		t.Errorf("EventID = %q, want housing-<24 hex digits>-<16 hex digits>", a)
	}
	// A record's versions sort as their ids do, negative ones first.
	versions := []int64{math.MinInt64, -2, -1, 0, 1, 2, 9, 10, 255, 256, 1 << 40, math.MaxInt64}
	for i := 1; i < len(versions); i++ {
		lo, hi := EventID(schemas.Housing, "lease-77", versions[i-1]), EventID(schemas.Housing, "lease-77", versions[i])
		if lo >= hi {
			t.Errorf("EventID of version %d (%s) does not sort before that of version %d (%s)", versions[i-1], lo, versions[i], hi)
		}
	}
	if strings.Contains(a, "lease") {
		t.Error("EventID exposes the department's record key")
	}
}

// TestResend: publishing the same events again sends the same records, so
// the hub, which applies each (source, id) once, sees no change.
func TestResend(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}, Source: schemas.Marriage})
	var evs []schemas.Event
	for _, e := range population(t, 60) {
		if e.Source == schemas.Marriage {
			e.ID = EventID(schemas.Marriage, "certificate-"+e.ID, 1)
			evs = append(evs, e)
		}
	}
	for range 2 {
		if _, err := p.Publish(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	recs := consume(t, addr, []string{schemas.Topic(schemas.Marriage)}, 2*len(evs))
	byID := map[string][][]byte{}
	for _, r := range recs {
		ev, err := schemas.Decode(schemas.Input{Value: r.Value})
		if err != nil {
			t.Fatal(err)
		}
		byID[ev.ID] = append(byID[ev.ID], r.Value)
	}
	if len(byID) != len(evs) {
		t.Fatalf("%d distinct ids for %d events", len(byID), len(evs))
	}
	for id, vs := range byID {
		if len(vs) != 2 || !bytes.Equal(vs[0], vs[1]) {
			t.Fatalf("event %s: the re-send is not the same record", id)
		}
	}
}

func TestPublishFile(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}, Source: schemas.Housing, BatchSize: 7})
	p.fileChunk = 5 // many chunks, with bad lines at their edges
	var lines []string
	var other string
	sent := map[string]bool{}
	for _, e := range population(t, 80) {
		b, err := schemas.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Source == schemas.Housing:
			lines = append(lines, string(b))
			sent[string(b)] = true
		case other == "":
			other = string(b)
		}
	}
	if len(lines) < 20 {
		t.Fatalf("only %d housing events", len(lines))
	}
	valid := len(lines)
	// Line numbers: 1 has a byte order mark and 2 a CRLF ending; 4 is
	// blank; 5, 6, 7 and the last are bad.
	lines[0] = "\xef\xbb\xbf" + lines[0]
	lines[1] += "\r"
	insert := []string{"", "not json", other, `{"specversion":"1.0"}`}
	lines = append(lines[:3], append(insert, lines[3:]...)...)
	lines = append(lines, `{"specversion":"1.0","id":"x","source":"housing","type":"housing.rental_ended","subject":"230102199001011234","time":"2025-01-01T00:00:00+08:00","data":{"lease_id":"L1","end":"2025-01-01"}}`)
	path := filepath.Join(t.TempDir(), "housing.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := p.PublishFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var badLines []string
	for _, b := range rep.Bad {
		badLines = append(badLines, fmt.Sprintf("%d:%s", b.Line, schemas.ReasonOf(b.Err)))
	}
	wantBad := fmt.Sprintf("[5:not_json 6:source_mismatch 7:not_cloudevent %d:invalid_subject]", len(lines))
	if got := fmt.Sprint(badLines); got != wantBad || rep.BadLines != 4 {
		t.Errorf("bad lines %s (%d counted), want %s", got, rep.BadLines, wantBad)
	}
	if rep.Read != len(lines)-1 || rep.Published != valid {
		t.Errorf("report: %d read, %d published; want %d and %d", rep.Read, rep.Published, len(lines)-1, valid)
	}
	for _, r := range consume(t, addr, []string{schemas.Topic(schemas.Housing)}, valid) {
		if !sent[string(r.Value)] {
			t.Errorf("record %s is not one of the file's events as encoded", r.Value)
		}
	}
	if n := testenv.RecordCount(t, addr, schemas.Topic(schemas.Housing)); n != int64(valid) {
		t.Errorf("%d records on the topic, want %d", n, valid)
	}

	// Past the listing's bound, bad lines are counted and not listed.
	p.listBad = 2
	again, err := p.PublishFile(context.Background(), path)
	if err != nil || again.BadLines != 4 || len(again.Bad) != 2 || again.Bad[1].Line != 6 {
		t.Errorf("with 2 listed: %v, %d bad lines, listed %v", err, again.BadLines, again.Bad)
	}

	if _, err := p.PublishFile(context.Background(), filepath.Join(t.TempDir(), "missing.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestPublishFileLongLine: a line longer than MaxLineBytes is reported
// with its line number as ErrLineTooLong and read past without being
// held — publishing allocates far less than the line's size — and the
// lines around it are sent.
func TestPublishFileLongLine(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}, Source: schemas.Housing})
	var lines []string
	want := map[string]bool{}
	for _, e := range population(t, 80) {
		if e.Source != schemas.Housing {
			continue
		}
		b, err := schemas.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
		want[e.ID] = true
	}
	const longLine, longBytes = 3, 64 << 20
	path := filepath.Join(t.TempDir(), "housing.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i, l := range lines {
		if i == longLine-1 {
			w.WriteString(`{"specversion":"1.0","id":"`)
			for range longBytes / 1024 {
				w.WriteString(strings.Repeat("x", 1024))
			}
			w.WriteString("\"}\n")
		}
		w.WriteString(l + "\n")
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		t.Fatal(err)
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rep, err := p.PublishFile(context.Background(), path)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > longBytes/2 {
		t.Errorf("publishing allocated %d MB for a line of %d MB", alloc>>20, longBytes>>20)
	}
	if rep.Read != len(lines)+1 || rep.Published != len(lines) || rep.BadLines != 1 || len(rep.Bad) != 1 ||
		rep.Bad[0].Line != longLine || !errors.Is(rep.Bad[0].Err, ErrLineTooLong) {
		t.Errorf("report %+v; want %d read, %d published, line %d too long", rep, len(lines)+1, len(lines), longLine)
	}
	for _, r := range consume(t, addr, []string{schemas.Topic(schemas.Housing)}, len(lines)) {
		ev, err := schemas.Decode(schemas.Input{Value: r.Value})
		if err != nil {
			t.Fatal(err)
		}
		if !want[ev.ID] {
			t.Errorf("event %s on the topic is not one of the file's, or is there twice", ev.ID)
		}
		delete(want, ev.ID)
	}
	if n := testenv.RecordCount(t, addr, schemas.Topic(schemas.Housing)); n != int64(len(lines)) {
		t.Errorf("%d records on the topic, want %d", n, len(lines))
	}
}

// TestBrokerUnreachable: when nothing can be sent, Publish says so as a
// whole and for every valid event; invalid ones keep their own reason.
func TestBrokerUnreachable(t *testing.T) {
	p := newPublisher(t, Config{Brokers: []string{"127.0.0.1:1"}, MaxAttempts: 2}) // nothing listens there
	events := population(t, 4)[:3]
	bad, reasons := invalidEvents(t, events[0])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	results, err := p.Publish(ctx, append(events, bad[0])...)
	if err == nil {
		t.Fatal("Publish to an unreachable broker succeeded")
	}
	for i := range events {
		if results[i].Err == nil {
			t.Errorf("event %d: no error", i)
		}
	}
	if schemas.ReasonOf(results[len(events)].Err) != reasons[0] {
		t.Errorf("invalid event: %v", results[len(events)].Err)
	}

	var jsonl []string
	for _, ev := range events {
		b, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		jsonl = append(jsonl, string(b))
	}
	rep, err := p.PublishJSONL(ctx, strings.NewReader(strings.Join(jsonl, "\n")))
	if err == nil || rep.Published != 0 {
		t.Errorf("PublishJSONL to an unreachable broker: %+v, %v", rep, err)
	}
}

// TestCompression: every codec works end to end with the broker.
func TestCompression(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	events := population(t, 10)
	var evs []schemas.Event
	for _, e := range events {
		if e.Source == schemas.SocialInsurance {
			evs = append(evs, e)
		}
	}
	total := 0
	for _, c := range []kafka.Compression{0, NoCompression, kafka.Gzip, kafka.Snappy, kafka.Lz4, kafka.Zstd} {
		p := newPublisher(t, Config{Brokers: []string{addr}, Compression: c})
		res, err := p.Publish(context.Background(), evs...)
		if err != nil {
			t.Fatalf("compression %v: %v", c, err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("compression %v: %v", c, r.Err)
			}
		}
		total += len(evs)
		recs := consume(t, addr, []string{schemas.Topic(schemas.SocialInsurance)}, total)
		for _, r := range recs[total-len(evs):] {
			if _, err := schemas.Decode(schemas.Input{Topic: r.Topic, Key: r.Key, Value: r.Value}); err != nil {
				t.Fatalf("compression %v: %v", c, err)
			}
		}
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no brokers", Config{}},
		{"unknown source", Config{Brokers: []string{"x:9092"}, Source: "police"}},
		{"unknown codec", Config{Brokers: []string{"x:9092"}, Compression: 9}},
		{"negative batch bytes", Config{Brokers: []string{"x:9092"}, BatchBytes: -1}},
		{"batch bytes below an event", Config{Brokers: []string{"x:9092"}, BatchBytes: 1000}},
	} {
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	p, err := New(Config{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if p.w.Compression != kafka.Snappy || p.w.RequiredAcks != kafka.RequireAll || p.w.Async || p.w.AllowAutoTopicCreation {
		t.Errorf("writer: compression %v, acks %v, async %v, auto-create %v", p.w.Compression, p.w.RequiredAcks, p.w.Async, p.w.AllowAutoTopicCreation)
	}
	// Brokers refuse a record batch above message.max.bytes (1 MiB and
	// 12 bytes by default) whole.
	if p.w.BatchBytes != DefaultBatchBytes || DefaultBatchBytes > 1<<20 {
		t.Errorf("writer: batch bytes %d, want the brokers' default limit, %d", p.w.BatchBytes, 1<<20)
	}
	if _, ok := p.w.Balancer.(*kafka.Murmur2Balancer); !ok {
		t.Errorf("balancer %T, want murmur2", p.w.Balancer)
	}
}

// TestPublishGroupsKeepOrder: a large Publish, sent in groups of
// partitions, still puts every partition's records in the order of the
// events, and each on the partition a Java client would choose.
func TestPublishGroupsKeepOrder(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}})
	events := population(t, 300)
	if len(events) < groupedMin {
		t.Fatalf("%d events do not make a grouped publish (%d)", len(events), groupedMin)
	}
	if groups, _ := p.partitionGroups(context.Background(), events); len(groups) < 2 {
		t.Fatalf("%d groups", len(groups))
	}
	results, err := p.Publish(context.Background(), events...)
	if err != nil {
		t.Fatal(err)
	}
	at := map[string]int{}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("event %s: %v", r.ID, r.Err)
		}
		at[schemas.Topic(events[i].Source)+"/"+r.ID] = i
	}
	javaPartition := kgo.StickyKeyPartitioner(nil)
	last := map[string]int{} // by topic/partition: the index of the last event read
	for _, r := range consume(t, addr, schemas.Topics(), len(events)) {
		ev, err := schemas.Decode(schemas.Input{Topic: r.Topic, Key: r.Key, Value: r.Value})
		if err != nil {
			t.Fatal(err)
		}
		if want := int32(javaPartition.ForTopic(r.Topic).Partition(&kgo.Record{Key: r.Key}, partitions)); r.Partition != want {
			t.Errorf("record %s on partition %d; the Java partitioner chooses %d", ev.ID, r.Partition, want)
		}
		tp := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
		i, ok := at[r.Topic+"/"+ev.ID]
		if !ok {
			t.Fatalf("unexpected record %s", ev.ID)
		}
		if prev, seen := last[tp]; seen && prev > i {
			t.Fatalf("%s: event %d after event %d", tp, i, prev)
		}
		last[tp] = i
	}
}

// TestPublishGroupsFailure: when nothing can be sent (here the broker
// drops the connection of every produce request), a grouped Publish says
// so as a whole and for every valid event; invalid ones keep their own
// reason. (A missing topic fails only its own events: see
// TestPublishMissingTopic.)
func TestPublishGroupsFailure(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.Topics()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, errors.New("no produce today"), true
	})
	var logs testenv.LogBuffer
	p := newPublisher(t, Config{Brokers: c.ListenAddrs(), MaxAttempts: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	events := population(t, 300)
	bad, reasons := invalidEvents(t, events[0])
	all := append(append([]schemas.Event(nil), events...), bad...)
	if groups, _ := p.partitionGroups(context.Background(), all); groups == nil {
		t.Fatal("no groups: the grouped path is not under test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results, err := p.Publish(ctx, all...)
	if err == nil {
		t.Fatal("Publish to a broker that takes no records succeeded")
	}
	for i := range events {
		if results[i].Err == nil {
			t.Fatalf("event %d: no error", i)
		}
	}
	for i, r := range results[len(events):] {
		if schemas.ReasonOf(r.Err) != reasons[i] {
			t.Errorf("invalid event %s: %v, want %s", r.ID, r.Err, reasons[i])
		}
	}
	// The warning counts what the broker took, not what was tried.
	if w := logs.String(); !strings.Contains(w, "did not take some events") || !strings.Contains(w, "delivered=0") {
		t.Errorf("the warning does not say that nothing was delivered: %s", w)
	}
}

// BenchmarkPublish reports the publisher's rate (Publish, and PublishFile
// of the same events as JSONL) next to kafka-go's raw Writer.WriteMessages
// of the same encoded records with the same writer settings (acks from all
// replicas, batch size and timeout, compression), to the same broker. The
// difference is the publisher's own work, local validation above all.
//
// The broker runs in this process and shares the CPU, so rates swing with
// whatever else the machine does. Every iteration therefore runs rounds
// of the three, in turns (raw first in one round, last in the next), and
// the ratios reported are the medians of the rounds' ratios, each taken
// between runs a few milliseconds apart; the rates are medians too. A
// first untimed round connects both writers and fetches the metadata.
// The CPU time of the whole process (broker included) per event of each
// run is reported as well: unlike the rates it hardly depends on what
// else the machine is doing.
func BenchmarkPublish(b *testing.B) {
	addr := testenv.Kafka(b, partitions)
	events := population(b, 1000)
	for i := range events {
		// As a department builds them (the package example): a typed
		// payload, which the publisher encodes; synth also gives its JSON.
		events[i].Data = nil
	}
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		v, err := schemas.Encode(e)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: schemas.Topic(e.Source), Key: []byte(e.Subject), Value: v}
	}
	file := filepath.Join(b.TempDir(), "events.jsonl")
	var jsonl []byte
	for _, m := range msgs {
		jsonl = append(append(jsonl, m.Value...), '\n')
	}
	if err := os.WriteFile(file, jsonl, 0o600); err != nil {
		b.Fatal(err)
	}
	p := newPublisher(b, Config{Brokers: []string{addr}})
	raw := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchSize: p.cfg.BatchSize, BatchBytes: p.cfg.BatchBytes, BatchTimeout: p.cfg.BatchTimeout, Compression: p.cfg.Compression}
	defer raw.Close()
	ctx := context.Background()
	runs := []func(){
		func() {
			if err := raw.WriteMessages(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
		},
		func() {
			if _, err := p.Publish(ctx, events...); err != nil {
				b.Fatal(err)
			}
		},
		func() {
			if rep, err := p.PublishFile(ctx, file); err != nil || rep.Published != len(events) {
				b.Fatalf("PublishFile: %+v, %v", rep, err)
			}
		},
	}
	for _, run := range runs {
		run()
	}
	var cpu [3][]float64 // µs of process CPU time per event, by run
	timed := func(j int) time.Duration {
		c0, t0 := cpuTime(b), time.Now()
		runs[j]()
		took := time.Since(t0)
		cpu[j] = append(cpu[j], float64((cpuTime(b)-c0).Microseconds())/float64(len(events)))
		return took
	}
	const roundsPerIteration = 3
	var rawRates, pubRates, fileRates, pubRatios, fileRatios []float64
	round := 0
	for b.Loop() {
		for range roundsPerIteration {
			var took [3]time.Duration
			for j := range runs {
				if round%2 == 1 {
					j = len(runs) - 1 - j
				}
				took[j] = timed(j)
			}
			round++
			rate := func(d time.Duration) float64 { return float64(len(events)) / d.Seconds() }
			rawRates = append(rawRates, rate(took[0]))
			pubRates = append(pubRates, rate(took[1]))
			fileRates = append(fileRates, rate(took[2]))
			pubRatios = append(pubRatios, took[0].Seconds()/took[1].Seconds())
			fileRatios = append(fileRatios, took[0].Seconds()/took[2].Seconds())
		}
	}
	b.ReportMetric(median(rawRates), "raw_events/s")
	b.ReportMetric(median(pubRates), "publisher_events/s")
	b.ReportMetric(median(pubRatios), "publisher_ratio")
	b.ReportMetric(median(fileRates), "file_events/s")
	b.ReportMetric(median(fileRatios), "file_ratio")
	b.ReportMetric(median(cpu[0]), "raw_cpu_µs/event")
	b.ReportMetric(median(cpu[1]), "publisher_cpu_µs/event")
	b.ReportMetric(median(cpu[2]), "file_cpu_µs/event")
	b.Logf("%d rounds of %d events; publisher ratios %.2f, file ratios %.2f", round, len(events), sorted(pubRatios), sorted(fileRatios))
}

func sorted(xs []float64) []float64 {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}

func median(xs []float64) float64 {
	s := sorted(xs)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestConcurrentCallsKeepTheirRecords: calls running at once, large
// (validated and sent in groups) and small, whose record memory is
// reused from one call to the next once acknowledged, each deliver
// exactly the records of their own events, byte for byte.
func TestConcurrentCallsKeepTheirRecords(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}})
	events := population(t, 400)
	if len(events) < 3*groupedMin {
		t.Fatalf("%d events: too few for three grouped calls", len(events))
	}
	want := map[string][]byte{} // topic/id → the encoding of its event
	for _, ev := range events {
		v, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		want[schemas.Topic(ev.Source)+"/"+ev.ID] = v
	}
	// Calls of 7 to 4,000 events, each event in one call, run by four
	// goroutines, several calls each.
	var calls [][]schemas.Event
	for rest, size := events, 7; len(rest) > 0; size = size*3%4001 + 7 {
		n := min(size, len(rest))
		calls = append(calls, rest[:n])
		rest = rest[n:]
	}
	next := make(chan []schemas.Event, len(calls))
	for _, c := range calls {
		next <- c
	}
	close(next)
	var wg sync.WaitGroup
	errs := make(chan error, len(calls))
	for range 4 {
		wg.Go(func() {
			for c := range next {
				results, err := p.Publish(context.Background(), c...)
				if err == nil {
					err = errors.Join(slices.Collect(func(yield func(error) bool) {
						for _, r := range results {
							if r.Err != nil && !yield(fmt.Errorf("event %s: %w", r.ID, r.Err)) {
								return
							}
						}
					})...)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := consume(t, addr, schemas.Topics(), len(events))
	if len(got) != len(events) {
		t.Fatalf("%d records read; %d events were published", len(got), len(events))
	}
	for _, r := range got {
		ev, err := schemas.Decode(schemas.Input{Topic: r.Topic, Key: r.Key, Value: r.Value})
		if err != nil {
			t.Fatalf("a record does not decode: %v", err)
		}
		k := r.Topic + "/" + ev.ID
		if w, ok := want[k]; !ok {
			t.Fatalf("record %s was not published or came twice", ev.ID)
		} else if !bytes.Equal(r.Value, w) {
			t.Fatalf("record %s differs from its event's encoding:\n got %s\nwant %s", ev.ID, r.Value, w)
		}
		delete(want, k)
	}
}
