package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestEndToEnd sends every event type through Kafka into the hub and checks
// the golden records, the history and the notifications, on both stores.
func TestEndToEnd(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			m := startHub(t, store)
			notes := collect(t, m.NATSURL())
			msgs := scenario(t)
			produceAll(t, m.Brokers(), msgs)
			waitCaughtUp(t, m, len(msgs))

			want := expected(t, msgs)
			for id, w := range want {
				got, code := getRecord(t, m, id)
				if code != 200 {
					t.Fatalf("GET person %v: HTTP %d", id, code)
				}
				if !reflect.DeepEqual(normal(got), normal(w)) {
					gb, _ := json.Marshal(normal(got))
					wb, _ := json.Marshal(normal(w))
					t.Errorf("person %v:\n got %s\nwant %s", id, gb, wb)
				}
				var hist []hub.Change
				if code := getInto(t, "http://"+m.HTTPAddr()+"/v1/persons/"+string(id)+"/history", &hist); code != 200 {
					t.Fatalf("GET history: HTTP %d", code)
				}
				if int64(len(hist)) != w.Version {
					t.Errorf("person %v: %d history rows, want %d", id, len(hist), w.Version)
				}
				for i, h := range hist {
					if h.Version != int64(i+1) || h.EventID == "" || h.Source == "" {
						t.Errorf("person %v history[%d] = %+v", id, i, h)
					}
				}
			}

			a, c := personID(t, 1), personID(t, 3)
			// Person a: registered in 230102, migrated to 230602.
			// Person c: death certified before the registration; the death
			// is announced in the person's region (and, when it was applied
			// before the registration, first under the unknown region too).
			const unknownDeath = "pop.death.00.0000.000000"
			regionalDeaths := func() (out []schemas.Notification) {
				unknown := map[string]bool{}
				for _, n := range notes.bySubjectPrefix(unknownDeath) {
					unknown[n.ChangeID] = true
				}
				for _, n := range notes.bySubjectPrefix("pop.death.") {
					if !unknown[n.ChangeID] {
						out = append(out, n)
					}
				}
				return out
			}
			waitFor(t, time.Minute, "migration and death notifications", func() bool {
				return len(notes.bySubjectPrefix("pop.migration.")) == 1 && len(regionalDeaths()) == 1
			})
			mig := notes.bySubjectPrefix("pop.migration.23.2301.230102.23.2306.230602")
			if len(mig) != 1 || mig[0].CitizenID != a || mig[0].ToAddressCode != "230602013004" || mig[0].Reason != "employment" {
				t.Errorf("migration notifications = %+v", mig)
			}
			// The death notification carries the date of death.
			deaths := regionalDeaths()
			if len(deaths) != 1 || deaths[0].CitizenID != c || deaths[0].DateOfDeath != "2025-02-28" {
				t.Errorf("death notifications in a region = %+v", deaths)
			}
			if all := notes.bySubjectPrefix("pop.death."); len(all) > 2 {
				t.Errorf("death notifications = %+v, want one in the region and at most one under the unknown region", all)
			}
			// Changes are announced under the person's hukou region at the
			// time they were applied: unknown, Harbin or Daqing, depending
			// on arrival order.
			siNotes := func() (out []schemas.Notification) {
				for _, n := range notes.bySubjectPrefix("pop.changed.") {
					if n.Section == "social_insurance" && n.CitizenID == a {
						out = append(out, n)
					}
				}
				return out
			}
			waitFor(t, time.Minute, "social insurance notifications", func() bool { return len(siNotes()) >= 5 })
			if si := siNotes(); len(si) != 5 {
				t.Errorf("social_insurance change notifications = %d, want one per social_insurance event of person a", len(si))
			}
			// The outbox is drained (waitCaughtUp): the stream holds every
			// notification, but the collector may not have received the last
			// ones yet; the walk's stream sequence is compared with them.
			inStream := streamCount(t, m.NATSURL())
			waitFor(t, time.Minute, "every notification of the stream collected", func() bool {
				n := inStream()
				return n > 0 && int64(len(notes.snapshot())) >= n
			})
			// Every message carries Nats-Msg-Id = change_id, and each change id
			// appears once.
			ids := map[string]bool{}
			for _, msg := range notes.snapshot() {
				var n schemas.Notification
				if err := json.Unmarshal(msg.Data(), &n); err != nil {
					t.Fatalf("notification body: %v", err)
				}
				if msg.Headers().Get("Nats-Msg-Id") != n.ChangeID || n.ChangeID == "" {
					t.Errorf("Nats-Msg-Id %q, change_id %q", msg.Headers().Get("Nats-Msg-Id"), n.ChangeID)
				}
				if ids[n.ChangeID] {
					t.Errorf("change %s notified twice", n.ChangeID)
				}
				ids[n.ChangeID] = true
			}

			// The region walk returns everyone registered in Heilongjiang,
			// stamped with the stream's sequence once the relay has caught up.
			waitFor(t, time.Minute, "relay caught up", func() bool {
				st, err := m.Store.Stats(context.Background())
				return err == nil && st.OutboxPending == 0
			})
			var page struct {
				Persons        []hub.Record `json:"persons"`
				Next           string       `json:"next"`
				StreamSequence uint64       `json:"stream_sequence"`
			}
			if code := getInto(t, "http://"+m.HTTPAddr()+"/v1/persons?region=23&limit=1000", &page); code != 200 {
				t.Fatalf("GET /v1/persons: HTTP %d", code)
			}
			inRegion := 0
			for _, w := range want {
				if w.Hukou != nil && w.Hukou.AddressCode[:2] == "23" {
					inRegion++
				}
			}
			if len(page.Persons) != inRegion || page.Next != "" || page.StreamSequence != uint64(len(ids)) {
				t.Errorf("walk of 23: %d persons (want %d), next %q, stream sequence %d (want %d, one per notification)",
					len(page.Persons), inRegion, page.Next, page.StreamSequence, len(ids))
			}

			// Today's count of Heilongjiang's registered population equals
			// the active persons registered there, and the children add up.
			var counts struct {
				Urban, Rural, Total int64
				Children            []struct{ Total int64 }
			}
			if code := getInto(t, "http://"+m.HTTPAddr()+"/v1/stats/urban-rural?region=23&children=true", &counts); code != 200 {
				t.Fatalf("GET /v1/stats/urban-rural: HTTP %d", code)
			}
			active, sum := int64(0), int64(0)
			for _, w := range want {
				if w.Hukou != nil && w.Hukou.AddressCode[:2] == "23" && w.Status == hub.StatusActive {
					active++
				}
			}
			for _, c := range counts.Children {
				sum += c.Total
			}
			if active == 0 || counts.Total != active || counts.Urban+counts.Rural != counts.Total || sum != counts.Total {
				t.Errorf("Heilongjiang today: %+v, want a total of %d active registered persons, children summing to it", counts, active)
			}

			// Unknown and malformed IDs.
			if _, code := getRecord(t, m, personID(t, 999)); code != 404 {
				t.Errorf("unknown person: HTTP %d, want 404", code)
			}
			if code := getInto(t, "http://"+m.HTTPAddr()+"/v1/persons/230102199001011235", nil); code != 400 {
				t.Errorf("malformed ID: HTTP %d, want 400", code)
			}
		})
	}
}

