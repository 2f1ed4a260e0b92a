package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
)

// execute runs a pophub command in-process, as the binary would with
// args, under a five-minute deadline, and returns what it wrote to
// standard output and standard error together.
func execute(t testing.TB, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startHub runs the embedded hub (in-process broker and NATS server, over
// real TCP connections) on the given store until the test ends.
func startHub(t testing.TB, store string) *Main {
	t.Helper()
	cfg := Config{Embedded: true, DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Partitions: 4, NATSSync: time.Second}
	if store == "postgres" {
		cfg.PostgresURL = testenv.PostgresURL()
		cfg.PostgresSchema = testenv.Schema(t)
	}
	return startMain(t, cfg)
}

// startMain runs the hub with cfg until the test ends.
func startMain(t testing.TB, cfg Config) *Main {
	t.Helper()
	m := &Main{Config: cfg, Logger: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("starting hub: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Logf("closing hub: %v", err)
		}
	})
	return m
}

var stores = []string{"memdb", "postgres"}

// validID completes 17 digits with their check character.
func validID(t testing.TB, first17 string) citizenid.ID {
	t.Helper()
	id, err := citizenid.Parse(first17 + string(citizenid.CheckChar(first17)))
	if err != nil {
		t.Fatalf("test ID %s: %v", first17, err)
	}
	return id
}

func personID(t testing.TB, n int) citizenid.ID {
	return validID(t, fmt.Sprintf("230102198%d%02d%02d%03d", n%10, 1+n%12, 1+n%28, n%1000))
}

func testUSCC(t testing.TB, n int) string {
	first := fmt.Sprintf("9123010%010d", n)
	c, ok := codes.USCCCheckChar(first)
	if !ok {
		t.Fatalf("bad USCC prefix %s", first)
	}
	return first + string(c)
}

// event encodes one CloudEvent the way a department would send it.
func event(t testing.TB, typ schemas.Type, subject citizenid.ID, id, when string, data map[string]any) kafka.Message {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	src := schemas.SourceOf(typ)
	b, err := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": src, "type": typ,
		"subject": string(subject), "time": when, "datacontenttype": "application/json", "data": json.RawMessage(raw)})
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: schemas.Topic(src), Key: []byte(subject), Value: b}
}

