package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// poisonKind turns a valid record into one the hub must reject for reason.
type poisonKind struct {
	name   string
	reason string
	// make returns the poisoned copy, or false when m does not suit.
	make func(m kafka.Message, other string) (kafka.Message, bool)
}

// editEnvelope decodes a record's envelope, lets edit change it and
// encodes it again.
func editEnvelope(m kafka.Message, edit func(env, data map[string]any) bool) (kafka.Message, bool) {
	var env map[string]any
	if err := json.Unmarshal(m.Value, &env); err != nil {
		return m, false
	}
	data, _ := env["data"].(map[string]any)
	if !edit(env, data) {
		return m, false
	}
	v, err := json.Marshal(env)
	if err != nil {
		return m, false
	}
	m.Value = v
	return m, true
}

// wrongCheck replaces a citizen ID's check character by another.
func wrongCheck(id string) string {
	c := "0"
	if id[17] == '0' {
		c = "1"
	}
	return id[:17] + c
}

var poisonKinds = []poisonKind{
	{"malformed JSON", schemas.ReasonNotJSON, func(m kafka.Message, _ string) (kafka.Message, bool) {
		m.Value = m.Value[:len(m.Value)/2]
		return m, true
	}},
	{"no id", schemas.ReasonNotCloudEvent, func(m kafka.Message, _ string) (kafka.Message, bool) {
		return editEnvelope(m, func(env, _ map[string]any) bool { delete(env, "id"); return true })
	}},
	{"time of the wrong type", schemas.ReasonNotCloudEvent, func(m kafka.Message, _ string) (kafka.Message, bool) {
		return editEnvelope(m, func(env, _ map[string]any) bool { env["time"] = 20250101; return true })
	}},
	{"unknown type", schemas.ReasonUnknownType, func(m kafka.Message, _ string) (kafka.Message, bool) {
		return editEnvelope(m, func(env, _ map[string]any) bool { env["type"] = fmt.Sprint(env["source"], ".vaccinated"); return true })
	}},
	{"wrong topic", schemas.ReasonSourceMismatch, func(m kafka.Message, _ string) (kafka.Message, bool) {
		if m.Topic == schemas.Topic(schemas.Tax) {
			m.Topic = schemas.Topic(schemas.Health)
		} else {
			m.Topic = schemas.Topic(schemas.Tax)
		}
		return m, true
	}},
	{"key of another person", schemas.ReasonKeyMismatch, func(m kafka.Message, other string) (kafka.Message, bool) {
		if other == string(m.Key) {
			return m, false
		}
		m.Key = []byte(other)
		return m, true
	}},
	{"bad citizen ID", schemas.ReasonInvalidSubject, func(m kafka.Message, _ string) (kafka.Message, bool) {
		bad := wrongCheck(string(m.Key))
		m.Key = []byte(bad)
		return editEnvelope(m, func(env, _ map[string]any) bool { env["subject"] = bad; return true })
	}},
	{"data field of the wrong type", schemas.ReasonInvalidData, func(m kafka.Message, _ string) (kafka.Message, bool) {
		return editEnvelope(m, func(_, data map[string]any) bool {
			keys := make([]string, 0, len(data))
			for k, v := range data {
				if _, ok := v.(string); ok {
					keys = append(keys, k)
				}
			}
			if len(keys) == 0 {
				return false
			}
			slices.Sort(keys)
			data[keys[0]] = 42
			return true
		})
	}},
	{"unknown field in data", schemas.ReasonInvalidData, func(m kafka.Message, _ string) (kafka.Message, bool) {
		return editEnvelope(m, func(_, data map[string]any) bool {
			if data == nil {
				return false
			}
			data["colour"] = "blue"
			return true
		})
	}},
	{"unknown address code", schemas.ReasonUnknownAddressCode, func(m kafka.Message, _ string) (kafka.Message, bool) {
		return editEnvelope(m, func(_, data map[string]any) bool {
			if _, ok := data["address_code"]; !ok {
				return false
			}
			data["address_code"] = "230102001999"
			return true
		})
	}},
}

