package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// bareBroker starts a Kafka-protocol broker with no topics, as an
// operator's new cluster would be.
func bareBroker(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// writeRecords writes msgs as they are, each naming its topic, over a
// transport of its own (see produce).
func writeRecords(t testing.TB, addr string, msgs ...kafka.Message) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(addr), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: tr}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestPingBrokerGone: once the only broker stops, the readiness probe
// fails at once, although kafka-go still holds the broker's metadata.
func TestPingBrokerGone(t *testing.T) {
	k := broker(t)
	if err := EnsureTopics(context.Background(), []string{k.Addr()}, 2, nil, nil); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "ping-gone"}, &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Ping(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("Ping with the broker up: %v", err)
	}

	k.Close()
	stopped := time.Now()
	for {
		err := ping()
		if err != nil {
			t.Logf("Ping %v after the broker stopped: %v", time.Since(stopped).Round(time.Millisecond), err)
			return
		}
		if time.Since(stopped) > 5*time.Second {
			t.Fatalf("Ping still reports Kafka ready %v after the only broker stopped", time.Since(stopped).Round(time.Second))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLagUnknownWhileBrokerGone: while the lag cannot be measured, neither
// /metrics nor Lag go on showing the last value as the current lag; the
// time of the last measurement stays, so that staleness shows.
func TestLagUnknownWhileBrokerGone(t *testing.T) {
	k := broker(t)
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "lag-gone", Meter: tel.Meter("test")}, &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	writeRecords(t, k.Addr(), kafka.Message{Topic: "pop.events.housing", Value: []byte("a")}, kafka.Message{Topic: "pop.events.housing", Value: []byte("b")})
	scrape := func() string {
		rec := httptest.NewRecorder()
		tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return string(body)
	}
	stamp := regexp.MustCompile(`(?m)^pophub_consumer_lag_timestamp_seconds (\S+)$`)

	if n := totalLag(t, c); n != 2 {
		t.Fatalf("lag with the broker up: %d, want 2", n)
	}
	measured, _ := c.LagMeasured()
	before := scrape()
	if !strings.Contains(before, `pophub_consumer_lag{partition=`) {
		t.Fatalf("/metrics lacks the lag with the broker up:\n%s", grepLines(before, "pophub_consumer_lag"))
	}
	wantStamp := stamp.FindStringSubmatch(before)
	if wantStamp == nil {
		t.Fatalf("/metrics lacks the lag's timestamp:\n%s", grepLines(before, "pophub_consumer_lag"))
	}

	k.Close()
	if err := c.lag.update(context.Background()); err == nil {
		t.Fatal("measuring the lag with the broker stopped succeeded")
	}
	if lag := c.Lag(); len(lag) != 0 {
		t.Errorf("Lag with the broker stopped = %v, want none", lag)
	}
	at, err := c.LagMeasured()
	if err == nil || !at.Equal(measured) {
		t.Errorf("LagMeasured with the broker stopped = %v, %v; want %v and why not since", at, err, measured)
	}
	after := scrape()
	if strings.Contains(after, `pophub_consumer_lag{`) {
		t.Errorf("/metrics shows a lag that cannot be measured:\n%s", grepLines(after, "pophub_consumer_lag"))
	}
	if got := stamp.FindStringSubmatch(after); got == nil || got[1] != wantStamp[1] {
		t.Errorf("lag timestamp with the broker stopped: %v, want the last measurement's %s", got, wantStamp[1])
	}
}

// describeTopicConfig returns the value of each named configuration entry
// of topic, as the broker reports it.
func describeTopicConfig(t testing.TB, addr, topic string, names ...string) map[string]string {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	resp, err := cl.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: names,
	}}})
	if err != nil {
		t.Fatalf("describing %s: %v", topic, err)
	}
	out := map[string]string{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			t.Fatalf("describing %s: %v", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			out[e.ConfigName] = e.ConfigValue
		}
	}
	return out
}

