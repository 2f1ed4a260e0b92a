package eligibility_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// subjectReader answers Decide from merged subjects, as a store would,
// and records whose histories it was asked for.
type subjectReader struct {
	subj      map[citizenid.ID]eligibility.Subject
	histories []citizenid.ID
}

func (r *subjectReader) Person(_ context.Context, id citizenid.ID) (hub.Record, error) {
	s, ok := r.subj[id]
	if !ok {
		return hub.Record{}, fmt.Errorf("reading %v: %w", id, hub.ErrNotFound)
	}
	return s.Record, nil
}

func (r *subjectReader) History(_ context.Context, id citizenid.ID) ([]hub.Change, error) {
	r.histories = append(r.histories, id)
	return r.subj[id].History, nil
}

func (r *subjectReader) Persons(_ context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	var out []hub.Record
	for _, id := range slices.Sorted(maps.Keys(r.subj)) {
		if rec := r.subj[id].Record; rec.Hukou != nil && strings.HasPrefix(rec.Hukou.AddressCode, q.Region) {
			out = append(out, rec)
		}
	}
	return out, "", nil
}

// TestTodayTakesTheSpouseAsOfTheDay: a decision for today (Decide as of
// the end of today) reads the joined spouse's marriage, hukou and status
// from their history as of that instant, as the same day decided later
// does, so that a copy of the marriage stamped on the next China day (the
// register's wall-clock time written as UTC, within the clock skew the hub
// accepts) does not count today and then stop counting once the day is
// past. It reads that history for the spouse alone (the spouse of the
// applicant's marriage as of the day), not for the other members of the
// household. A decision that leaves out such a copy, the applicant's or
// the spouse's, says to decide again on its day (RecheckOn), which no
// new event will prompt.
func TestTodayTakesTheSpouseAsOfTheDay(t *testing.T) {
	const daoli = "230102001001"
	now := time.Now()
	y, m, d := now.In(cst).Date()
	me, sp, child := storetest.ValidID(66), storetest.ValidID(67), storetest.ValidID(68)
	register := func(who citizenid.ID, eid, born, addr, household string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, who, eid, on(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: born, Ethnicity: "01", AddressCode: addr, HouseholdID: household, Reason: "birth"})
	}
	// 16:00 of the China day written as UTC is the next China day's first
	// instant, within the hub's clock skew of now at any time of day (a
	// later hour is not from 16:00Z on, when the China date is the next
	// UTC day).
	today, nextDay := time.Date(y, m, d, 16, 0, 0, 0, cst), time.Date(y, m, d, 16, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		// mine and theirs are when the applicant's and the spouse's copies
		// of the marriage are stamped.
		mine, theirs time.Time
		eligible     bool
		// spouseHistory is whether Decide reads the spouse's history.
		spouseHistory bool
		recheck       bool // on the next China day
	}{
		{"both copies stamped today", today, today, true, true, false},
		{"the spouse's copy stamped 16:00Z, on the next China day", today, nextDay, false, true, true},
		{"the applicant's copy stamped 16:00Z, on the next China day", nextDay, today, false, false, true},
	}
	p := policy(t, "chifeng/central")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subj := subjects(t, []hub.Input{
				register(me, "ps-r66", "1990-01-01", daoli, "H66"),
				register(child, "ps-r68", "2015-01-01", daoli, "H66"),
				register(sp, "ps-r67", "1989-01-01", chifengAddr, "H67"),
				storetest.Event(t, schemas.MarriageRegistered, me, "mz-m66", tt.mine, schemas.MarriageRegisteredData{SpouseID: sp}),
				storetest.Event(t, schemas.MarriageRegistered, sp, "mz-m67", tt.theirs, schemas.MarriageRegisteredData{SpouseID: me}),
			})
			r := &subjectReader{subj: subj}
			asOf := eligibility.EndOfToday(now)
			decided, err := eligibility.Decide(context.Background(), r, p, me, asOf, false)
			if err != nil {
				t.Fatal(err)
			}
			// The same day decided once it is past reads every relative's
			// history (Decide for a past day).
			later := eligibility.Evaluate(p, subj[me], []eligibility.Subject{subj[sp], subj[child]}, asOf)
			for how, d := range map[string]eligibility.Decision{"decided today": decided, "decided later": later} {
				if c, _ := conditionOf(d, "family_reunion"); d.Eligible != tt.eligible || c.Met != tt.eligible {
					t.Errorf("%s: eligible = %v, family_reunion met = %v (missing %q), want %v", how, d.Eligible, c.Met, c.Missing, tt.eligible)
				}
				want := ""
				if tt.recheck {
					want = nextDay.In(cst).Format(time.DateOnly)
				}
				if d.RecheckOn != want {
					t.Errorf("%s: recheck on %q, want %q", how, d.RecheckOn, want)
				}
			}
			want := []citizenid.ID{me}
			if tt.spouseHistory {
				want = append(want, sp)
			}
			if !slices.Equal(r.histories, want) {
				t.Errorf("histories read %v, want %v (the applicant's, and the spouse's of the day)", r.histories, want)
			}
		})
	}
}