// poisoned mixes rate poison records, of every kind in turn, among msgs at
// random places, and returns the mix and the rejects expected by reason.
// Each poison record is checked against the decoder, so that the
// expectation is the hub's own rule, not this generator's belief.
func poisoned(t testing.TB, msgs []kafka.Message, rate float64, seed uint64) ([]kafka.Message, map[string]int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	n := int(float64(len(msgs)) * rate / (1 - rate))
	bad := make([]kafka.Message, 0, n)
	want := map[string]int{}
	for i := 0; len(bad) < n; i++ {
		kind := poisonKinds[i%len(poisonKinds)]
		for try := 0; ; try++ {
			if try > 10_000 {
				t.Fatalf("no record suits poison kind %q", kind.name)
			}
			src := msgs[r.IntN(len(msgs))]
			p, ok := kind.make(src, string(msgs[r.IntN(len(msgs))].Key))
			if !ok {
				continue
			}
			_, err := schemas.Decode(schemas.Input{Topic: p.Topic, Key: p.Key, Value: p.Value})
			var re *schemas.RejectError
			if !errors.As(err, &re) || re.Reason != kind.reason {
				t.Fatalf("poison kind %q: the decoder says %v, want reason %s", kind.name, err, kind.reason)
			}
			bad = append(bad, p)
			want[kind.reason]++
			break
		}
	}
	// Place each poison record before a random valid one.
	at := make([]int, len(bad))
	for i := range at {
		at[i] = r.IntN(len(msgs) + 1)
	}
	slices.Sort(at)
	out := make([]kafka.Message, 0, len(msgs)+len(bad))
	j := 0
	for i, m := range msgs {
		for ; j < len(at) && at[j] == i; j++ {
			out = append(out, bad[j])
		}
		out = append(out, m)
	}
	out = append(out, bad[j:]...)
	return out, want
}

// poisonRun is one run of the hub over a prepared broker.
type poisonRun struct {
	hub     *servedHub
	broker  *embedded.Kafka
	natsURL string
	rate    float64       // records/s from the first commit to the last
	join    time.Duration // from start to the first committed batch
	total   time.Duration
	close   func() // stops the hub and its servers (also done at cleanup)
}

// runLoad produces msgs into a fresh broker, then starts a hub (memdb in
// a temporary directory, or PostgreSQL) and times it until it committed every record.
func runLoad(t testing.TB, msgs []kafka.Message, store string) poisonRun {
	t.Helper()
	k := startBroker(t, embedded.KafkaConfig{})
	t.Cleanup(func() { k.Close() })
	produceAll(t, []string{k.Addr()}, msgs)
	ns := startNATS(t)
	cfg := Config{KafkaBrokers: []string{k.Addr()}, NATSURL: ns.ClientURL()}
	if store == "postgres" {
		cfg.PostgresURL, cfg.PostgresSchema = testenv.PostgresURL(), testenv.Schema(t)
	}
	start := time.Now()
	m := startServe(t, cfg)
	total := int64(len(msgs))
	var first time.Time
	var atFirst int64
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n := m.Consumer.Counts().Consumed
		if n > 0 && first.IsZero() {
			first, atFirst = time.Now(), n
		}
		if n >= total {
			break
		}
		if err := m.stopped(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d records consumed after 5 minutes", n, total)
		}
		time.Sleep(2 * time.Millisecond)
	}
	end := time.Now()
	run := poisonRun{hub: m, broker: k, natsURL: ns.ClientURL(), join: first.Sub(start), total: end.Sub(start),
		close: func() {
			m.Close()
			ns.Close()
			k.Close()
		}}
	if d := end.Sub(first); d > 0 {
		run.rate = float64(total-atFirst) / d.Seconds()
	}
	return run
}

