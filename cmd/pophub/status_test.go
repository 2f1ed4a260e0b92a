package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestStatus runs a scenario with a malformed record and a durable
// subscriber that acknowledged nothing, serves the admin routes with the
// Main's wiring (adminConfig) and checks `pophub status`, screen and JSON.
func TestStatus(t *testing.T) {
	m := startHub(t, "memdb")
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{Durable: "si-harbin", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatalf("creating a durable consumer: %v", err)
	}
	srv := api.New(api.Config{Store: m.Store, Mount: api.AdminHandlers(m.adminConfig(js))})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	msgs := append(scenario(t), kafka.Message{Topic: schemas.Topic(schemas.Tax), Key: []byte(personID(t, 1)), Value: []byte("nope")})
	produceAll(t, m.Brokers(), msgs)
	waitCaughtUp(t, m, len(msgs))
	assertReconciled(t, m)

	run := func(args ...string) string {
		t.Helper()
		cmd := statusCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append([]string{"--hub", ts.URL}, args...))
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("status %v: %v", args, err)
		}
		return out.String()
	}
	var st api.Status
	if err := json.Unmarshal([]byte(run("--json")), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if !st.Store.OK || st.Store.Changes == nil || *st.Store.Changes != 28 || st.Ingest == nil || st.Ingest.Counts.Consumed != int64(len(msgs)) ||
		st.DLQ == nil || st.DLQ.Records != 1 || st.Stream == nil || len(st.Stream.Consumers) != 1 {
		t.Fatalf("status %+v", st)
	}
	// The transaction markers the consumer passed over are counted in the
	// answer: they were once left out, and offsets did not add up.
	if raw := run("--json"); !strings.Contains(raw, `"duplicates":0,"skipped":0,`) {
		t.Errorf("no skipped count in %s", raw)
	}
	sub := st.Stream.Consumers[0]
	if sub.Name != "si-harbin" || sub.Pending != st.Stream.LastSeq || sub.AckFloor != 0 || st.Stream.LastSeq == 0 {
		t.Errorf("subscriber %+v, stream %+v", sub, st.Stream)
	}

	screen := run()
	for _, want := range []string{
		"store    ok\n         persons 3  changes 28  outbox pending 0",
		"ingest   group pophub  lag ",
		"since start: consumed 29 = applied 28 + duplicates 0 + rejected 1; skipped 0 transaction markers",
		"dlq      1 records: not_json 1\n         by source: tax 1",
		"stream   POP  messages ",
		"SUBSCRIBER  PENDING",
		"si-harbin ",
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("no %q in\n%s", want, screen)
		}
	}
	if strings.Contains(screen, string(personID(t, 1))) {
		t.Errorf("a citizen ID on the screen:\n%s", screen)
	}
	t.Logf("\n%s", screen)
}

// TestStatusUnauthorized: a hub with a token refuses a status request
// without it, and the command says so.
func TestStatusUnauthorized(t *testing.T) {
	m := startHub(t, "memdb")
	srv := api.New(api.Config{Store: m.Store, Mount: api.AdminHandlers(api.AdminConfig{Store: m.Store, Token: "t0ken"})})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	cmd := statusCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"--hub", ts.URL})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without a token: %v", err)
	}
	cmd = statusCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"--hub", ts.URL, "--token", "t0ken"})
	if err := cmd.Execute(); err != nil {
		t.Errorf("with the token: %v", err)
	}
}

// TestStatusUnderPolicy: under an access policy the brokers require a
// login, and the status page reads the DLQ as the hub, with its login
// and a Read grant on the DLQ topic. It once read without one, and every
// status under a policy said "dlq unreadable".
func TestStatusUnderPolicy(t *testing.T) {
	m := startSecureHub(t)
	code, body := call(t, "GET", "http://"+m.HTTPAddr()+"/v1/admin/status", "admin", "operations", nil)
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, body)
	}
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.DLQ == nil || st.DLQ.Error != "" {
		t.Errorf("dlq part %+v, want the DLQ counted: %s", st.DLQ, body)
	}
	if st.Stream == nil || st.Stream.Error != "" || !st.Store.OK {
		t.Errorf("stream %+v, store %+v: %s", st.Stream, st.Store, body)
	}
}