// TestEnsureTopicsKeepsRejects: the DLQ that EnsureTopics creates keeps
// rejected records however old they are, where a source topic has the
// broker's default retention (seven days).
func TestEnsureTopicsKeepsRejects(t *testing.T) {
	cluster := bareBroker(t)
	addr := cluster.ListenAddrs()[0]
	if err := EnsureTopics(context.Background(), []string{addr}, 2, nil, nil); err != nil {
		t.Fatal(err)
	}
	got := describeTopicConfig(t, addr, schemas.DLQTopic, "retention.ms", "retention.bytes")
	if got["retention.ms"] != "-1" || got["retention.bytes"] != "-1" {
		t.Errorf("DLQ configs %v, want retention.ms and retention.bytes -1", got)
	}

	old := time.Now().Add(-30 * 24 * time.Hour)
	const source = "pop.events.housing"
	writeRecords(t, addr,
		kafka.Message{Topic: schemas.DLQTopic, Key: []byte("k"), Value: []byte("reject"), Time: old},
		kafka.Message{Topic: source, Key: []byte("k"), Value: []byte("event"), Time: old})
	cluster.ApplyRetention()
	if n := recordsLeft(t, addr, source); n != 0 {
		t.Fatalf("%s keeps a 30-day-old record after retention: the broker does not apply retention, so the test proves nothing", source)
	}
	if n := recordsLeft(t, addr, schemas.DLQTopic); n != 1 {
		t.Errorf("the DLQ holds %d records after retention, want the 30-day-old reject", n)
	}
}

