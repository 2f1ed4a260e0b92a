package socialinsurance

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/sdk/sdktest"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// hubSim merges events as the hub does, one batch each in arrival order,
// and keeps the notifications each produced.
type hubSim struct {
	t      *testing.T
	loaded map[citizenid.ID]*merge.State
}

func newHubSim(t *testing.T) *hubSim {
	return &hubSim{t: t, loaded: map[citizenid.ID]*merge.State{}}
}

// apply merges one event and returns its notifications.
func (h *hubSim) apply(in hub.Input) []hub.OutboxEntry {
	out := merge.Batch(h.loaded, []hub.Input{in}, time.Now())
	for id, st := range out.States {
		h.loaded[id] = st
	}
	return out.Outbox
}

func (h *hubSim) record(id citizenid.ID) hub.Record {
	h.t.Helper()
	st, ok := h.loaded[id]
	if !ok {
		h.t.Fatal("the hub holds no record of the person")
	}
	return st.Record()
}

// subjectMatches matches a NATS subject against a filter subject with the
// "*" and ">" wildcards.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(f) == len(s)
}

// subscribed keeps the entries one of filters matches, as the SDK
// delivers them: each once, in order.
func subscribed(filters []sdk.Filter, entries []hub.OutboxEntry) []hub.OutboxEntry {
	var out []hub.OutboxEntry
	for _, e := range entries {
		for _, f := range filters {
			if subjectMatches(f.Subject("pop"), e.Subject) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// deliverEntries hands the bureau the hub's notifications.
func (b bureau) deliverEntries(t *testing.T, entries []hub.OutboxEntry) {
	t.Helper()
	for _, e := range entries {
		var n schemas.Notification
		if err := schemas.DecodeNotification(e.Body, &n); err != nil {
			t.Fatal(err)
		}
		if err := b.handler.Handle(context.Background(), &sdk.Delivery{Notification: n, Subject: e.Subject}); err != nil {
			t.Fatalf("handling %s: %v", e.Subject, err)
		}
	}
}

// rosterPerson is the bureau's roster row of a person.
func (b bureau) rosterPerson(t *testing.T, id citizenid.ID) (address, status string) {
	t.Helper()
	err := b.store.pool.QueryRow(context.Background(), `SELECT address_code, status FROM persons WHERE citizen_id = $1`, string(id)).
		Scan(&address, &status)
	if err != nil {
		t.Fatalf("reading the roster: %v", err)
	}
	return address, status
}

// TestRosterFollowsTheLatestMove: the hub keeps the hukou address of the
// move that took effect last, whatever order the moves arrived in; the
// bureau's roster must say the same, not take the address of the
// notification that arrived last (the highest version).
func TestRosterFollowsTheLatestMove(t *testing.T) {
	const (
		harbinB = "230103001001" // Harbin, Nangang
		daqing  = "230602013001"
	)
	tests := []struct {
		name  string
		moves []string // arrival order
		again []string // notifications redelivered afterwards
	}{
		{name: "in order", moves: []string{"jan", "jun"}},
		{name: "the later move arrives first", moves: []string{"jun", "jan"}},
		{name: "the later move arrives first, redelivered", moves: []string{"jun", "jan"}, again: []string{"jun", "jan"}},
		{name: "within the region, the later move first", moves: []string{"jun-within", "jan"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			harbin := openBureau(t, "2301")
			id := sdktest.CitizenID(950 + i)
			events := map[string]hub.Input{
				"jan": hubEvent(t, schemas.HukouMigrated, id, "jan", "2025-01-15T09:00:00+08:00", schemas.HukouMigratedData{
					FromAddressCode: daoli, ToAddressCode: harbinB, Reason: "housing"}),
				"jun": hubEvent(t, schemas.HukouMigrated, id, "jun", "2025-06-02T09:00:00+08:00", schemas.HukouMigratedData{
					FromAddressCode: harbinB, ToAddressCode: daqing, Reason: "employment"}),
				"jun-within": hubEvent(t, schemas.HukouMigrated, id, "jun-within", "2025-06-02T09:00:00+08:00", schemas.HukouMigratedData{
					FromAddressCode: harbinB, ToAddressCode: nangang, Reason: "housing"}),
			}
			h := newHubSim(t)
			h.apply(hubEvent(t, schemas.HukouRegistered, id, "reg", "2020-01-01T09:00:00+08:00", schemas.HukouRegisteredData{
				Name: "王伟", Gender: "1", BirthDate: "1980-05-05", Ethnicity: "01", AddressCode: daoli, HouseholdID: "H1", Reason: "birth"}))
			sent := map[string][]hub.OutboxEntry{}
			for _, name := range tt.moves {
				sent[name] = subscribed(Filters("2301"), h.apply(events[name]))
				harbin.deliverEntries(t, sent[name])
			}
			for _, name := range tt.again {
				harbin.deliverEntries(t, sent[name])
			}
			want := h.record(id).Hukou.AddressCode
			if got, _ := harbin.rosterPerson(t, id); got != want {
				t.Errorf("roster address %s, the hub's record %s", got, want)
			}
		})
	}
}
