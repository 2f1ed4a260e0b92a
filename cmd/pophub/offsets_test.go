package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/schemas"
)

// rewindKafka runs the embedded broker with two partitions per source
// topic until the test ends.
func rewindKafka(t *testing.T) []string {
	t.Helper()
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 2})
	if err != nil {
		t.Fatalf("starting the embedded broker: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return []string{k.Addr()}
}

// produceTimed writes one record per time to a partition, each with that
// time as its timestamp.
func produceTimed(t *testing.T, brokers []string, topic string, partition int, times ...time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, partition)
	if err != nil {
		t.Fatalf("dialing the leader of %s/%d: %v", topic, partition, err)
	}
	defer conn.Close()
	for i, at := range times {
		if _, err := conn.WriteMessages(kafka.Message{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("{}"), Time: at}); err != nil {
			t.Fatalf("producing to %s/%d: %v", topic, partition, err)
		}
	}
}

// committedOffsets reads the group's committed offsets of the topics'
// first two partitions, keyed "topic/partition"; -1 for none.
func committedOffsets(t *testing.T, brokers []string, group string, topics ...string) map[string]int64 {
	t.Helper()
	parts := map[string][]int{}
	for _, topic := range topics {
		parts[topic] = []int{0, 1}
	}
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: ownTransport(t)}
	resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil || resp.Error != nil {
		t.Fatalf("fetching committed offsets: %v %v", err, resp.Error)
	}
	out := map[string]int64{}
	for topic, ps := range resp.Topics {
		for _, p := range ps {
			out[fmt.Sprintf("%s/%d", topic, p.Partition)] = p.CommittedOffset
		}
	}
	return out
}

// TestOffsetsRewind moves a group's committed offsets back to a time:
// each partition to its first record at or after it, never forward.
func TestOffsetsRewind(t *testing.T) {
	brokers := rewindKafka(t)
	const group = "pophub-restored"
	housing, tax := schemas.Topic(schemas.Housing), schemas.Topic(schemas.Tax)
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, schemas.CST())
	hours := func(hs ...int) []time.Time {
		out := make([]time.Time, len(hs))
		for i, h := range hs {
			out[i] = t0.Add(time.Duration(h) * time.Hour)
		}
		return out
	}
	produceTimed(t, brokers, housing, 0, hours(0, 1, 2, 3)...)
	produceTimed(t, brokers, housing, 1, hours(0, 1)...)
	produceTimed(t, brokers, tax, 0, hours(0, 1, 2, 3, 4)...)
	// tax/1 holds no record and the group committed none there.
	commitOffset(t, brokers, group, housing, 0, 4)
	commitOffset(t, brokers, group, housing, 1, 1) // already before the time: left as is
	commitOffset(t, brokers, group, tax, 0, 5)

	base := []string{"offsets", "rewind", "--kafka", strings.Join(brokers, ","), "--group", group}
	both := append(slices.Clone(base), "--source", "housing", "--source", "tax")
	at := "2026-12-05T01:30:00+08:00" // between the records of hours 1 and 2
	before := committedOffsets(t, brokers, group, housing, tax)

	out, err := execute(t, rootCommand(), append(both, "--to-time", at, "--dry-run")...)
	if err != nil {
		t.Fatalf("rewind --dry-run: %v\n%s", err, out)
	}
	if got := committedOffsets(t, brokers, group, housing, tax); !maps.Equal(got, before) {
		t.Errorf("--dry-run committed: %v, was %v\n%s", got, before, out)
	}
	for _, want := range []string{
		"pop.events.housing/0  4          2    2 records read again",
		"pop.events.housing/1  1          1    0: at or before the target, left as is",
		"pop.events.tax/0      5          2    3 records read again",
		"pop.events.tax/1      none       -    0: nothing committed, the hub reads it from the log start",
		"dry run: would rewind 2 of 4 partitions of group pophub-restored; 5 records would be read again; nothing committed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--dry-run output lacks %q:\n%s", want, out)
		}
	}

	out, err = execute(t, rootCommand(), append(both, "--to-time", at)...)
	if err != nil {
		t.Fatalf("rewind: %v\n%s", err, out)
	}
	want := map[string]int64{housing + "/0": 2, housing + "/1": 1, tax + "/0": 2, tax + "/1": -1}
	if got := committedOffsets(t, brokers, group, housing, tax); !maps.Equal(got, want) {
		t.Errorf("committed after rewind: %v, want %v\n%s", got, want, out)
	}
	if !strings.Contains(out, "rewound 2 of 4 partitions of group pophub-restored; 5 records will be read again") {
		t.Errorf("no total line:\n%s", out)
	}

	// A time after every record is the log end: nothing moves forward.
	out, err = execute(t, rootCommand(), append(base, "--to-time", "2027-01-01T00:00:00Z")...)
	if err != nil {
		t.Fatalf("rewind to a later time: %v\n%s", err, out)
	}
	if got := committedOffsets(t, brokers, group, housing, tax); !maps.Equal(got, want) {
		t.Errorf("committed after a rewind to a later time: %v, want %v\n%s", got, want, out)
	}

	// --to-earliest, one source: only its topic moves.
	out, err = execute(t, rootCommand(), append(base, "--to-earliest", "--source", "housing")...)
	if err != nil {
		t.Fatalf("rewind --to-earliest: %v\n%s", err, out)
	}
	want[housing+"/0"], want[housing+"/1"] = 0, 0
	if got := committedOffsets(t, brokers, group, housing, tax); !maps.Equal(got, want) {
		t.Errorf("committed after --to-earliest --source housing: %v, want %v\n%s", got, want, out)
	}
}

