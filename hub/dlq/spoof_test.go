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

// TestSpoofedHeadersStayTheDepartments: a department's record that
// carries headers named like the hub's (pophub-dropped, pophub-reason,
// pophub-replay-of) is rejected through the real ingest path. Its DLQ
// record shows the hub's reason and origin, is not taken for a partial
// copy, and replays whole, the department's headers going back under the
// names it gave them. Rejected again, the replay's DLQ record is a replay
// of the first, the department's headers renamed once more (not twice),
// and it replays as the department's record again.
func TestSpoofedHeadersStayTheDepartments(t *testing.T) {
	k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	marriage := schemas.Topic(schemas.Marriage)
	spoofed := []kafka.Header{{Key: "origin", Value: []byte("test")}, {Key: ingest.HeaderDropped, Value: []byte("value")},
		{Key: ingest.HeaderReason, Value: []byte("we say so")}, {Key: dlq.HeaderReplayOf, Value: []byte("not an ID")}}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Topic: marriage, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		Transport: &kafka.Transport{}}
	if err := w.WriteMessages(ctx(t), kafka.Message{Key: []byte(idA), Value: []byte("not json"), Headers: spoofed}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ingest.CloseTransport(w.Transport)

	store, err := memdb.Open(ctx(t), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	consumer, err := ingest.New(ingest.Config{Brokers: []string{k.Addr()}, GroupID: "spoof"}, store)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx(t))
	done := make(chan error, 1)
	go func() { done <- consumer.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ingest: %v", err)
		}
		consumer.Close()
	}()
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
	rejected(1)

	c, err := dlq.New(dlq.Config{Brokers: []string{k.Addr()}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := c.Records(ctx(t), dlq.Filter{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("DLQ records %+v, %v; want one", recs, err)
	}
	r := recs[0]
	if r.Reason != schemas.ReasonNotJSON || r.Dropped != "" || r.ReplayOf != "" || r.Topic != marriage || r.Offset != 0 {
		t.Errorf("record %+v; want reason not_json, origin %s offset 0, nothing dropped, no replay", r, marriage)
	}
	renamed := []kafka.Header{{Key: "origin", Value: []byte("test")}, {Key: "orig-" + ingest.HeaderDropped, Value: []byte("value")},
		{Key: "orig-" + ingest.HeaderReason, Value: []byte("we say so")}, {Key: "orig-" + dlq.HeaderReplayOf, Value: []byte("not an ID")}}
	if !slices.EqualFunc(r.Headers, renamed, sameHeader) {
		t.Errorf("headers %v, want %v", r.Headers, renamed)
	}

	// replay replays rec and returns the record it wrote to marriage.
	replay := func(rec dlq.Record) kafka.Message {
		t.Helper()
		res, err := c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{rec.ID}}, false)
		if err != nil || len(res.Sent) != 1 {
			t.Fatalf("replay of %s: %+v, %v; want the record sent", rec.ID, res, err)
		}
		var out []kafka.Message
		for _, m := range readTopic(t, k.Addr(), marriage) {
			if m.Headers[len(m.Headers)-1].Key == dlq.HeaderReplayOf && string(m.Headers[len(m.Headers)-1].Value) == rec.ID.String() {
				out = append(out, m)
			}
		}
		if len(out) != 1 {
			t.Fatalf("%d records in %s replayed from %s, want 1", len(out), marriage, rec.ID)
		}
		return out[0]
	}
	// The department's record as sent, with Replay's pophub-replay-of
	// last: the one ingest takes for the hub's.
	want := func(id dlq.ID) []kafka.Header {
		return append(slices.Clone(spoofed), kafka.Header{Key: dlq.HeaderReplayOf, Value: []byte(id.String())})
	}
	if got := replay(r); !slices.EqualFunc(got.Headers, want(r.ID), sameHeader) {
		t.Errorf("replayed record's headers %v, want %v", got.Headers, want(r.ID))
	}

	rejected(2)
	recs, err = c.Records(ctx(t), dlq.Filter{})
	if err != nil || len(recs) != 2 {
		t.Fatalf("DLQ records %+v, %v; want two", recs, err)
	}
	i := slices.IndexFunc(recs, func(x dlq.Record) bool { return x.ID != r.ID })
	again := recs[i]
	if again.ReplayOf != r.ID.String() || again.Reason != schemas.ReasonNotJSON || again.Dropped != "" {
		t.Errorf("the replay rejected again: %+v; want a not_json replay of %s, nothing dropped", again, r.ID)
	}
	if !slices.EqualFunc(again.Headers, renamed, sameHeader) {
		t.Errorf("the replay rejected again has headers %v, want %v (renamed once)", again.Headers, renamed)
	}
	if got := replay(again); !slices.EqualFunc(got.Headers, want(again.ID), sameHeader) {
		t.Errorf("replayed again, headers %v, want %v", got.Headers, want(again.ID))
	}
}

func sameHeader(a, b kafka.Header) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }

