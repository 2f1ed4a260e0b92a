package eligibility

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
)

// TestStatusAgreesWithTheCounts compares, over random histories of deaths,
// restorations and cancellations, the status a decision derives as of each
// day (statusAsOf) with the merge's population count (Registrations) and
// today's with the record's status and the event its provenance names,
// and each past day's event with the one a record of the events stamped
// by then names: one rule, read two ways.
func TestStatusAgreesWithTheCounts(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	day := func(n int) string { return base.AddDate(0, 0, n).Format(time.DateOnly) }
	fails := 0
	for iter := 0; iter < 3000 && fails < 5; iter++ {
		var evs []CaseEvent
		n := 1 + r.IntN(5)
		for j := 0; j < n; j++ {
			at := r.IntN(20)
			switch r.IntN(4) {
			case 0, 1:
				date := ""
				switch r.IntN(4) {
				case 0:
					date = day(at - r.IntN(15))
				case 1:
					date = day(at + r.IntN(5))
				case 2:
					date = "2025-02-30"
				}
				evs = append(evs, CaseEvent{Type: schemas.DeathCertified, Time: day(at),
					Data: map[string]any{"date_of_death": date, "certificate_no": fmt.Sprint("D", j)}})
			case 2:
				evs = append(evs, CaseEvent{Type: schemas.HukouRegistered, Time: day(at),
					Data: map[string]any{"name": "x", "gender": "1", "birth_date": "1990-01-01", "ethnicity": "01",
						"address_code": "230102001001", "household_id": "H1", "reason": "restored"}})
			case 3:
				reason := []string{"death", "emigration"}[r.IntN(2)]
				evs = append(evs, CaseEvent{Type: schemas.HukouCancelled, Time: day(at), Data: map[string]any{"reason": reason}})
			}
		}
		c := Case{Name: "diff", AsOf: day(30), Person: CasePerson{BirthDate: "1990-01-01", Hukou: "230102001001"}, Events: evs}
		ids, in, err := c.Inputs()
		if err != nil {
			t.Fatal(err)
		}
		out := merge.Batch(nil, in, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		st := out.States[ids[0]]
		var history []hub.Change
		for _, e := range out.History {
			if e.CitizenID == ids[0] {
				history = append(history, e.Change)
			}
		}
		rec := st.Record()
		ivs := st.Registrations()
		got, restsOn := statusAsOf(&rec, history, time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC))
		var restsOnID, provID string
		if restsOn != nil {
			restsOnID = restsOn.EventID
		}
		if p, ok := rec.Provenance[string(schemas.SecStatus)]; ok {
			provID = p.EventID
		}
		if got != rec.Status || restsOnID != provID {
			fails++
			t.Errorf("today: statusAsOf %s resting on %q, record %s with provenance %q", got, restsOnID, rec.Status, provID)
			for _, e := range evs {
				t.Errorf("  %s %s %v", e.Time, e.Type, e.Data)
			}
		}
		for d := -20; d < 30; d++ {
			ds := day(d)
			counted := false
			for _, iv := range ivs {
				if iv.From <= ds && (iv.To == "" || ds < iv.To) {
					counted = true
				}
			}
			asOf := endOfDay(base.AddDate(0, 0, d))
			status, restsOn := statusAsOf(&rec, history, asOf)
			// The event cited for a past day is the one a record of only
			// the events stamped by then names, when that record has the
			// same status (it does not when the death counts from a date of
			// death a later certificate gave).
			var byDay []hub.Input
			for _, x := range in {
				if !x.Event.Time.After(asOf) {
					byDay = append(byDay, x)
				}
			}
			if then, ok := merge.Batch(nil, byDay, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)).States[ids[0]]; ok {
				recThen := then.Record()
				var restsOnID string
				if restsOn != nil {
					restsOnID = restsOn.EventID
				}
				if recThen.Status == status && restsOnID != recThen.Provenance[string(schemas.SecStatus)].EventID {
					fails++
					t.Errorf("as of %s: status %s resting on %q, the record of that day's events names %q",
						ds, status, restsOnID, recThen.Provenance[string(schemas.SecStatus)].EventID)
					for _, e := range evs {
						t.Errorf("  %s %s %v", e.Time, e.Type, e.Data)
					}
					break
				}
			}
			if counted != (status == hub.StatusActive) {
				fails++
				t.Errorf("as of %s: counted %v, status %s\nevents:", ds, counted, status)
				for _, e := range evs {
					t.Errorf("  %s %s %v", e.Time, e.Type, e.Data["date_of_death"])
				}
				t.Errorf("  intervals %+v", ivs)
				break
			}
		}
	}
}