// TestShuffledAndDuplicated sends the same events in another order, some
// twice, and expects the same golden records.
func TestShuffledAndDuplicated(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			m := startHub(t, store)
			msgs := scenario(t)
			want := expected(t, msgs)
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
			shuffled := append([]kafka.Message(nil), msgs...)
			for i := 0; i < len(msgs)/2; i++ {
				shuffled = append(shuffled, msgs[r.IntN(len(msgs))])
			}
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			// Send in several rounds so that duplicates span batches.
			for i := 0; i < len(shuffled); i += 7 {
				produceAll(t, m.Brokers(), shuffled[i:min(i+7, len(shuffled))])
			}
			waitCaughtUp(t, m, len(shuffled))
			c := m.Consumer.Counts()
			if c.Duplicates != int64(len(shuffled)-len(msgs)) || c.Applied != int64(len(msgs)) {
				t.Errorf("applied %d duplicates %d, want %d and %d", c.Applied, c.Duplicates, len(msgs), len(shuffled)-len(msgs))
			}
			for id, w := range want {
				got, _ := getRecord(t, m, id)
				if !reflect.DeepEqual(normal(got), normal(w)) {
					gb, _ := json.Marshal(normal(got))
					wb, _ := json.Marshal(normal(w))
					t.Errorf("person %v:\n got %s\nwant %s", id, gb, wb)
				}
			}
			rep := assertReconciled(t, m)
			if tot := rep.Total(); tot.Applied != int64(len(msgs)) || tot.Duplicates != int64(len(shuffled)-len(msgs)) {
				t.Errorf("reconciliation: %+v, want %d applied and %d duplicates", tot, len(msgs), len(shuffled)-len(msgs))
			}
		})
	}
}

