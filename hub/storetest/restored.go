package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// testRestorationAnnouncedWhereTheDeathWas checks that the store's outbox
// carries both status notifications of a hukou restored in another county
// than the one its death was announced in: one where the hukou is now and
// one where the death was, each with its own msg id, so that the relay
// publishes both and the social-insurance bureau holding the death's task
// hears the person is active again.
func testRestorationAnnouncedWhereTheDeathWas(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := ValidID(8_200_001)
	reg := func(addr, reason string) schemas.HukouRegisteredData {
		return schemas.HukouRegisteredData{Name: "王伟", Gender: p.Gender(), BirthDate: p.BirthDate().Format(time.DateOnly),
			Ethnicity: "01", AddressCode: addr, HouseholdID: "HR1", Reason: reason}
	}
	at := func(date string) time.Time {
		d, err := time.ParseInLocation(time.DateOnly, date, cst)
		if err != nil {
			t.Fatal(err)
		}
		return d.Add(9 * time.Hour)
	}
	in := []hub.Input{
		Event(t, schemas.HukouRegistered, p, "restored-1", at("2020-01-01"), reg("230124100013", "birth")),
		Event(t, schemas.HukouCancelled, p, "restored-2", at("2025-03-01"), schemas.HukouCancelledData{Reason: "death"}),
		Event(t, schemas.HukouRegistered, p, "restored-3", at("2025-03-10"), reg("230102001001", "restored")),
	}
	for _, e := range in {
		if _, err := s.Apply(ctx, []hub.Input{e}); err != nil {
			t.Fatal(err)
		}
	}
	var subjects, ids []string
	for _, e := range allPending(t, s, 100) {
		var n schemas.Notification
		if err := schemas.DecodeNotification(e.Body, &n); err != nil {
			t.Fatal(err)
		}
		if n.EventID == "restored-3" && n.Section == string(schemas.SecStatus) {
			subjects, ids = append(subjects, e.Subject), append(ids, e.MsgID)
		}
	}
	want := []string{"pop.changed.23.2301.230102.status", "pop.changed.23.2301.230124.status"}
	if !slices.Equal(subjects, want) || len(ids) != 2 || ids[0] == ids[1] {
		t.Errorf("the restoration's status announced on %v with msg ids %v; want %v, with distinct ids", subjects, ids, want)
	}
}