// TestOffsetsRewindRefusesLiveGroup refuses while a member is in the
// group: its next commit would undo the rewind, and the broker would
// refuse a commit from outside the group anyway.
func TestOffsetsRewindRefusesLiveGroup(t *testing.T) {
	brokers := rewindKafka(t)
	const group = "pophub-live"
	housing := schemas.Topic(schemas.Housing)
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	produceTimed(t, brokers, housing, 0, t0, t0.Add(time.Hour))
	commitOffset(t, brokers, group, housing, 0, 2)

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: group, GroupTopics: []string{housing},
		MaxWait: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond, Dialer: &kafka.Dialer{Timeout: 10 * time.Second}})
	t.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			if _, err := r.FetchMessage(ctx); err != nil {
				return
			}
		}
	}()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: ownTransport(t)}
	waitFor(t, 30*time.Second, "the reader to join the group", func() bool {
		resp, err := cl.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		return err == nil && len(resp.Groups) == 1 && len(resp.Groups[0].Members) == 1 && resp.Groups[0].GroupState == "Stable"
	})

	out, err := execute(t, rootCommand(), "offsets", "rewind", "--kafka", strings.Join(brokers, ","), "--group", group, "--to-earliest")
	wantMsg := "the group pophub-live has 1 member: stop every hub instance (serve/dev) first, then run this again"
	if err == nil || err.Error() != wantMsg {
		t.Errorf("rewind with a live member: %v, want %q\n%s", err, wantMsg, out)
	}
	// A dry run only looks, and says what a real one would need.
	out, err = execute(t, rootCommand(), "offsets", "rewind", "--kafka", strings.Join(brokers, ","), "--group", group, "--to-earliest", "--dry-run", "--source", "housing")
	if err != nil || !strings.Contains(out, "pop.events.housing/0  2          0    2 records read again") || !strings.Contains(out, "note: "+wantMsg) {
		t.Errorf("rewind --dry-run with a live member: %v\n%s", err, out)
	}
	if got := committedOffsets(t, brokers, group, housing)[housing+"/0"]; got != 2 {
		t.Errorf("committed offset %d after a refused rewind and a dry run, want 2", got)
	}
}

// TestRewindRefusal words the broker's refusals of a commit from outside
// a live group as the refusal of a live group.
func TestRewindRefusal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		busy bool
	}{
		{kafka.UnknownMemberId, true},
		{kafka.IllegalGeneration, true},
		{kafka.RebalanceInProgress, true},
		{fmt.Errorf("committing: %w", kafka.RebalanceInProgress), true},
		{kafka.GroupAuthorizationFailed, false},
		{errors.New("connection reset"), false},
	} {
		if got := groupRefused(tc.err); got != tc.busy {
			t.Errorf("groupRefused(%v) = %v, want %v", tc.err, got, tc.busy)
		}
	}
}