// TestStatusLagUnknown: while the lag cannot be measured, the status says
// so, with the reason and when it last was, instead of showing lag 0.
func TestStatusLagUnknown(t *testing.T) {
	at := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   api.IngestStatus
		want string
	}{
		{"measured", api.IngestStatus{Group: "pophub", Lag: []api.PartitionLag{{Topic: "pop.events.tax", Lag: 0}}},
			"ingest   group pophub  lag 0 (0 of 1 partitions behind)"},
		{"failing since", api.IngestStatus{Group: "pophub", Lag: []api.PartitionLag{}, LagMeasuredAt: &at, LagError: "dial tcp: connection refused"},
			"ingest   group pophub  lag UNKNOWN: dial tcp: connection refused (last measured 1m30s ago)"},
		{"never measured", api.IngestStatus{Group: "pophub", Lag: []api.PartitionLag{}, LagError: "no broker"},
			"lag UNKNOWN: no broker (last measured never)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			var out bytes.Buffer
			st := api.Status{Time: at.Add(90 * time.Second), Store: api.StoreStatus{OK: true}, Ingest: &in}
			if err := renderStatus(&out, "http://hub", st); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("no %q in\n%s", tt.want, out.String())
			}
		})
	}
}

// TestStatusDLQIncremental: the status counts the DLQ incrementally. With
// 50,000 rejects and calls too short to read them all, each call keeps
// what it read and says how far it got, no record is read twice, the
// totals are exact once caught up, and a later call reads only the new
// records. The count once reread the whole topic on every call and, past
// a few hundred thousand rejects, failed every time within the 5 s probe.
func TestStatusDLQIncremental(t *testing.T) {
	m := startHub(t, "memdb")
	const n = 50000
	dlqMsg := func(i int, reason string, src schemas.Source) kafka.Message {
		return kafka.Message{Topic: schemas.DLQTopic, Key: []byte(strconv.Itoa(i)), Value: []byte("v"), Headers: []kafka.Header{
			// A department's own pophub-* headers come first and count for nothing.
			{Key: "pophub-reason", Value: []byte("forged")}, {Key: "pophub-topic", Value: []byte(schemas.Topic(schemas.Health))},
			{Key: "pophub-reason", Value: []byte(reason)}, {Key: "pophub-topic", Value: []byte(schemas.Topic(src))}}}
	}
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		if i%5 == 0 {
			msgs[i] = dlqMsg(i, "invalid", schemas.Marriage)
		} else {
			msgs[i] = dlqMsg(i, "not_json", schemas.Tax)
		}
	}
	produceAll(t, m.Brokers(), msgs)

	c := &cachedDLQ{brokers: m.Brokers()} // ttl 0: every call counts
	// count counts within the time given; a short count on a busy machine
	// may run out of time before the partitions are even listed, which
	// the status page shows as an error, and ok is then false. Its time
	// may run out in a dial or a read, whose error is an i/o timeout
	// rather than the context's, and may be seen before the context says
	// it is done (the connection's deadline is the context's, and either
	// timer may fire first): what counts is that the call's time is up.
	tryCount := func(within time.Duration) (d api.DLQCounts, ok bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		d, err := c.get(ctx)
		if err != nil {
			var ne net.Error
			timedOut := errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout())
			if within < time.Second && timedOut {
				return d, false
			}
			t.Fatalf("counting the DLQ: %v", err)
		}
		var counted int64
		for _, k := range d.ByReason {
			counted += k
		}
		if counted != d.Records {
			t.Fatalf("records %d, by reason %v", d.Records, d.ByReason)
		}
		return d, true
	}
	count := func(within time.Duration) api.DLQCounts {
		t.Helper()
		d, _ := tryCount(within)
		return d
	}
	var d api.DLQCounts
	// On a busy machine a 200 ms call may count little or nothing: the
	// bound is on time, not on the number of calls. A call that counts
	// nothing new five times in a row gets more time, up to 800 ms, still
	// too short to read 50,000 records under the race detector.
	calls, partial, stalled, within := 0, 0, 0, 200*time.Millisecond
	for deadline := time.Now().Add(5 * time.Minute); ; {
		if calls++; time.Now().After(deadline) {
			t.Fatalf("not caught up after %d calls (the last %d counting nothing new, given %v): %+v", calls, stalled, within, d)
		}
		next, ok := tryCount(within)
		if !ok || next.Records == d.Records {
			if stalled++; stalled%5 == 0 {
				within = min(2*within, 800*time.Millisecond)
			}
		} else {
			stalled = 0
		}
		if !ok {
			continue
		}
		d = next
		if len(d.CatchingUp) == 0 {
			break
		}
		partial++
		var out bytes.Buffer
		if err := renderStatus(&out, "http://hub", api.Status{Store: api.StoreStatus{OK: true}, DLQ: &d}); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("catching up: partition %d counted up to offset ", d.CatchingUp[0].Partition); !strings.Contains(out.String(), want) ||
			!strings.Contains(out.String(), " records so far") {
			t.Fatalf("no %q in\n%s", want, out.String())
		}
	}
	t.Logf("caught up after %d partial counts", partial)
	want := api.DLQCounts{Records: n, ByReason: map[string]int64{"invalid": n / 5, "not_json": n - n/5},
		BySource: map[string]int64{"marriage": n / 5, "tax": n - n/5}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("caught up: %+v, want %+v", d, want)
	}
	if c.read != n {
		t.Errorf("read %d records to count %d: a call reread what an earlier one counted", c.read, n)
	}

	// The next call reads only what was added since.
	produceAll(t, m.Brokers(), []kafka.Message{dlqMsg(n, "invalid", schemas.Housing), dlqMsg(n+1, "invalid", schemas.Housing)})
	d = count(5 * time.Second)
	if c.read != n+2 || d.Records != n+2 || d.BySource["housing"] != 2 || d.ByReason["invalid"] != n/5+2 || len(d.CatchingUp) > 0 {
		t.Errorf("after 2 more: read %d, %+v", c.read, d)
	}
}

