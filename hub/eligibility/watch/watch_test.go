package watch_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/eligibility/watch"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/notify"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/jsonschema"
)

var china = time.FixedZone("CST", 8*3600)

// rig is a hub in miniature: a store whose notifications a real relay
// publishes to a real (embedded) NATS server, and a watcher on them.
type rig struct {
	store *memdb.Store
	js    jetstream.JetStream
	relay *notify.Relay
	now   atomic.Pointer[time.Time]
	got   chan jetstream.Msg

	watched []string
	cat     *eligibility.Catalog
	// stop ends the running watcher and waits for it.
	stop func()
	// log is what the watchers wrote.
	log testenv.LogBuffer

	schema *jsonschema.Validator
}

func newRig(t *testing.T, now time.Time, watched ...string) *rig {
	t.Helper()
	return newRigWith(t, now, nil, watched...)
}

// newRigWith is newRig with before run on the server before the watcher
// first starts (to leave what an earlier release wrote).
func newRigWith(t *testing.T, now time.Time, before func(jetstream.JetStream), watched ...string) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := testenv.NATS(t, embedded.NATSConfig{})
	js := testenv.JetStream(t, srv.ClientURL())
	if err := notify.EnsureStream(ctx, js, notify.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	store, err := memdb.Open(ctx, memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	v, err := jsonschema.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{store: store, js: js, relay: notify.New(notify.Config{}, js, store), got: make(chan jetstream.Msg, 16), schema: v, watched: watched}
	r.now.Store(&now)
	go r.relay.Run(ctx)

	if r.cat, err = eligibility.Load(policies.FS()); err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(js)
	}
	r.start(t)
	t.Cleanup(func() { r.stop() })

	// Listen to what the watcher announces, as a subscriber would.
	cons, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamName, jetstream.ConsumerConfig{
		FilterSubject: schemas.EligibilityFilter("", ""), AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { r.got <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return r
}

// start runs a watcher and waits for its consumer, which starts with new
// notifications.
func (r *rig) start(t *testing.T) {
	t.Helper()
	w, err := watch.New(watch.Config{JS: r.js, Store: r.store, Catalog: r.cat, Policies: r.watched,
		Now: func() time.Time { return *r.now.Load() }, Logger: slog.New(slog.NewTextHandler(&r.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	r.stop = func() { cancel(); <-done }
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.js.Consumer(ctx, schemas.StreamName, "pophub-eligibility"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not create its consumer")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ranBefore creates the bucket of last decisions, as it is on a hub whose
// watcher ran before the store's persons came: a watcher opened on it
// does not take them for decisions NATS lost, and decides nobody until a
// notification or a test asks.
func ranBefore(tb testing.TB, js jetstream.JetStream) {
	tb.Helper()
	if _, err := js.CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "pophub_eligibility"}); err != nil {
		tb.Fatal(err)
	}
}

// restart stops the watcher and starts another, as a hub restart would.
func (r *rig) restart(t *testing.T) {
	t.Helper()
	r.stop()
	r.start(t)
}

func (r *rig) apply(t *testing.T, in []hub.Input) {
	t.Helper()
	if _, err := r.store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	r.relay.Wake()
}

// expect waits for one eligibility notification, or for none when want
// is nil, and returns it.
func (r *rig) expect(t *testing.T, want *schemas.EligibilityNotification, wait time.Duration) jetstream.Msg {
	t.Helper()
	select {
	case m := <-r.got:
		var n schemas.EligibilityNotification
		if err := json.Unmarshal(m.Data(), &n); err != nil {
			t.Fatal(err)
		}
		if err := r.schema.ValidateEligibility(m.Data()); err != nil {
			t.Fatalf("notification fails eligibility.schema.json: %v\n%s", err, m.Data())
		}
		if want == nil {
			t.Fatalf("unexpected notification on %s: %+v", m.Subject(), n)
		}
		if n.CitizenID != want.CitizenID || n.Policy != want.Policy || n.RegionCode != want.RegionCode || n.Trigger == "" {
			t.Fatalf("notification %+v, want %+v", n, *want)
		}
		if wantSubj := schemas.EligibilitySubject(want.Policy, want.RegionCode); m.Subject() != wantSubj {
			t.Fatalf("subject %s, want %s", m.Subject(), wantSubj)
		}
		if id := m.Headers().Get(jetstream.MsgIDHeader); id != n.ChangeID {
			t.Fatalf("Nats-Msg-Id %q, change_id %q", id, n.ChangeID)
		}
		return m
	case <-time.After(wait):
		if want != nil {
			t.Fatalf("no eligibility notification for %s within %s", want.CitizenID, wait)
		}
	}
	return nil
}

// daqing builds a Daqing applicant: renting in Ranghulu (230602) since
// rentedSince, a contract since 2024-03, and pension contributions for the
// months given.
func daqing(t *testing.T, rentedSince, months string) (citizenid.ID, []hub.Input) {
	t.Helper()
	return daqingBorn(t, "1990-01-01", rentedSince, months)
}

// daqingBorn is daqing for an applicant born on another day, so that
// several live in one store: their event ids start with the birth date.
func daqingBorn(t *testing.T, born, rentedSince, months string) (citizenid.ID, []hub.Input) {
	t.Helper()
	c := eligibility.Case{
		Person: eligibility.CasePerson{BirthDate: born, Hukou: "231221100200"},
		Events: []eligibility.CaseEvent{
			{Type: schemas.ContractStarted, Time: "2024-03-01", Data: map[string]any{"contract_id": "C1",
				"employer_id": "91230100MA1234567X", "employer_name": "示例公司", "work_region": "230602", "start": "2024-03-01"}},
			{Type: schemas.RentalRegistered, Time: rentedSince, Data: map[string]any{"lease_id": "L1",
				"address_code": "230602013001", "start": rentedSince}},
			{Type: schemas.ContributionRecorded, Months: months, Data: map[string]any{"region": "230604",
				"insurances": []any{"pension"}}},
		},
	}
	ids, in, err := c.Inputs()
	if err != nil {
		t.Fatal(err)
	}
	if born != "1990-01-01" {
		for i := range in {
			in[i].Event.ID = born + "-" + in[i].Event.ID
		}
	}
	return ids[0], in
}

// TestAnnouncedWhenAChangeQualifies: a person one month of insurance short
// is announced when that month's contribution arrives, once; changes to
// sections the policy does not read, and further contributions, announce
// nothing.
func TestAnnouncedWhenAChangeQualifies(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing", "jilin/city")
	id, in := daqing(t, "2023-03-01", "2023-04..2025-02") // 23 months
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)

	_, more := daqing(t, "2023-03-01", "2025-03..2025-03")
	last := more[len(more)-1]
	last.Event.ID = "si-2025-03"
	r.apply(t, []hub.Input{last})
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)

	// Already announced: another contribution says nothing new.
	_, more = daqing(t, "2023-03-01", "2025-04..2025-04")
	next := more[len(more)-1]
	next.Event.ID = "si-2025-04"
	r.apply(t, []hub.Input{next})
	r.expect(t, nil, 1500*time.Millisecond)
}

// TestAnnouncedOnTheQualifyingDay: a person whose rental reaches its two
// years tomorrow is announced when tomorrow comes, without any new event.
func TestAnnouncedOnTheQualifyingDay(t *testing.T) {
	r := newRig(t, time.Date(2025, 3, 1, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqing(t, "2023-03-03", "2023-01..2025-01") // 24 months insured; renting 2 years (every day counted) on 2025-03-02
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)

	tomorrow := time.Date(2025, 3, 2, 12, 0, 0, 0, china)
	r.now.Store(&tomorrow)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)
}