// scenario returns events of every catalogue type over three persons, with
// deaths, migrations, a marriage pair and out-of-order arrivals.
func scenario(t testing.TB) []kafka.Message {
	a, b, c := personID(t, 1), personID(t, 2), personID(t, 3)
	emp := testUSCC(t, 1)
	reg := func(p citizenid.ID, id, addr string) kafka.Message {
		return event(t, schemas.HukouRegistered, p, id, "2015-01-01T08:00:00+08:00", map[string]any{"name": "王芳",
			"gender": p.Gender(), "birth_date": p.BirthDate().Format(time.DateOnly), "ethnicity": "01",
			"address_code": addr, "household_id": "H-" + id, "reason": "birth"})
	}
	return []kafka.Message{
		reg(a, "ps-1", "230102001001"),
		reg(b, "ps-2", "230103002001"),
		event(t, schemas.HukouMigrated, a, "ps-3", "2024-05-01T00:00:00+08:00", map[string]any{"from_address_code": "230102001001", "to_address_code": "230602013004", "reason": "employment"}),
		event(t, schemas.ResidencePermitIssued, b, "ps-4", "2022-01-01T00:00:00+08:00", map[string]any{"city_code": "330602", "address_code": "330602001004", "basis": "employment", "valid_until": "2027-01-01"}),
		event(t, schemas.ResidencePermitRevoked, b, "ps-5", "2021-06-01T00:00:00+08:00", map[string]any{"city_code": "330602"}),
		event(t, schemas.IdentityCorrected, b, "ps-6", "2023-01-01T00:00:00+08:00", map[string]any{"name": "李娜"}),
		event(t, schemas.DeathCertified, c, "h-1", "2025-03-01T10:00:00+08:00", map[string]any{"date_of_death": "2025-02-28", "certificate_no": "D1"}),
		reg(c, "ps-7", "230104001001"),
		event(t, schemas.HukouCancelled, b, "ps-8", "2025-06-01T00:00:00+08:00", map[string]any{"reason": "emigration"}),
		event(t, schemas.ContractEnded, a, "emp-2", "2024-12-31T00:00:00+08:00", map[string]any{"contract_id": "C1", "end": "2024-12-31"}),
		event(t, schemas.ContractStarted, a, "emp-1", "2023-03-01T00:00:00+08:00", map[string]any{"contract_id": "C1", "employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2023-03-01"}),
		event(t, schemas.InsuranceEnrolled, a, "si-1", "2023-03-01T00:00:00+08:00", map[string]any{"scheme": "employee", "insurances": []string{"pension", "medical", "unemployment"}, "region": "230102", "start": "2023-03-01"}),
		event(t, schemas.ContributionRecorded, a, "si-2", "2023-03-31T00:00:00+08:00", map[string]any{"month": "2023-03", "region": "230102", "insurances": []string{"pension", "medical", "unemployment"}}),
		event(t, schemas.ContributionRecorded, a, "si-3", "2023-04-30T00:00:00+08:00", map[string]any{"month": "2023-04", "region": "230102", "insurances": []string{"pension", "medical"}}),
		event(t, schemas.InsuranceTerminated, a, "si-4", "2024-12-31T00:00:00+08:00", map[string]any{"insurances": []string{"unemployment"}, "region": "230102", "end": "2024-12-31"}),
		event(t, schemas.InsuranceTransferred, a, "si-5", "2025-01-15T00:00:00+08:00", map[string]any{"from_region": "230102", "to_region": "230602"}),
		event(t, schemas.EducationEnrolled, b, "ed-1", "2010-09-01T00:00:00+08:00", map[string]any{"institution": "哈尔滨工业大学", "level": "21", "region": "230103", "start": "2010-09-01"}),
		event(t, schemas.EducationGraduated, b, "ed-2", "2014-07-01T00:00:00+08:00", map[string]any{"institution": "哈尔滨工业大学", "level": "21", "date": "2014-07-01", "certificate_no": "B1"}),
		event(t, schemas.PropertyRegistered, b, "hs-1", "2020-01-01T00:00:00+08:00", map[string]any{"property_id": "P1", "address_code": "230103002001", "acquired": "purchase", "area_m2": 89.5}),
		event(t, schemas.PropertyTransferred, b, "hs-2", "2023-01-01T00:00:00+08:00", map[string]any{"property_id": "P1"}),
		event(t, schemas.RentalRegistered, a, "hs-3", "2023-03-01T00:00:00+08:00", map[string]any{"lease_id": "L1", "address_code": "230102001001", "start": "2023-03-01"}),
		event(t, schemas.RentalEnded, a, "hs-4", "2024-04-30T00:00:00+08:00", map[string]any{"lease_id": "L1", "end": "2024-04-30"}),
		event(t, schemas.BusinessRegistered, b, "tx-1", "2021-01-01T00:00:00+08:00", map[string]any{"business_id": emp, "region": "230103", "name": "李记小吃"}),
		event(t, schemas.BusinessDeregistered, b, "tx-2", "2024-01-01T00:00:00+08:00", map[string]any{"business_id": emp}),
		event(t, schemas.MarriageRegistered, a, "m-1", "2022-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(b)}),
		event(t, schemas.MarriageRegistered, b, "m-2", "2022-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(a)}),
		event(t, schemas.MarriageDivorced, b, "m-3", "2024-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(a)}),
		event(t, schemas.MarriageDivorced, a, "m-4", "2024-05-20T00:00:00+08:00", map[string]any{"spouse_id": string(b)}),
	}
}

// expected computes the golden records the hub must reach, with the pure
// merge rules alone.
func expected(t testing.TB, msgs []kafka.Message) map[citizenid.ID]hub.Record {
	t.Helper()
	var in []hub.Input
	for _, m := range msgs {
		ev, err := schemas.Decode(schemas.Input{Topic: m.Topic, Key: m.Key, Value: m.Value})
		if err != nil {
			continue
		}
		in = append(in, hub.Input{Event: ev})
	}
	out := merge.Batch(nil, in, time.Now())
	recs := map[citizenid.ID]hub.Record{}
	for id, st := range out.States {
		recs[id] = st.Record()
	}
	return recs
}

func produceAll(t testing.TB, brokers []string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: 2000,
		Transport: ownTransport(t)}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < len(msgs); i += 5000 {
		if err := w.WriteMessages(ctx, msgs[i:min(i+5000, len(msgs))]...); err != nil {
			t.Fatalf("producing: %v", err)
		}
	}
}

// ownTransport is a kafka-go transport for one test's writer. kafka-go's
// default transport is shared by the whole process and keeps each
// address's metadata for seconds; the tests start brokers on free ports,
// and a port the system hands out again within that time would bring the
// previous broker's partition count with it (a write to partition 2 of a
// two-partition topic fails with "topic partition not found").
func ownTransport(t testing.TB) *kafka.Transport {
	tr := &kafka.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCaughtUp waits until the hub consumed n records and published every
// notification it committed.
func waitCaughtUp(t testing.TB, m *Main, n int) {
	t.Helper()
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d records consumed and the outbox drained", n), func() bool {
		c := m.Consumer.Counts()
		st, err := m.Store.Stats(context.Background())
		return err == nil && c.Applied+c.Duplicates+c.RejectedTotal() >= int64(n) && st.OutboxPending == 0
	})
}

func getRecord(t testing.TB, m *Main, id citizenid.ID) (hub.Record, int) {
	t.Helper()
	var r hub.Record
	code := getInto(t, "http://"+m.HTTPAddr()+"/v1/persons/"+string(id), &r)
	return r, code
}

func getInto(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("decoding %s: %v", body, err)
		}
	}
	return resp.StatusCode
}

// notifications collects every message of stream POP.
type notifications struct {
	mu   sync.Mutex
	msgs []jetstream.Msg
}

func collect(t testing.TB, url string) *notifications {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connecting to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, schemas.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("creating consumer: %v", err)
	}
	n := &notifications{}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		n.mu.Lock()
		n.msgs = append(n.msgs, msg)
		n.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("consuming: %v", err)
	}
	t.Cleanup(cc.Stop)
	return n
}

func (n *notifications) snapshot() []jetstream.Msg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]jetstream.Msg(nil), n.msgs...)
}

func (n *notifications) bySubjectPrefix(prefix string) []schemas.Notification {
	var out []schemas.Notification
	for _, m := range n.snapshot() {
		if strings.HasPrefix(m.Subject(), prefix) {
			var v schemas.Notification
			if err := json.Unmarshal(m.Data(), &v); err == nil {
				out = append(out, v)
			}
		}
	}
	return out
}

// normal drops what depends on arrival time rather than content.
func normal(r hub.Record) hub.Record {
	r.UpdatedAt = time.Time{}
	return r
}