// TestBadInput sends one record per reject reason between good ones: each
// lands in the DLQ with its reason and origin, and the partition goes on.
func TestBadInput(t *testing.T) {
	m := startHub(t, "memdb")
	good := scenario(t)
	p := personID(t, 1)
	valid := string(p)
	env := func(source, typ, subject, data string) []byte {
		return []byte(`{"specversion":"1.0","id":"bad-` + typ + `","source":"` + source + `","type":"` + typ + `","subject":"` + subject + `","time":"2025-01-01T00:00:00+08:00","data":` + data + `}`)
	}
	wrongCheck := valid[:17] + map[bool]string{true: "0", false: "1"}[valid[17] != '0']
	bad := []struct {
		reason string
		msg    kafka.Message
	}{
		{schemas.ReasonNotJSON, kafka.Message{Topic: schemas.Topic(schemas.Health), Key: []byte(valid), Value: []byte("not json at all")}},
		{schemas.ReasonNotCloudEvent, kafka.Message{Topic: schemas.Topic(schemas.Health), Key: []byte(valid), Value: []byte(`{"specversion":"1.0","id":"x","source":"health","type":"death.certified","subject":"` + valid + `","data":{}}`)}},
		{schemas.ReasonUnknownType, kafka.Message{Topic: schemas.Topic(schemas.Health), Key: []byte(valid), Value: env("health", "health.vaccinated", valid, `{}`)}},
		{schemas.ReasonSourceMismatch, kafka.Message{Topic: schemas.Topic(schemas.Tax), Key: []byte(valid), Value: env("employment", "employment.contract_ended", valid, `{"contract_id":"C9","end":"2025-01-01"}`)}},
		{schemas.ReasonKeyMismatch, kafka.Message{Topic: schemas.Topic(schemas.Employment), Key: []byte(personID(t, 2)), Value: env("employment", "employment.contract_ended", valid, `{"contract_id":"C9","end":"2025-01-01"}`)}},
		{schemas.ReasonInvalidSubject, kafka.Message{Topic: schemas.Topic(schemas.Employment), Key: []byte(wrongCheck), Value: env("employment", "employment.contract_ended", wrongCheck, `{"contract_id":"C9","end":"2025-01-01"}`)}},
		{schemas.ReasonInvalidData, kafka.Message{Topic: schemas.Topic(schemas.Employment), Key: []byte(valid), Value: env("employment", "employment.contract_ended", valid, `{"contract_id":"C9","end":"2025-13-01"}`)}},
		{schemas.ReasonUnknownAddressCode, kafka.Message{Topic: schemas.Topic(schemas.Housing), Key: []byte(valid), Value: env("housing", "housing.rental_registered", valid, `{"lease_id":"L9","address_code":"230102001999","start":"2025-01-01"}`)}},
	}
	var all []kafka.Message
	for i, b := range bad {
		all = append(all, b.msg, good[i])
	}
	all = append(all, good[len(bad):]...)
	produceAll(t, m.Brokers(), all)
	waitCaughtUp(t, m, len(all))

	c := m.Consumer.Counts()
	for _, b := range bad {
		if c.Rejected[b.reason] != 1 {
			t.Errorf("rejected[%s] = %d, want 1", b.reason, c.Rejected[b.reason])
		}
	}
	if c.Applied != int64(len(good)) {
		t.Errorf("applied %d, want %d: bad records stopped good ones", c.Applied, len(good))
	}

	// Read the DLQ back.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: m.Brokers(), GroupID: "dlq-reader", Topic: schemas.DLQTopic, StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: time.Second})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := map[string]kafka.Message{}
	for len(got) < len(bad) {
		msg, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading DLQ after %d records: %v", len(got), err)
		}
		h := map[string]string{}
		for _, x := range msg.Headers {
			h[x.Key] = string(x.Value)
		}
		got[h["pophub-reason"]] = msg
		if h["pophub-topic"] == "" || h["pophub-partition"] == "" || h["pophub-offset"] == "" {
			t.Errorf("DLQ record lacks origin headers: %v", h)
		}
		if _, err := strconv.Atoi(h["pophub-offset"]); err != nil {
			t.Errorf("pophub-offset %q", h["pophub-offset"])
		}
	}
	for _, b := range bad {
		msg, ok := got[b.reason]
		if !ok {
			t.Errorf("no DLQ record with reason %s", b.reason)
			continue
		}
		if string(msg.Value) != string(b.msg.Value) || string(msg.Key) != string(b.msg.Key) {
			t.Errorf("%s: DLQ record changed the original key or value", b.reason)
		}
	}
	if tot := assertReconciled(t, m).Total(); tot.Rejected != int64(len(bad)) || tot.Applied != int64(len(good)) {
		t.Errorf("reconciliation: %+v, want %d applied and %d rejected", tot, len(good), len(bad))
	}
}