// TestStatusLostToRetention: records a source topic's retention deleted
// before the hub read them are events never applied; the status answer
// counts them and the screen says so, loudly, when there are any. They
// were once counted (Counts.Deleted) but left out of both.
func TestStatusLostToRetention(t *testing.T) {
	const lost = "LOST to retention: 500 records deleted before the hub read them"
	tests := []struct {
		name     string
		counts   ingest.Counts
		wantJSON string
		wantLine bool
	}{
		{"none lost", ingest.Counts{Consumed: 10, Applied: 10}, `"lost_to_retention":0`, false},
		{"500 lost", ingest.Counts{Consumed: 10, Applied: 10, Deleted: 500}, `"lost_to_retention":500`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ingestCounts(tc.counts)
			js, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(js), tc.wantJSON) {
				t.Errorf("no %s in %s", tc.wantJSON, js)
			}
			var out bytes.Buffer
			st := api.Status{Store: api.StoreStatus{OK: true}, Ingest: &api.IngestStatus{Group: "pophub", Lag: []api.PartitionLag{}, Counts: &c}}
			if err := renderStatus(&out, "http://hub", st); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(out.String(), "LOST to retention"); got != tc.wantLine {
				t.Errorf("retention line shown: %v, want %v:\n%s", got, tc.wantLine, out.String())
			}
			if tc.wantLine && !strings.Contains(out.String(), lost) {
				t.Errorf("no %q in\n%s", lost, out.String())
			}
		})
	}
}