// recordsLeft counts the records between the log start and the end of
// every partition of topic.
func recordsLeft(t testing.TB, addr, topic string) int64 {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	md, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range md.Topics[0].Partitions {
		req[topic] = append(req[topic], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	resp, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		t.Fatal(err)
	}
	if err := offsetErrors(resp); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range resp.Topics[topic] {
		n += p.LastOffset - p.FirstOffset
	}
	return n
}

// TestWarnsWhenDLQExpires: at start the consumer warns, naming the limit,
// when an existing DLQ deletes records, and stays quiet when it keeps them.
func TestWarnsWhenDLQExpires(t *testing.T) {
	tests := []struct {
		name    string
		configs map[string]string // set on a DLQ that EnsureTopics created
		seeded  bool              // the DLQ was created with the broker's defaults instead
		want    []string          // in the warning; none: no warning
	}{
		{name: "created by EnsureTopics"},
		{name: "the broker's default retention", seeded: true, want: []string{"retention=168h0m0s"}},
		{name: "a retention of a day", configs: map[string]string{"retention.ms": "86400000"}, want: []string{"retention=24h0m0s"}},
		{name: "a size limit", configs: map[string]string{"retention.bytes": "1073741824"}, want: []string{"retention_bytes=1073741824"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr string
			if tt.seeded {
				addr = bareBroker(t, kfake.SeedTopics(1, schemas.DLQTopic)).ListenAddrs()[0]
			} else {
				addr = bareBroker(t).ListenAddrs()[0]
				if err := EnsureTopics(context.Background(), []string{addr}, 1, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			for name, value := range tt.configs {
				setTopicConfig(t, addr, schemas.DLQTopic, name, value)
			}
			// The group reader starts with New and logs from its own
			// goroutines (this broker has no source topics): only the
			// DLQ's lines are this test's.
			var logs testenv.LogBuffer
			c, err := New(Config{Brokers: []string{addr}, GroupID: "dlq-retention", Logger: slog.New(slog.NewTextHandler(&logs, nil))}, &recordingApplier{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			c.warnIfDLQExpires(context.Background())

			warnings := grepLines(grepLines(logs.String(), "level=WARN"), "DLQ")
			if len(tt.want) == 0 && warnings != "" {
				t.Errorf("warned about a DLQ that keeps its records:\n%s", warnings)
			}
			for _, w := range tt.want {
				if !strings.Contains(warnings, w) || !strings.Contains(warnings, schemas.DLQTopic) {
					t.Errorf("no warning naming %s and %s:\n%s", schemas.DLQTopic, w, logs.String())
				}
			}
		})
	}
}

// TestEnsureTopicsAsksAgain: creating the topics while the cluster answers
// that it has no controller yet asks again, and succeeds once it has; an
// answer that cannot change is returned at once.
func TestEnsureTopicsAsksAgain(t *testing.T) {
	tests := []struct {
		name     string
		code     int16 // answered for every topic
		refusals int32 // answers before the cluster handles the request
		wantErr  string
		wantReqs int32
	}{
		{name: "no controller yet", code: kerr.NotController.Code, refusals: 2, wantReqs: 3},
		{name: "refused for good", code: kerr.PolicyViolation.Code, refusals: 100, wantErr: "Policy Violation", wantReqs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bareBroker(t)
			var reqs atomic.Int32
			c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				if reqs.Add(1) > tt.refusals {
					return nil, nil, false
				}
				create := req.(*kmsg.CreateTopicsRequest)
				resp := create.ResponseKind().(*kmsg.CreateTopicsResponse)
				for _, rt := range create.Topics {
					st := kmsg.NewCreateTopicsResponseTopic()
					st.Topic, st.ErrorCode = rt.Topic, tt.code
					resp.Topics = append(resp.Topics, st)
				}
				return resp, nil, true
			})
			addr := c.ListenAddrs()[0]
			err := EnsureTopics(context.Background(), []string{addr}, 1, nil, nil)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("creating topics: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("creating topics: %v, want an error naming %q", err, tt.wantErr)
			}
			if got := reqs.Load(); got != tt.wantReqs {
				t.Errorf("%d CreateTopics requests, want %d", got, tt.wantReqs)
			}
			if tt.wantErr != "" {
				return
			}
			conn, err := kafka.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			parts, err := conn.ReadPartitions(append(schemas.Topics(), schemas.DLQTopic)...)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, p := range parts {
				seen[p.Topic] = true
			}
			for _, topic := range append(schemas.Topics(), schemas.DLQTopic) {
				if !seen[topic] {
					t.Errorf("topic %s was not created", topic)
				}
			}
		})
	}
}

// onePartitionBroker starts an embedded broker whose source topics have
// one partition each.
func onePartitionBroker(t testing.TB) *embedded.Kafka {
	t.Helper()
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

var marriageTopic = schemas.Topic(schemas.Marriage)

// marriages returns marriage events m-from … m-(to-1) of one person.
func marriages(from, to int) []kafka.Message {
	var out []kafka.Message
	for i := from; i < to; i++ {
		out = append(out, kafka.Message{Topic: marriageTopic, Key: []byte(idA),
			Value: []byte(cloudEvent(fmt.Sprintf("m-%d", i), "marriage", "marriage.registered", idA, `{"spouse_id":"`+idB+`"}`))})
	}
	return out
}

// withLog returns cfg logging at debug level into logs.
func withLog(cfg Config, logs *testenv.LogBuffer) Config {
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

// TestRecordsDeletedBeforeReadAreReported: records that retention deleted
// while the hub was down are skipped, and the hub says so: a warning names
// the partition and how many records it lost, Counts and
// pophub_events_skipped_total{reason="retention"} count them, and the lag
// counts only the records that can still be read.
func TestRecordsDeletedBeforeReadAreReported(t *testing.T) {
	k := onePartitionBroker(t)
	writeRecords(t, k.Addr(), marriages(0, 3)...)
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "retention"}, &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	waitUntil(t, "offset 3 committed", func() bool {
		return committed(t, k.Addr(), "retention")[topicPartition{marriageTopic, 0}] == 3
	})
	stop()
	writeRecords(t, k.Addr(), marriages(3, 8)...) // offsets 3..7 while the hub is down
	deleteRecordsBefore(t, k.Addr(), marriageTopic, 0, 6)

	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	var logs testenv.LogBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	a := &recordingApplier{}
	c2, err := New(withLog(Config{Brokers: []string{k.Addr()}, GroupID: "retention", Meter: tel.Meter("test")}, &logs), a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	if err := c2.lag.update(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c2.Lag()[marriageTopic][0]; got != 2 {
		t.Errorf("lag with offsets 3-5 deleted and 6-7 unread = %d, want 2", got)
	}
	stop2 := run(t, c2)
	waitUntil(t, "records 6 and 7 applied", func() bool { return a.count() == 2 })
	waitUntil(t, "the deleted records counted", func() bool { return c2.Counts().Deleted == 3 })
	stop2()
	warn := grepLines(logs.String(), "deleted by the topic's retention")
	for _, want := range []string{"level=WARN", "topic=" + marriageTopic, "partition=0", "from_offset=3", "to_offset=5", "skipped=3"} {
		if !strings.Contains(warn, want) {
			t.Errorf("the warning about deleted records lacks %q:\n%s", want, warn)
		}
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	if !regexp.MustCompile(`pophub_events_skipped_total\{[^}]*reason="retention"[^}]*source="marriage"[^}]*\} 3\b`).Match(body) {
		t.Errorf("/metrics does not count 3 records skipped for retention:\n%s", grepLines(string(body), "pophub_events_skipped_total"))
	}
}

// deleteRecordsBefore deletes partition's records below offset, as
// retention would.
func deleteRecordsBefore(t testing.TB, addr, topic string, partition int32, offset int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = 5000
	req.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: topic,
		Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: partition, Offset: offset}}}}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("deleting records of %s/%d: %v", topic, rp.Partition, err)
			}
		}
	}
}

