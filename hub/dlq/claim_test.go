package dlq_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/schemas"
)

// rejecting runs the real ingest path on a broker of its own. send writes
// records to a topic; rejected waits until ingest has rejected n records.
type rejecting struct {
	t        *testing.T
	addr     string
	send     func(topic string, msgs ...kafka.Message)
	rejected func(n int64)
	// deleteBefore deletes a DLQ partition's records before an offset,
	// as an operator does with kafka-delete-records.sh.
	deleteBefore func(partition int, offset int64)
}

func startRejecting(t *testing.T) rejecting {
	t.Helper()
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	store, err := memdb.Open(ctx(t), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	consumer, err := ingest.New(ingest.Config{Brokers: []string{k.Addr()}, GroupID: t.Name()}, store)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx(t))
	done := make(chan error, 1)
	go func() { done <- consumer.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ingest: %v", err)
		}
		consumer.Close()
	})
	send := func(topic string, msgs ...kafka.Message) {
		t.Helper()
		w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
			Transport: &kafka.Transport{}}
		defer ingest.CloseTransport(w.Transport)
		defer w.Close()
		if err := w.WriteMessages(ctx(t), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	rejected := func(n int64) {
		t.Helper()
		for consumer.Counts().RejectedTotal() < n {
			select {
			case err := <-done:
				t.Fatalf("ingest stopped: %v", err)
			case <-runCtx.Done():
				t.Fatalf("%d records not rejected", n)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	deleteBefore := func(partition int, offset int64) {
		t.Helper()
		if err := k.Cluster().DeleteRecords(schemas.DLQTopic, int32(partition), offset); err != nil {
			t.Fatal(err)
		}
	}
	return rejecting{t: t, addr: k.Addr(), send: send, rejected: rejected, deleteBefore: deleteBefore}
}

// replayedReject sends a record that is not JSON to topic, replays its
// reject and waits until that is rejected again: the DLQ's first record,
// which it returns, and a replay of it that the ledger confirms. The DLQ
// must be empty before.
func (env rejecting) replayedReject(c *dlq.Client, topic string, headers ...kafka.Header) dlq.Record {
	env.t.Helper()
	env.send(topic, kafka.Message{Key: []byte(idA), Value: []byte("not json"), Headers: headers})
	env.rejected(1)
	recs, err := c.Records(ctx(env.t), dlq.Filter{})
	if err != nil || len(recs) != 1 {
		env.t.Fatalf("DLQ records %+v, %v; want one", recs, err)
	}
	if _, err := c.Replay(ctx(env.t), dlq.Selection{IDs: []dlq.ID{recs[0].ID}}, false); err != nil {
		env.t.Fatal(err)
	}
	env.rejected(2)
	return recs[0]
}

// TestForgedReplayClaim: a department sends a record of its own with a
// well-formed pophub-replay-of naming a DLQ record that was replayed to
// its topic. Ingest keeps the header, as it keeps Replay's, but the
// tools do not take the claim for a fact: the ledger records that replay,
// not this record. Replayed, the record goes back with the department's
// header, and its reject is a confirmed replay carrying that header
// renamed among the department's.
func TestForgedReplayClaim(t *testing.T) {
	env := startRejecting(t)
	marriage := schemas.Topic(schemas.Marriage)
	c, err := dlq.New(dlq.Config{Brokers: []string{env.addr}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	origin := kafka.Header{Key: "origin", Value: []byte("test")}

	// A reject, replayed and rejected again: a replay the ledger confirms.
	first := env.replayedReject(c, marriage, origin)

	// The department's own record, claiming to be a replay of the first.
	claim := kafka.Header{Key: dlq.HeaderReplayOf, Value: []byte(first.ID.String())}
	env.send(marriage, kafka.Message{Key: []byte(idA), Value: []byte("junk of its own"), Headers: []kafka.Header{origin, claim}})
	env.rejected(3)

	recs, err := c.Records(ctx(t), dlq.Filter{})
	if err != nil || len(recs) != 3 {
		t.Fatalf("DLQ records %+v, %v; want three", recs, err)
	}
	byValue := func(recs []dlq.Record, v string) dlq.Record {
		t.Helper()
		i := slices.IndexFunc(recs, func(r dlq.Record) bool { return string(r.Value) == v && r.ID != first.ID })
		if i < 0 {
			t.Fatalf("no DLQ record with value %q besides %s", v, first.ID)
		}
		return recs[i]
	}
	if r := byValue(recs, "not json"); r.ReplayOf != first.ID.String() || r.ReplayClaim != "" ||
		!slices.EqualFunc(r.Headers, []kafka.Header{origin}, sameHeader) {
		t.Errorf("the replay rejected again: replay of %q, claim %q, headers %v; want a replay of %s, headers %v",
			r.ReplayOf, r.ReplayClaim, r.Headers, first.ID, []kafka.Header{origin})
	}
	forged := byValue(recs, "junk of its own")
	shown, err := c.Record(ctx(t), forged.ID)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]dlq.Record{"Records": forged, "Record": shown} {
		if r.ReplayOf != "" || r.ReplayClaim != first.ID.String() || !slices.EqualFunc(r.Headers, []kafka.Header{origin, claim}, sameHeader) {
			t.Errorf("%s: the forged record: replay of %q, claim %q, headers %v; want no replay, the claim %s, headers %v",
				name, r.ReplayOf, r.ReplayClaim, r.Headers, first.ID, []kafka.Header{origin, claim})
		}
	}

	// Replayed, the department's header goes back, Replay's last.
	if _, err := c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{forged.ID}}, false); err != nil {
		t.Fatal(err)
	}
	ours := kafka.Header{Key: dlq.HeaderReplayOf, Value: []byte(forged.ID.String())}
	var sent []kafka.Message
	for _, m := range readTopic(t, env.addr, marriage) {
		if string(m.Value) == "junk of its own" {
			sent = append(sent, m)
		}
	}
	if want := []kafka.Header{origin, claim, ours}; len(sent) != 2 || !slices.EqualFunc(sent[1].Headers, want, sameHeader) {
		t.Fatalf("the forged record replayed: %v; want it sent back once with headers %v", sent, want)
	}

	// Rejected again: a confirmed replay, the department's claim its own.
	env.rejected(4)
	recs, err = c.Records(ctx(t), dlq.Filter{})
	if err != nil || len(recs) != 4 {
		t.Fatalf("DLQ records %+v, %v; want four", recs, err)
	}
	i := slices.IndexFunc(recs, func(r dlq.Record) bool { return r.ReplayOf == forged.ID.String() })
	if i < 0 {
		t.Fatalf("no DLQ record is a replay of %s: %+v", forged.ID, recs)
	}
	renamed := []kafka.Header{origin, {Key: "orig-" + dlq.HeaderReplayOf, Value: claim.Value}}
	if r := recs[i]; r.ReplayClaim != "" || !slices.EqualFunc(r.Headers, renamed, sameHeader) {
		t.Errorf("the forged record's replay rejected: claim %q, headers %v; want no claim, headers %v", r.ReplayClaim, r.Headers, renamed)
	}
}

// TestReplayOfDeletedRecord: once the operator has deleted a replayed DLQ
// record, its replay rejected again is still a replay, by the ledger's
// entry and the digest of what was sent; a department's claim naming the
// deleted record, with another value, is still only a claim.
func TestReplayOfDeletedRecord(t *testing.T) {
	env := startRejecting(t)
	marriage := schemas.Topic(schemas.Marriage)
	c, err := dlq.New(dlq.Config{Brokers: []string{env.addr}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	first := env.replayedReject(c, marriage)
	claim := kafka.Header{Key: dlq.HeaderReplayOf, Value: []byte(first.ID.String())}
	env.send(marriage, kafka.Message{Key: []byte(idA), Value: []byte("junk of its own"), Headers: []kafka.Header{claim}})
	env.rejected(3)
	env.deleteBefore(first.ID.Partition, first.ID.Offset+1)

	recs, err := c.Records(ctx(t), dlq.Filter{})
	if err != nil || len(recs) != 2 {
		t.Fatalf("DLQ records %+v, %v; want the two after the deleted one", recs, err)
	}
	for _, r := range recs {
		shown, err := c.Record(ctx(t), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]dlq.Record{"Records": r, "Record": shown} {
			switch string(r.Value) {
			case "not json":
				if r.ReplayOf != first.ID.String() || r.ReplayClaim != "" || len(r.Headers) != 0 {
					t.Errorf("%s: the replay of the deleted %s: replay of %q, claim %q, headers %v; want a replay", name, first.ID, r.ReplayOf, r.ReplayClaim, r.Headers)
				}
			default:
				if r.ReplayOf != "" || r.ReplayClaim != first.ID.String() {
					t.Errorf("%s: the department's claim: replay of %q, claim %q; want only the claim", name, r.ReplayOf, r.ReplayClaim)
				}
			}
		}
	}
}