// TestOffsetsRewindFlags refuses a command that names no point, or two.
func TestOffsetsRewindFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "give --to-time TIME or --to-earliest"},
		{[]string{"--to-earliest", "--to-time", "2026-12-05T02:00:00+08:00"}, "give --to-time TIME or --to-earliest, not both"},
		{[]string{"--to-time", "2026-12-05 02:00"}, `--to-time "2026-12-05 02:00": want a time with its zone, such as 2026-12-05T02:00:00+08:00`},
		{[]string{"--to-earliest", "--source", "weather"}, `--source: unknown source "weather"`},
	} {
		args := append([]string{"offsets", "rewind", "--kafka", "127.0.0.1:1"}, tc.args...)
		out, err := execute(t, rootCommand(), args...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
}

// TestReconcileGapNamesRewind: a store restored from a backup lacks the
// events applied since, behind the group's committed offsets; reconcile
// reports the gap and names the command that makes the hub read them
// again.
func TestReconcileGapNamesRewind(t *testing.T) {
	brokers := rewindKafka(t)
	const group = "pophub-gap"
	ctx := context.Background()
	store, err := memdb.Open(ctx, memdb.Config{})
	if err != nil {
		t.Fatalf("opening memdb: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	admin := api.AdminConfig{Store: store, Group: group, Lag: func() map[string]map[int]int64 { return nil }}
	ts := httptest.NewServer(api.New(api.Config{Store: store, Mount: api.AdminHandlers(admin)}).Handler())
	t.Cleanup(ts.Close)

	msg := event(t, schemas.RentalRegistered, personID(t, 1), "hs-after-backup", "2026-12-05T03:00:00+08:00",
		map[string]any{"lease_id": "L1", "address_code": "230102001001", "start": "2026-12-01"})
	topic := schemas.Topic(schemas.Housing)
	part, off := produceAt(t, brokers, topic, 0, msg)
	commitOffset(t, brokers, group, topic, part, off+1)

	out, err := execute(t, reconcileCommand(), "--hub", ts.URL, "--kafka", strings.Join(brokers, ","), "--source", "housing")
	if exit, ok := errors.AsType[exitError](err); !ok || exit != 1 {
		t.Fatalf("reconcile with a gap: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{
		"pophub reconcile: 1 records lost (gap)\n",
		"if the store was restored from a backup, stop every hub instance and run `pophub offsets rewind --group pophub-gap --to-time <time of the backup>`: the hub then reads the records since again and drops those its store already holds\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reconcile output lacks %q:\n%s", want, out)
		}
	}
}

// TestOffsetsRewindDevData rewinds the offsets a stopped pophub dev keeps
// in its data directory, and refuses while the directory is in use.
func TestOffsetsRewindDevData(t *testing.T) {
	dir := t.TempDir()
	const group = "pophub"
	housing := schemas.Topic(schemas.Housing)
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	start := func() *embedded.Kafka {
		k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{DataDir: filepath.Join(dir, "kafka"), Partitions: 2})
		if err != nil {
			t.Fatalf("starting the embedded broker on %s: %v", dir, err)
		}
		return k
	}
	k := start()
	brokers := []string{k.Addr()}
	produceTimed(t, brokers, housing, 0, t0, t0.Add(time.Hour), t0.Add(2*time.Hour))
	commitOffset(t, brokers, group, housing, 0, 3)
	k.Close()

	lock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"offsets", "rewind", "--data", dir, "--to-time", "2026-12-05T01:00:00Z", "--source", "housing"}
	out, err := execute(t, rootCommand(), args...)
	if want := "data directory " + dir + " is in use by another pophub process: stop pophub dev first, then run this again"; err == nil || err.Error() != want {
		t.Errorf("rewind on a directory in use: %v, want %q\n%s", err, want, out)
	}
	unlockDataDir(lock)

	if out, err = execute(t, rootCommand(), args...); err != nil {
		t.Fatalf("rewind --data: %v\n%s", err, out)
	}
	k = start()
	defer k.Close()
	if got := committedOffsets(t, []string{k.Addr()}, group, housing)[housing+"/0"]; got != 1 {
		t.Errorf("committed offset %d after rewind --data, want 1\n%s", got, out)
	}
}

// TestRewindToTimeWarnsOfProducerTimestamps: --to-time goes by the
// records' timestamps, which on topics of CreateTime their producers set:
// the rewind warns and points to --to-earliest there, and not on topics
// the hub created, which the broker stamps with the time it appended.
func TestRewindToTimeWarnsOfProducerTimestamps(t *testing.T) {
	const warning = "keep the timestamps their producers set (message.timestamp.type=CreateTime)"
	at := []string{"--to-time", "2026-12-05T01:30:00+08:00", "--dry-run", "--source", "housing", "--source", "tax"}

	seeded := rewindKafka(t) // the embedded broker's topics: the broker's defaults
	out, err := execute(t, rootCommand(), append([]string{"offsets", "rewind", "--kafka", seeded[0], "--group", "g"}, at...)...)
	if err != nil {
		t.Fatalf("rewind: %v\n%s", err, out)
	}
	if !strings.Contains(out, "warning: pop.events.housing, pop.events.tax "+warning) || !strings.Contains(out, "--to-earliest") {
		t.Errorf("no warning naming both topics and --to-earliest:\n%s", out)
	}
	out, err = execute(t, rootCommand(), "offsets", "rewind", "--kafka", seeded[0], "--group", "g", "--to-earliest", "--dry-run")
	if err != nil || strings.Contains(out, warning) {
		t.Errorf("--to-earliest: %v, warned of timestamps it does not read:\n%s", err, out)
	}

	created, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(created.Close)
	if err := ingest.EnsureTopics(context.Background(), created.ListenAddrs(), 2, nil, nil); err != nil {
		t.Fatal(err)
	}
	out, err = execute(t, rootCommand(), append([]string{"offsets", "rewind", "--kafka", created.ListenAddrs()[0], "--group", "g"}, at...)...)
	if err != nil || strings.Contains(out, warning) {
		t.Errorf("topics the hub created: %v, warned:\n%s", err, out)
	}
}