// TestStatusAbortedTransactions: abort markers read on the source topics
// mean records of aborted transactions were applied; the status answer
// counts them and the screen says so when there are any.
func TestStatusAbortedTransactions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		counts   ingest.Counts
		wantJSON string
		wantLine string
	}{
		{"commits only", ingest.Counts{Consumed: 10, Applied: 10, Skipped: 3}, `"aborted_transactions":0`, ""},
		{"one aborted", ingest.Counts{Consumed: 10, Applied: 10, Skipped: 3, Aborted: 1}, `"aborted_transactions":1`,
			"ABORTED transactions: 1 on the source topics, their records applied all the same"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ingestCounts(tc.counts)
			js, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(js), tc.wantJSON) {
				t.Errorf("no %s in %s", tc.wantJSON, js)
			}
			var out bytes.Buffer
			st := api.Status{Store: api.StoreStatus{OK: true}, Ingest: &api.IngestStatus{Group: "pophub", Lag: []api.PartitionLag{}, Counts: &c}}
			if err := renderStatus(&out, "http://hub", st); err != nil {
				t.Fatal(err)
			}
			shown := strings.Contains(out.String(), "ABORTED")
			if shown != (tc.wantLine != "") || !strings.Contains(out.String(), tc.wantLine) {
				t.Errorf("want line %q (none when empty), got:\n%s", tc.wantLine, out.String())
			}
		})
	}
}

// TestStatusSubscriberBehind: a subscriber filtered to one region that has
// acknowledged every message of its region is not behind, however many
// messages of other regions came after: its ack floor stays at its last
// matching message, so "last seq − ack floor" once showed it hundreds
// behind. The figure is shown for unfiltered subscribers only; PENDING and
// ACK PENDING are every subscriber's backlog.
func TestStatusSubscriberBehind(t *testing.T) {
	n := testenv.NATS(t, embedded.NATSConfig{})
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamName, Subjects: []string{"pop.>"}})
	if err != nil {
		t.Fatalf("creating the stream: %v", err)
	}
	publish := func(subject string, times int) {
		t.Helper()
		for range times {
			if _, err := js.Publish(ctx, subject, []byte("{}")); err != nil {
				t.Fatalf("publishing to %s: %v", subject, err)
			}
		}
	}
	publish("pop.changed.110105.residence", 1)
	for _, cfg := range []jetstream.ConsumerConfig{
		{Durable: "si-beijing", FilterSubject: "pop.changed.110105.>", AckPolicy: jetstream.AckExplicitPolicy},
		{Durable: "audit", AckPolicy: jetstream.AckExplicitPolicy},
	} {
		if _, err := st.CreateOrUpdateConsumer(ctx, cfg); err != nil {
			t.Fatalf("creating consumer %s: %v", cfg.Durable, err)
		}
	}
	publish("pop.changed.310101.residence", 500)
	for _, name := range []string{"si-beijing", "audit"} {
		cons, err := st.Consumer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetching for %s: %v", name, err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("acknowledging for %s: %v", name, err)
			}
		}
	}

	info, err := streamInfo(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if info.Consumers, err = streamConsumers(ctx, js); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := renderStatus(&out, "http://hub", api.Status{Store: api.StoreStatus{OK: true}, Stream: &info}); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	tests := []struct {
		name string
		want []string // PENDING, ACK PENDING, REDELIVERED, ACK FLOOR, BEHIND LAST SEQ
	}{
		{"si-beijing", []string{"0", "0", "0", "1", "-"}},
		{"audit", []string{"500", "0", "0", "1", "500"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for line := range strings.SplitSeq(out.String(), "\n") {
				if f := strings.Fields(line); len(f) >= 6 && f[0] == tc.name {
					if got := f[1:6]; !slices.Equal(got, tc.want) {
						t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
					}
					return
				}
			}
			t.Errorf("no row for %s in\n%s", tc.name, out.String())
		})
	}
}