// checkPoison checks a poisoned run: every poison record in the DLQ with
// its reason, every valid event applied, the records as expected.
func checkPoison(t testing.TB, run poisonRun, l *faultLoad, want map[string]int) {
	t.Helper()
	var nbad int
	for _, n := range want {
		nbad += n
	}
	c := run.hub.Consumer.Counts()
	rejected := map[string]int{}
	for r, n := range c.Rejected {
		rejected[r] = int(n)
	}
	if !mapsEqual(rejected, want) {
		t.Errorf("rejected %v, want %v", c.Rejected, want)
	}
	got := dlqCount(t, run.broker.Addr(), nbad)
	if !mapsEqual(got, want) {
		t.Errorf("the DLQ holds %v, want %v", got, want)
	}
	if c.Applied != l.distinct {
		t.Errorf("applied %d events, want %d", c.Applied, l.distinct)
	}
	storetest.CompareRecords(t, run.hub.Store, l.want)
	if tot := assertReconciled(t, run.hub.Main).Total(); tot.Rejected != int64(nbad) || tot.Applied != l.distinct {
		t.Errorf("reconcile: %+v, want %d applied and %d rejected", tot, l.distinct, nbad)
	}
	var reasons []string
	for r, n := range got {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
	}
	slices.Sort(reasons)
	t.Logf("%d poison records of %d in the DLQ by reason: %s; %d valid events applied, %d duplicates",
		nbad, c.Consumed, strings.Join(reasons, " "), c.Applied, c.Duplicates)
}

// mapsEqual compares counts, a missing key counting as zero.
func mapsEqual(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// TestFaultPoison mixes 1 % poison records of every kind (malformed JSON,
// fields of the wrong type, bad citizen IDs, unknown types, wrong topics,
// keys and address codes) among a population's events: all poison lands in
// the DLQ with its reason, every valid event is applied, and the
// throughput with poison is reported next to the throughput without, on
// the same events, in the same run. BenchmarkFaultPoison is the full-size
// version (100,000 events).
func TestFaultPoison(t *testing.T) {
	l := newFaultLoad(t, faultPersons(), 16)
	mixed, want := poisoned(t, l.msgs, 0.01, 16)
	clean := runLoad(t, l.msgs, "memdb")
	clean.close()
	dirty := runLoad(t, mixed, "memdb")
	checkPoison(t, dirty, l, want)
	waitFor(t, time.Minute, "the outbox drained", func() bool {
		st, err := dirty.hub.Store.Stats(context.Background())
		return err == nil && st.OutboxPending == 0
	})
	checkNotifications(t, dirty.hub.Store, dirty.natsURL, l.want)
	t.Logf("memdb: %d clean records at %.0f records/s; %d with 1%% poison at %.0f records/s (%.1f%% of clean); group join %v and %v",
		len(l.msgs), clean.rate, len(mixed), dirty.rate, 100*dirty.rate/clean.rate, clean.join.Round(time.Millisecond), dirty.join.Round(time.Millisecond))
}

// BenchmarkFaultPoison times the hub over 100,000 events without and with
// 1 % poison records, in three rounds of each, alternating (clean, poisoned,
// poisoned, clean, clean, poisoned) so that drift cancels, each on fresh
// servers, and reports the median rate of each (records/s from the first
// committed batch to the last):
//
//	go test -run '^$' -bench FaultPoison -benchtime 1x ./cmd/pophub/
func BenchmarkFaultPoison(b *testing.B) {
	l := newFaultLoad(b, 7100, 42) // about 100,000 events
	mixed, want := poisoned(b, l.msgs, 0.01, 42)
	for _, store := range stores {
		b.Run(store, func(b *testing.B) {
			for b.Loop() {
				var clean, dirty []float64
				for _, poison := range []bool{false, true, true, false, false, true} {
					if !poison {
						run := runLoad(b, l.msgs, store)
						clean = append(clean, run.rate)
						run.close()
						continue
					}
					run := runLoad(b, mixed, store)
					checkPoison(b, run, l, want)
					dirty = append(dirty, run.rate)
					run.close()
				}
				slices.Sort(clean)
				slices.Sort(dirty)
				c, d := clean[1], dirty[1]
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(c, "clean-records/s")
				b.ReportMetric(d, "poisoned-records/s")
				b.ReportMetric(100*d/c, "poisoned-%-of-clean")
				b.Logf("%s: %d clean records at %.0f/s (runs %.0f); %d with 1%% poison at %.0f/s (runs %.0f)",
					store, len(l.msgs), c, clean, len(mixed), d, dirty)
			}
		})
	}
}