// TestCommittedBeyondEndIsNotReady: a group offset beyond a partition's
// end (a topic recreated, an offset set by hand) leaves new records
// unread, which kafka-go waits out silently: the hub logs an error naming
// the partition, both offsets and how to reset, and Ping fails.
func TestCommittedBeyondEndIsNotReady(t *testing.T) {
	k := onePartitionBroker(t)
	writeRecords(t, k.Addr(), marriages(0, 2)...)
	cl := &kafka.Client{Addr: kafka.TCP(k.Addr()), Timeout: 10 * time.Second}
	if _, err := cl.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{GroupID: "beyond", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{marriageTopic: {{Partition: 0, Offset: 100}}}}); err != nil {
		t.Fatal(err)
	}
	var logs testenv.LogBuffer
	c, err := New(withLog(Config{Brokers: []string{k.Addr()}, GroupID: "beyond"}, &logs), &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	defer stop()
	writeRecords(t, k.Addr(), marriages(2, 7)...)
	var pingErr error
	waitUntil(t, "Ping fails", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		pingErr = c.Ping(ctx)
		return pingErr != nil
	})
	if !strings.Contains(pingErr.Error(), "committed offset 100 is beyond the partition's end") {
		t.Errorf("Ping: %v; want the offset beyond the end named", pingErr)
	}
	line := grepLines(logs.String(), "beyond the partition's end")
	for _, want := range []string{"level=ERROR", "topic=" + marriageTopic, "partition=0", "committed=100", "end=", "--reset-offsets"} {
		if !strings.Contains(line, want) {
			t.Errorf("the error about the committed offset lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestMissingSourceTopicIsNamed: a source topic deleted while the hub runs
// makes kafka-go's group reader rejoin over and over without naming it;
// the hub's log names it.
func TestMissingSourceTopicIsNamed(t *testing.T) {
	k := onePartitionBroker(t)
	gone := schemas.Topic(schemas.PublicSecurity)
	cl := &kafka.Client{Addr: kafka.TCP(k.Addr()), Timeout: 10 * time.Second}
	if _, err := cl.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{gone}}); err != nil {
		t.Fatal(err)
	}
	var logs testenv.LogBuffer
	c, err := New(withLog(Config{Brokers: []string{k.Addr()}, GroupID: "gone"}, &logs), &recordingApplier{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for range 2 { // logged once while it lasts
		if err := c.lag.update(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	lines := grepLines(logs.String(), "a source topic cannot be read")
	if strings.Count(lines, "level=ERROR") != 1 || !strings.Contains(lines, "level=ERROR") || !strings.Contains(lines, "topic="+gone) {
		t.Errorf("want one error naming %s, got:\n%s", gone, logs.String())
	}
}
