package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/reconcile"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// adminHub serves the admin routes over m's store and consumer, as `pophub
// serve` mounts them, on a test server of its own: it keeps answering
// after the test stops m's consumer.
func adminHub(t testing.TB, m *Main) string {
	t.Helper()
	admin := api.AdminConfig{Store: m.Store, Group: m.Config.GroupID, Lag: m.Consumer.Lag}
	srv := api.New(api.Config{Store: m.Store, Mount: api.AdminHandlers(admin)})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// reconciled waits until the group has committed every record of the
// source topics, then reconciles them against m's store.
func reconciled(t testing.TB, m *Main) reconcile.Report {
	t.Helper()
	var rep reconcile.Report
	// A request that times out on a busy machine (each is bounded by
	// reconcile's 10 s default) is asked again, within the same minute;
	// any other error fails at once.
	deadline := time.Now().Add(time.Minute)
	waitFor(t, time.Minute, "the hub to commit every record", func() bool {
		var err error
		rep, err = reconcile.Run(context.Background(), reconcile.Config{Brokers: m.Brokers(), Group: m.Config.GroupID, Store: m.Store})
		var ne net.Error
		if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) && time.Now().Before(deadline) {
			t.Logf("reconciling, asked again: %v", err)
			return false
		}
		if err != nil {
			t.Fatalf("reconciling: %v", err)
		}
		for _, s := range rep.Sources {
			if s.InFlight > 0 {
				return false
			}
		}
		return true
	})
	return rep
}

// assertReconciled checks, after a scenario, that every record the hub
// committed was applied, a duplicate or rejected: call it at the end of
// any test that runs the hub.
func assertReconciled(t testing.TB, m *Main) reconcile.Report {
	t.Helper()
	rep := reconciled(t, m)
	if rep.Gaps() > 0 {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("reconciliation found %d gaps:\n%s", rep.Gaps(), b.String())
	}
	return rep
}

// line returns the report line of a source.
func line(out string, src schemas.Source) string {
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, string(src)+": ") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestReconcile runs the scenario with re-sent events and malformed
// records through a real hub, reconciles it (zero gap, exact equations),
// then loses records on purpose and checks reconcile names exactly them.
func TestReconcile(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			m := startHub(t, store)
			url := adminHub(t, m)
			msgs := scenario(t)
			byID := map[string]kafka.Message{}
			for _, msg := range msgs {
				byID[eventID(t, msg)] = msg
			}
			a := personID(t, 1)
			notJSON := kafka.Message{Topic: schemas.Topic(schemas.Housing), Key: []byte(a), Value: []byte("{not json")}
			wrongKey := byID["ps-8"]
			wrongKey.Value = bytes.Replace(wrongKey.Value, []byte(`"ps-8"`), []byte(`"ps-9"`), 1)
			wrongKey.Key = []byte(personID(t, 4))
			sent := append(slices.Clone(msgs), byID["ps-1"], byID["ps-2"], byID["ps-3"], byID["hs-1"], notJSON, wrongKey)
			produceAll(t, m.Brokers(), sent)
			waitCaughtUp(t, m, len(sent))

			rep := assertReconciled(t, m)
			c := m.Consumer.Counts()
			var applied, dups, rejected int64
			for _, s := range rep.Sources {
				applied, dups, rejected = applied+s.Applied, dups+s.Duplicates, rejected+s.Rejected
			}
			if applied != c.Applied || dups != c.Duplicates || rejected != c.RejectedTotal() {
				t.Errorf("reconciled %d applied + %d duplicates + %d rejected; the consumer counted %d + %d + %d",
					applied, dups, rejected, c.Applied, c.Duplicates, c.RejectedTotal())
			}

			args := []string{"--hub", url, "--kafka", strings.Join(m.Brokers(), ",")}
			out, err := execute(t, reconcileCommand(), args...)
			if err != nil {
				t.Fatalf("reconcile: %v\n%s", err, out)
			}
			for src, want := range map[schemas.Source]string{
				schemas.PublicSecurity: "public_security: 12 records up to committed offsets = 8 applied + 3 duplicates + 1 rejected; gap 0",
				schemas.Housing:        "housing: 6 records up to committed offsets = 4 applied + 1 duplicates + 1 rejected; gap 0",
				schemas.Marriage:       "marriage: 4 records up to committed offsets = 4 applied + 0 duplicates + 0 rejected; gap 0",
			} {
				if got := line(out, src); got != want {
					t.Errorf("got  %q\nwant %q", got, want)
				}
			}
			if !strings.Contains(out, "all sources: 34 records up to committed offsets = 28 applied + 4 duplicates + 2 rejected; gap 0; in flight 0") {
				t.Errorf("no total line:\n%s", out)
			}
			out, err = execute(t, reconcileCommand(), append(args, "--source", "tax")...)
			if err != nil || line(out, schemas.Tax) == "" || line(out, schemas.Housing) != "" {
				t.Errorf("--source tax: %v\n%s", err, out)
			}
			// Another group's offsets say nothing about this hub: refused,
			// not "gap 0" over nothing checked.
			out, err = execute(t, reconcileCommand(), append(args, "--group", m.Config.GroupID+"-typo")...)
			if err == nil || !strings.Contains(err.Error(), "is not the consumer group of the hub at") || !strings.Contains(err.Error(), "consumes as "+m.Config.GroupID) {
				t.Errorf("reconcile with another group: %v, want a refusal naming the hub's group\n%s", err, out)
			}
			if out, err = execute(t, reconcileCommand(), append(args, "--group", m.Config.GroupID, "--source", "tax")...); err != nil {
				t.Errorf("reconcile with the hub's own group: %v\n%s", err, out)
			}

			var lost []string // event ids reconcile must report
			if store == "postgres" {
				// An applied event vanishes from the store.
				conn, err := pgx.Connect(context.Background(), testenv.PostgresURL())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(context.Background())
				tag, err := conn.Exec(context.Background(), "DELETE FROM "+pgx.Identifier{m.Config.PostgresSchema, "history"}.Sanitize()+
					" WHERE source = 'housing' AND event_id = 'hs-2'")
				if err != nil || tag.RowsAffected() != 1 {
					t.Fatalf("deleting a history row: %v (%d rows)", err, tag.RowsAffected())
				}
				lost = append(lost, "hs-2")
			}

			// The hub stops; a record arrives and the group's offset moves
			// past it without the hub having applied it.
			if err := m.Consumer.Close(); err != nil {
				t.Fatalf("stopping the consumer: %v", err)
			}
			topic := schemas.Topic(schemas.Housing)
			lostMsg := byID["hs-3"]
			lostMsg.Value = bytes.Replace(lostMsg.Value, []byte(`"hs-3"`), []byte(`"hs-lost"`), 1)
			part, off := produceAt(t, m.Brokers(), topic, 0, lostMsg)
			commitOffset(t, m.Brokers(), m.Config.GroupID, topic, part, off+1)
			lost = append(lost, "hs-lost")

			out, err = execute(t, reconcileCommand(), args...)
			if exit, ok := errors.AsType[exitError](err); !ok || exit != 1 {
				t.Fatalf("reconcile after a loss: %v, want exit status 1\n%s", err, out)
			}
			wantLine := fmt.Sprintf("housing: 7 records up to committed offsets = %d applied + 1 duplicates + 1 rejected; gap %d", 5-len(lost), len(lost))
			if got := line(out, schemas.Housing); got != wantLine {
				t.Errorf("got  %q\nwant %q\n%s", got, wantLine, out)
			}
			if want := fmt.Sprintf("  GAP %s/%d@%d event hs-lost: %s\n", topic, part, off, reconcile.WhyUnknown); !strings.Contains(out, want) {
				t.Errorf("no line %q in\n%s", want, out)
			}
			gaps := 0
			for l := range strings.Lines(out) {
				if strings.HasPrefix(l, "  GAP ") {
					gaps++
					if !slices.ContainsFunc(lost, func(id string) bool { return strings.Contains(l, " event "+id+": ") }) {
						t.Errorf("unexpected gap %q", l)
					}
				}
			}
			if gaps != len(lost) || strings.Contains(out, string(a)) {
				t.Errorf("%d gaps, want %d (and no citizen ID):\n%s", gaps, len(lost), out)
			}
		})
	}
}

