package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// testTimesInChinaStandardTime: one instant sent as UTC ("Z") by one
// department and as +08:00 by another renders the same, in China Standard
// Time with its sub-second digits, in history, in the golden record's
// provenance and in the notifications, whichever store holds it; applied_at
// is UTC to the microsecond. PostgreSQL's timestamptz keeps the instant but
// not the offset, so a store that returns what its database gives back
// answers in another zone than the record it serves beside it.
func testTimesInChinaStandardTime(t *testing.T, s hub.Store) {
	ctx := context.Background()
	const want = "2026-03-01T00:00:00.123456+08:00"
	sent := []struct {
		id   citizenid.ID
		at   time.Time
		text string // the time as the department writes it
	}{
		{ValidID(881), time.Date(2026, 2, 28, 16, 0, 0, 123456000, time.UTC), "2026-02-28T16:00:00.123456Z"},
		{ValidID(882), time.Date(2026, 3, 1, 0, 0, 0, 123456000, time.FixedZone("", 8*3600)), want},
	}
	var in []hub.Input
	for i, p := range sent {
		ev := Event(t, schemas.HukouRegistered, p.id, "cst-"+string(rune('a'+i)), p.at, schemas.HukouRegisteredData{
			Name: "王伟", Gender: p.id.Gender(), BirthDate: p.id.BirthDate().Format(time.DateOnly), Ethnicity: "01",
			AddressCode: "230102001001", HouseholdID: "H1", Reason: "birth"})
		if !bytes.Contains(ev.Raw, []byte(`"time":"`+p.text+`"`)) {
			t.Fatalf("event sent as %s", ev.Raw)
		}
		in = append(in, ev)
	}
	ApplyAll(t, s, in, len(in))

	appliedAt := map[string]bool{} // as history shows it
	for _, p := range sent {
		r, err := s.Person(ctx, p.id)
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.History(ctx, p.id)
		if err != nil || len(h) != 1 {
			t.Fatalf("history %+v, %v", h, err)
		}
		if got := h[0].Time.Format(time.RFC3339Nano); got != want {
			t.Errorf("sent as %s: history time %s, want %s", p.text, got, want)
		}
		if got := r.Provenance["hukou"].Time.Format(time.RFC3339Nano); got != want {
			t.Errorf("sent as %s: provenance time %s, want %s", p.text, got, want)
		}
		rb, _ := json.Marshal(r.Provenance["hukou"])
		hb, _ := json.Marshal(h[0])
		if !bytes.Contains(rb, []byte(`"time":"`+want+`"`)) || !bytes.Contains(hb, []byte(`"time":"`+want+`"`)) {
			t.Errorf("sent as %s: provenance %s, history %s; want both time %s", p.text, rb, hb, want)
		}
		a := h[0].AppliedAt
		if _, off := a.Zone(); a.Location() != time.UTC || off != 0 || !a.Equal(a.Truncate(time.Microsecond)) {
			t.Errorf("sent as %s: applied_at %s (%v), want UTC to the microsecond", p.text, a.Format(time.RFC3339Nano), a.Location())
		}
		appliedAt[a.Format(time.RFC3339Nano)] = true
	}
	pending := allPending(t, s, 100)
	if len(pending) == 0 {
		t.Fatal("no notifications")
	}
	for _, e := range pending {
		var n struct {
			Time      string `json:"time"`
			AppliedAt string `json:"applied_at"`
		}
		if err := json.Unmarshal(e.Body, &n); err != nil {
			t.Fatalf("notification %s: %v", e.MsgID, err)
		}
		if n.Time != want || !appliedAt[n.AppliedAt] {
			t.Errorf("notification %s: time %q applied_at %q; want time %s and applied_at as history has it (%v)",
				e.MsgID, n.Time, n.AppliedAt, want, appliedAt)
		}
	}
}
