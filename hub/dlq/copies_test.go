package dlq_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/schemas"
)

// TestCopiesOfOneOriginCountOnce: ingest may copy a reject to the DLQ
// more than once (a group rebalance or a crash has a batch read again);
// the copies name the same origin (pophub-topic, pophub-partition,
// pophub-offset). The DLQ tools treat them as one reject: Records lists
// the first copy, naming the others in Copies, Summarize counts it once,
// and Replay sends it once, whichever copy is chosen and whether the
// ledger names the copy sent before by ID or by origin.
func TestCopiesOfOneOriginCountOnce(t *testing.T) {
	marriage := schemas.Topic(schemas.Marriage)
	// setupCopies is setup plus two more copies of seeded[0]: 0:4, and
	// 1:1 (as on a DLQ whose partitions were added to since).
	setupCopies := func(t *testing.T) (*dlq.Client, string) {
		c, addr := setup(t)
		dup := seeded[0]
		writeReject(t, addr, dup)
		dup.dlqPartition = 1
		writeReject(t, addr, dup)
		return c, addr
	}
	replay := func(t *testing.T, c *dlq.Client, sel dlq.Selection) dlq.ReplayResult {
		t.Helper()
		res, err := c.Replay(ctx(t), sel, false)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	byReason := dlq.Selection{Reason: schemas.ReasonInvalidData}
	copies := []dlq.ID{{Partition: 0, Offset: 4}, {Partition: 1, Offset: 1}}

	t.Run("list", func(t *testing.T) {
		c, _ := setupCopies(t)
		all, err := c.Records(ctx(t), dlq.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(all), "0:0 0:1 0:2 0:3 1:0"; got != want {
			t.Fatalf("records %s, want %s: each origin once", got, want)
		}
		if got := ids([]dlq.Record{{ID: copies[0]}, {ID: copies[1]}}); ids(idRecords(all[0].Copies)) != got {
			t.Errorf("0:0 has copies %v, want %s", all[0].Copies, got)
		}
		sum := dlq.Summarize(all)
		if sum.Total != 5 || sum.Copies != 2 || sum.Counts[schemas.Marriage][schemas.ReasonInvalidData] != 2 {
			t.Errorf("summary %+v; want 5 rejects, 2 more copies, 2 invalid marriage records", sum)
		}
		recs, err := c.Records(ctx(t), dlq.Filter{Reason: schemas.ReasonInvalidData})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(recs), "0:0 0:2"; got != want {
			t.Errorf("invalid_data records %s, want %s", got, want)
		}
	})
	t.Run("replay by reason, then a copy by ID", func(t *testing.T) {
		c, addr := setupCopies(t)
		if res := replay(t, c, byReason); ids(res.Sent) != "0:0 0:2" || len(res.Skipped) != 0 {
			t.Errorf("sent %q, skipped %q; want 0:0 0:2 sent", ids(res.Sent), ids(res.Skipped))
		}
		if res := replay(t, c, dlq.Selection{IDs: copies[1:]}); len(res.Sent) != 0 || ids(res.Skipped) != "1:1" {
			t.Errorf("replaying a copy of a replayed reject sent %q, skipped %q; want it skipped", ids(res.Sent), ids(res.Skipped))
		}
		if got := readTopic(t, addr, marriage); len(got) != 2 {
			t.Errorf("%s holds %d records, want 2", marriage, len(got))
		}
	})
	t.Run("replay two copies by ID, then by reason", func(t *testing.T) {
		c, addr := setupCopies(t)
		if res := replay(t, c, dlq.Selection{IDs: copies}); ids(res.Sent) != "0:4" || ids(res.Chosen) != "0:4" {
			t.Errorf("chose %q, sent %q; want the first copy given, once", ids(res.Chosen), ids(res.Sent))
		}
		if res := replay(t, c, byReason); ids(res.Sent) != "0:2" || ids(res.Skipped) != "0:0" {
			t.Errorf("sent %q, skipped %q; want 0:2 sent, 0:0 skipped", ids(res.Sent), ids(res.Skipped))
		}
		if got := readTopic(t, addr, marriage); len(got) != 2 {
			t.Errorf("%s holds %d records, want 2", marriage, len(got))
		}
	})
	t.Run("a copy in a ledger entry without origin", func(t *testing.T) {
		c, addr := setupCopies(t)
		// As replays before ledger entries named the origin recorded 0:4.
		v, _ := json.Marshal(map[string]any{"topic": marriage, "replayed_at": time.Now()})
		cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second}
		if _, err := cl.CreateTopics(ctx(t), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: dlq.LedgerTopic, NumPartitions: 1, ReplicationFactor: -1}}}); err != nil {
			t.Fatal(err)
		}
		w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: dlq.LedgerTopic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
		if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("0:4"), Value: v}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if res := replay(t, c, byReason); ids(res.Sent) != "0:2" || ids(res.Skipped) != "0:0" {
			t.Errorf("sent %q, skipped %q; want 0:2 sent, 0:0 skipped as its copy 0:4 was replayed", ids(res.Sent), ids(res.Skipped))
		}
	})
}

func idRecords(ids []dlq.ID) []dlq.Record {
	out := make([]dlq.Record, len(ids))
	for i, id := range ids {
		out[i].ID = id
	}
	return out
}

// TestUniqueAndSeenAgree: Unique (for lists) and Seen (for a count kept a
// few records at a time) count the same originals; records without an
// origin count each.
func TestUniqueAndSeenAgree(t *testing.T) {
	rec := func(p int, off int64, topic string, partition int, offset int64) dlq.Record {
		return dlq.Record{ID: dlq.ID{Partition: p, Offset: off}, Topic: topic, Partition: partition, Offset: offset}
	}
	m, h := schemas.Topic(schemas.Marriage), schemas.Topic(schemas.Health)
	for _, tc := range []struct {
		name string
		recs []dlq.Record
		want string // IDs Unique keeps
	}{
		{"distinct", []dlq.Record{rec(0, 0, m, 0, 1), rec(0, 1, m, 1, 1), rec(0, 2, h, 0, 1)}, "0:0 0:1 0:2"},
		{"copies", []dlq.Record{rec(0, 0, m, 0, 1), rec(0, 1, m, 0, 2), rec(0, 2, m, 0, 1), rec(1, 0, m, 0, 1)}, "0:0 0:1"},
		{"no origin", []dlq.Record{rec(0, 0, "", -1, -1), rec(0, 1, "", -1, -1)}, "0:0 0:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := dlq.Unique(tc.recs)
			if got := ids(u); got != tc.want {
				t.Errorf("Unique kept %s, want %s", got, tc.want)
			}
			seen, first := dlq.Seen{}, 0
			copies := 0
			for _, r := range tc.recs {
				if seen.First(r) {
					first++
				}
			}
			for _, r := range u {
				copies += len(r.Copies)
			}
			if first != len(u) || first+copies != len(tc.recs) {
				t.Errorf("Seen counted %d first copies, Unique %d with %d more copies, of %d records", first, len(u), copies, len(tc.recs))
			}
		})
	}
}