// eventID reads a message's event id.
func eventID(t testing.TB, m kafka.Message) string {
	t.Helper()
	k, ok := reconcile.EnvelopeKey(schemas.SourceOfTopic(m.Topic), m.Value)
	if !ok {
		t.Fatalf("message on %s has no event id", m.Topic)
	}
	return k.ID
}

// produceAt writes one record to a chosen partition and returns where it
// landed.
func produceAt(t testing.TB, brokers []string, topic string, partition int, msg kafka.Message) (int, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, partition)
	if err != nil {
		t.Fatalf("dialing the leader of %s/%d: %v", topic, partition, err)
	}
	defer conn.Close()
	_, end, err := conn.ReadOffsets()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteMessages(kafka.Message{Key: msg.Key, Value: msg.Value}); err != nil {
		t.Fatalf("producing to %s/%d: %v", topic, partition, err)
	}
	return partition, end
}

// commitOffset sets a group's committed offset, as a consumer that read
// the record but lost it would.
func commitOffset(t testing.TB, brokers []string, group, topic string, partition int, offset int64) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	var err error
	waitFor(t, 30*time.Second, "the group to accept an offset commit", func() bool {
		var resp *kafka.OffsetCommitResponse
		resp, err = cl.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: partition, Offset: offset}}}})
		if err == nil {
			for _, p := range resp.Topics[topic] {
				err = p.Error
			}
		}
		return err == nil
	})
}

// BenchmarkReconcile reconciles a synthetic population's events through
// a running hub: the source topics scanned with kafka-go, the keys asked
// of the store over the admin API, as `pophub reconcile` does.
func BenchmarkReconcile(b *testing.B) {
	for _, store := range stores {
		b.Run(store, func(b *testing.B) {
			m := startHub(b, store)
			url := adminHub(b, m)
			in := storetest.Population(b, 3000, 5)
			msgs := make([]kafka.Message, len(in))
			for i, e := range in {
				v, err := json.Marshal(e.Event)
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = kafka.Message{Topic: schemas.Topic(e.Event.Source), Key: []byte(e.Event.Subject), Value: v}
			}
			produceAll(b, m.Brokers(), msgs)
			waitCaughtUp(b, m, len(msgs))
			reconciled(b, m)
			cfg := reconcile.Config{Brokers: m.Brokers(), Store: &reconcile.HubClient{URL: url}}
			b.ResetTimer()
			for b.Loop() {
				rep, err := reconcile.Run(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Gaps() != 0 {
					b.Fatalf("%d gaps", rep.Gaps())
				}
			}
			b.ReportMetric(float64(len(msgs)), "records/op")
			b.ReportMetric(float64(len(msgs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