// TestStatusStoreTotalsUnknown: a store whose totals could not be read is
// shown with "?" and says so; it once showed "persons 0  changes 0
// outbox pending 0", an empty store with nothing waiting, in the middle of
// an outage. A failing store that could still count (memdb, from memory)
// shows its totals beside the failure. Totals PostgreSQL estimated are
// marked with ~. A household index still being built says how far it got,
// and a failover of the database what to run.
func TestStatusStoreTotalsUnknown(t *testing.T) {
	persons, changes, pending := int64(5000), int64(119746), int64(0)
	tests := []struct {
		name  string
		store api.StoreStatus
		want  string
	}{
		{"unreadable", api.StoreStatus{Error: "pinging PostgreSQL: unavailable"},
			"store    FAILING: pinging PostgreSQL: unavailable\n         persons ?  changes ?  outbox pending ? (store unreadable)\n"},
		{"failing, counted", api.StoreStatus{Error: "write-ahead log failed", Persons: &persons, Changes: &changes, OutboxPending: &pending},
			"store    FAILING: write-ahead log failed\n         persons 5,000  changes 119,746  outbox pending 0\n"},
		{"ok", api.StoreStatus{OK: true, Persons: &persons, Changes: &changes, OutboxPending: &pending},
			"store    ok\n         persons 5,000  changes 119,746  outbox pending 0\n"},
		{"estimated", api.StoreStatus{OK: true, Persons: &persons, Changes: &changes, OutboxPending: &pending, Estimated: []string{"persons", "changes"}},
			"store    ok\n         persons ~5,000  changes ~119,746  outbox pending 0\n"},
		{"changes estimated, persons counted", api.StoreStatus{OK: true, Persons: &persons, Changes: &changes, OutboxPending: &pending, Estimated: []string{"changes"}},
			"store    ok\n         persons 5,000  changes ~119,746  outbox pending 0\n"},
		{"failover", api.StoreStatus{OK: true, Persons: &persons, Changes: &changes, OutboxPending: &pending,
			Failover: &api.FailoverStatus{FromTimeline: 1, ToTimeline: 2, At: time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC)}},
			"outbox pending 0\n         FAILOVER at 2026-12-07 01:02:03Z (timeline 1 -> 2): events of transactions the new server lacks may be lost; run pophub reconcile\n"},
		{"household index building", api.StoreStatus{OK: true, Persons: &persons, Changes: &changes, OutboxPending: &pending, Estimated: []string{"persons"},
			HouseholdIndex: &api.IndexBuild{PersonsIndexed: 1500}},
			"outbox pending 0\n         household index building: 1,500 of ~5,000 persons indexed; household lookups answer 503 until it is done\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := renderStatus(&out, "http://hub", api.Status{Store: tc.store}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("no %q in\n%s", tc.want, out.String())
			}
		})
	}
}

// TestStatusNamesRelayHolder: on a shared store the status says which
// instance publishes the notifications, and says loudly when none does.
func TestStatusNamesRelayHolder(t *testing.T) {
	tests := []struct {
		name  string
		relay *api.RelayStatus
		want  string
	}{
		{"this instance", &api.RelayStatus{Holder: "pophub (hub-1 pid 812 #3f9a)", ThisInstance: true}, "         relay    pophub (hub-1 pid 812 #3f9a), this instance\n"},
		{"another instance", &api.RelayStatus{Holder: "pophub (hub-2 pid 97 #01c2)"}, "         relay    pophub (hub-2 pid 97 #01c2), another instance\n"},
		{"none", &api.RelayStatus{}, "         relay    NO INSTANCE holds the relay lease: notifications wait in the outbox\n"},
		{"a store of one instance (memdb)", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := renderStatus(&out, "http://hub", api.Status{Store: api.StoreStatus{OK: true, Relay: tc.relay}}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.want) || (tc.want == "" && strings.Contains(out.String(), "relay")) {
				t.Errorf("want %q in\n%s", tc.want, out.String())
			}
		})
	}
}

// TestStatusStreamNATSDisconnected: while the hub is cut off from NATS
// the stream and subscriber lines say so at once; they once waited out
// the probe and said "context deadline exceeded".
func TestStatusStreamNATSDisconnected(t *testing.T) {
	n := testenv.NATS(t, embedded.NATSConfig{})
	nc, err := nats.Connect(n.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	for deadline := time.Now().Add(10 * time.Second); nc.IsConnected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still connected 10 s after the server stopped")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, ierr := streamInfo(ctx, js)
	_, cerr := streamConsumers(ctx, js)
	for what, err := range map[string]error{"stream": ierr, "consumers": cerr} {
		if err == nil || !strings.Contains(err.Error(), "not connected to NATS") {
			t.Errorf("%s while disconnected: %v; want it to say the hub is not connected to NATS", what, err)
		}
	}
	if ctx.Err() != nil {
		t.Error("the probes waited for their timeout")
	}
}
