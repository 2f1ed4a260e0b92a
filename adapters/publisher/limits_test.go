package publisher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// largeEnrolments are n valid education.enrolled events of one citizen
// (so on one partition), each about a kilobyte: a 195-character id, a
// 200-character institution. The ids are hashes, which compress poorly.
func largeEnrolments(t testing.TB, n int) []schemas.Event {
	t.Helper()
	var base schemas.Event
	for _, ev := range population(t, 200) {
		if ev.Type == schemas.EducationEnrolled {
			base = ev
			break
		}
	}
	if base.ID == "" {
		t.Fatal("no education.enrolled event in the population")
	}
	d := *base.Payload.(*schemas.EducationEnrolledData)
	d.Institution = strings.Repeat("学", 200)
	out := make([]schemas.Event, n)
	for i := range out {
		ev := base
		id := fmt.Sprintf("education-%d-", i)
		for j := 0; len(id) < 195; j++ {
			sum := sha256.Sum256(fmt.Appendf(nil, "enrolment %d %d", i, j))
			id += hex.EncodeToString(sum[:])
		}
		ev.ID = id[:195]
		ev.Data, ev.Payload = nil, &d
		out[i] = ev
	}
	return out
}

// TestPublishLargeBatches: brokers refuse a record batch larger than
// message.max.bytes (1 MiB by default) whole, so a partition's records
// are sent in batches under it: whatever the compression and BatchSize,
// a call of valid events is delivered. Should the broker take none of a
// call's records, Publish says so as a whole, not only event by event.
func TestPublishLargeBatches(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		events    int
		delivered bool
	}{
		{"uncompressed", Config{Compression: NoCompression}, 1000, true},
		{"uncompressed, a large call sent in groups", Config{Compression: NoCompression}, groupedMin + 500, true},
		{"snappy, BatchSize 20,000", Config{BatchSize: 20000}, 6000, true},
		{"batches above the broker's limit", Config{Compression: NoCompression, BatchBytes: 16 << 20}, 1000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := testenv.Kafka(t, 1)
			cfg := tc.cfg
			cfg.Brokers = []string{addr}
			p := newPublisher(t, cfg)
			events := largeEnrolments(t, tc.events)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			results, err := p.Publish(ctx, events...)
			failed := 0
			var firstErr error
			for _, r := range results {
				if r.Err != nil {
					failed++
					if firstErr == nil {
						firstErr = r.Err
					}
				}
			}
			topic := schemas.Topic(schemas.Education)
			if !tc.delivered {
				if err == nil {
					t.Fatalf("the broker took none of %d events (%d failed: %v), and Publish returned no error", len(events), failed, firstErr)
				}
				if failed != len(events) {
					t.Errorf("%d of %d results carry an error; none was delivered", failed, len(events))
				}
				if n := testenv.RecordCount(t, addr, topic); n != 0 {
					t.Errorf("%d records on %s", n, topic)
				}
				return
			}
			if err != nil || failed > 0 {
				t.Fatalf("Publish: %v; %d of %d events failed, the first: %v", err, failed, len(events), firstErr)
			}
			if n := testenv.RecordCount(t, addr, topic); n != int64(len(events)) {
				t.Errorf("%d records on %s, want %d", n, topic, len(events))
			}
		})
	}
}