// TestRecordReadsTheHubsHeaders: a copy written before ingest renamed a
// department's pophub-* headers holds them ahead of the hub's, which start
// with the last pophub-reason. Only the hub's count, but for the
// pophub-replay-of that Replay wrote among the original's. A
// pophub-replay-of the ledger does not confirm (none here is in it) is a
// claim, its header kept among the record's own.
func TestRecordReadsTheHubsHeaders(t *testing.T) {
	c, addr := setup(t)
	marriage := schemas.Topic(schemas.Marriage)
	h := func(k, v string) kafka.Header { return kafka.Header{Key: k, Value: []byte(v)} }
	for _, tc := range []struct {
		name    string
		headers []kafka.Header
		want    dlq.Record // Reason, Dropped, ReplayClaim, Topic, Offset
	}{
		{"spoofed ahead", []kafka.Header{h(ingest.HeaderDropped, "value"), h(ingest.HeaderReason, "we say so"), h("origin", "test"),
			h(ingest.HeaderTopic, "pop.events.tax"), h(ingest.HeaderOffset, "99"),
			h(ingest.HeaderReason, schemas.ReasonNotJSON), h(ingest.HeaderField, ""), h(ingest.HeaderError, "not_json: x"),
			h(ingest.HeaderTopic, marriage), h(ingest.HeaderPartition, "0"), h(ingest.HeaderOffset, "4")},
			dlq.Record{Reason: schemas.ReasonNotJSON, Topic: marriage, Offset: 4}},
		{"replayed, old layout", []kafka.Header{h("origin", "test"), h(dlq.HeaderReplayOf, "1:2"),
			h(ingest.HeaderReason, schemas.ReasonNotJSON), h(ingest.HeaderField, ""), h(ingest.HeaderError, "not_json: x"),
			h(ingest.HeaderTopic, marriage), h(ingest.HeaderPartition, "0"), h(ingest.HeaderOffset, "5")},
			dlq.Record{Reason: schemas.ReasonNotJSON, Topic: marriage, Offset: 5, ReplayClaim: "1:2"}},
		{"replayed, new layout", []kafka.Header{h("origin", "test"),
			h(ingest.HeaderReason, schemas.ReasonNotJSON), h(ingest.HeaderField, ""), h(ingest.HeaderError, "not_json: x"),
			h(ingest.HeaderTopic, marriage), h(ingest.HeaderPartition, "0"), h(ingest.HeaderOffset, "6"), h(dlq.HeaderReplayOf, "1:3")},
			dlq.Record{Reason: schemas.ReasonNotJSON, Topic: marriage, Offset: 6, ReplayClaim: "1:3"}},
		{"too large, spoofed ahead", []kafka.Header{h(ingest.HeaderDropped, "key,value,headers"), h("origin", "test"),
			h(ingest.HeaderReason, schemas.ReasonNotJSON), h(ingest.HeaderField, ""), h(ingest.HeaderError, "not_json: x"),
			h(ingest.HeaderTopic, marriage), h(ingest.HeaderPartition, "0"), h(ingest.HeaderOffset, "7"), h(ingest.HeaderDropped, "value")},
			dlq.Record{Reason: schemas.ReasonNotJSON, Topic: marriage, Offset: 7, Dropped: "value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: schemas.DLQTopic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
				Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 1 }), Transport: &kafka.Transport{}}
			defer ingest.CloseTransport(w.Transport)
			if err := w.WriteMessages(ctx(t), kafka.Message{Key: []byte(idA), Value: []byte("junk"), Headers: tc.headers}); err != nil {
				t.Fatal(err)
			}
			w.Close()
			recs, err := c.Records(ctx(t), dlq.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			r := recs[len(recs)-1]
			if r.Reason != tc.want.Reason || r.Dropped != tc.want.Dropped || r.ReplayOf != "" || r.ReplayClaim != tc.want.ReplayClaim ||
				r.Topic != tc.want.Topic || r.Offset != tc.want.Offset {
				t.Errorf("record reason %q dropped %q replay of %q claim %q origin %s@%d, want %q %q \"\" %q %s@%d", r.Reason, r.Dropped, r.ReplayOf, r.ReplayClaim,
					r.Topic, r.Offset, tc.want.Reason, tc.want.Dropped, tc.want.ReplayClaim, tc.want.Topic, tc.want.Offset)
			}
			want := []kafka.Header{h("origin", "test")}
			if tc.want.ReplayClaim != "" {
				want = append(want, h(dlq.HeaderReplayOf, tc.want.ReplayClaim))
			}
			if !slices.EqualFunc(r.Headers, want, sameHeader) {
				t.Errorf("headers %v, want %v", r.Headers, want)
			}
			_, err = c.Replay(ctx(t), dlq.Selection{IDs: []dlq.ID{r.ID}}, true)
			if refused := err != nil; refused != (tc.want.Dropped != "") {
				t.Errorf("dry-run replay: %v; want it refused only for a partial copy", err)
			}
		})
	}
}