// TestPublishMissingTopic: when a source's topic does not exist, only
// that source's events fail, each with an error naming the topic; the
// events of the other sources of the call are delivered. Only when none
// of a call's valid events could be delivered does the call fail as a
// whole.
func TestPublishMissingTopic(t *testing.T) {
	var topics []string
	for _, s := range schemas.Sources {
		if s != schemas.Tax {
			topics = append(topics, schemas.Topic(s))
		}
	}
	evs := bySource(t)
	housing, tax := evs[schemas.Housing][:3], evs[schemas.Tax][0]
	bad, reasons := invalidEvents(t, housing[0])
	var large []schemas.Event // sent in groups of partitions
	for i := range groupedMin + 100 {
		ev := evs[schemas.Housing][i%len(evs[schemas.Housing])]
		if i%10 == 0 {
			ev = evs[schemas.Tax][i%len(evs[schemas.Tax])]
		}
		ev.ID = fmt.Sprintf("bulk-%d", i)
		large = append(large, ev)
	}

	missing := "topic_missing"
	tests := []struct {
		name    string
		events  []schemas.Event
		want    []string // per event: "" delivered, a reject reason, or missing
		callErr bool
	}{
		{"housing and tax", []schemas.Event{housing[0], housing[1], housing[2], tax}, []string{"", "", "", missing}, false},
		{"tax first", []schemas.Event{tax, housing[0]}, []string{missing, ""}, false},
		{"tax and an invalid event", []schemas.Event{tax, bad[0]}, []string{missing, reasons[0]}, true},
		{"a large call", large, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			addr := c.ListenAddrs()[0]
			p := newPublisher(t, Config{Brokers: []string{addr}, MaxAttempts: 2})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			results, err := p.Publish(ctx, tc.events...)
			if tc.callErr != (err != nil) {
				t.Fatalf("Publish: error %v, want one: %v", err, tc.callErr)
			}
			wantHousing := int64(0)
			for i, r := range results {
				want := ""
				switch {
				case tc.want != nil:
					want = tc.want[i]
				case tc.events[i].Source == schemas.Tax:
					want = missing
				}
				switch {
				case want == "":
					if r.Err != nil {
						t.Fatalf("event %d (%s): %v", i, tc.events[i].Source, r.Err)
					}
					wantHousing++
				case want == missing:
					var tm *TopicMissingError
					if !errors.As(r.Err, &tm) || tm.Topic != "pop.events.tax" || !strings.Contains(r.Err.Error(), "pop.events.tax") ||
						!strings.HasPrefix(r.Err.Error(), "topic_missing") {
						t.Fatalf("event %d (%s): %v, want topic_missing naming pop.events.tax", i, tc.events[i].Source, r.Err)
					}
				default:
					if got := schemas.ReasonOf(r.Err); got != want {
						t.Errorf("event %d: %v, want reason %s", i, r.Err, want)
					}
				}
			}
			if n := testenv.RecordCount(t, addr, schemas.Topic(schemas.Housing)); n != wantHousing {
				t.Errorf("%d records on the housing topic, want %d", n, wantHousing)
			}
		})
	}
}

// TestPublishFileMissingTopic: a file for a source whose topic does not
// exist fails as a whole, naming the topic: no line could be delivered,
// and the remedy is to publish it again once the topic exists.
func TestPublishFileMissingTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.Topic(schemas.Housing)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := newPublisher(t, Config{Brokers: c.ListenAddrs(), Source: schemas.Tax, MaxAttempts: 2})
	var jsonl []string
	for _, ev := range bySource(t)[schemas.Tax] {
		b, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		jsonl = append(jsonl, string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := p.PublishJSONL(ctx, strings.NewReader(strings.Join(jsonl, "\n")))
	if err == nil || !strings.Contains(err.Error(), "pop.events.tax") || rep.Published != 0 {
		t.Fatalf("PublishJSONL without the tax topic: %+v, %v; want an error naming pop.events.tax", rep, err)
	}
}

// TestTopicHiddenByACLs: a Kafka user sees only the topics its ACLs let
// it describe, so to a publisher logged in as the housing department's
// user the tax topic looks missing. Its events' results say it may be
// the user's grants; the housing events are delivered.
func TestTopicHiddenByACLs(t *testing.T) {
	allow := func(op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: schemas.Topic(schemas.Housing),
			Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	addr := testenv.Kafka(t, partitions, kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.User("SCRAM-SHA-512", "housing", "pw", allow(kmsg.ACLOperationDescribe), allow(kmsg.ACLOperationWrite)))
	p := newPublisher(t, Config{Brokers: []string{addr}, SASL: access.SCRAMClient{User: "housing", Password: "pw"}, MaxAttempts: 2})
	evs := bySource(t)
	events := []schemas.Event{evs[schemas.Housing][0], evs[schemas.Tax][0]}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results, err := p.Publish(ctx, events...)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if results[0].Err != nil {
		t.Errorf("housing event: %v", results[0].Err)
	}
	var tm *TopicMissingError
	if !errors.As(results[1].Err, &tm) || !strings.Contains(results[1].Err.Error(), "may not describe") {
		t.Errorf("tax event: %v, want a TopicMissingError saying the user may not be allowed to see the topic", results[1].Err)
	}
}
