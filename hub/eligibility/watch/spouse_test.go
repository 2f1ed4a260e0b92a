package watch_test

import (
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestSpouseChangeReDecidesApplicant: under a policy that reads the
// family (Chifeng's family reunion joins a spouse registered at a town
// address), the spouse's move re-decides the applicant, who is announced
// when it makes them eligible (README: the watcher "announces newly
// eligible persons"). The applicant's own records do not change.
func TestSpouseChangeReDecidesApplicant(t *testing.T) {
	const daoli, chifengTown, chifengVillage = "230102001001", "150402001001", "150421100200"
	tests := []struct {
		name     string
		movesTo  string
		announce bool
	}{
		{"spouse moves to a town address in Chifeng", chifengTown, true},
		{"spouse moves to a village in Chifeng", chifengVillage, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2025, 4, 10, 12, 0, 0, 0, china)
			r := newRig(t, now, "chifeng/central")
			c := eligibility.Case{
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: daoli},
				Family: []eligibility.CasePerson{{BirthDate: "1989-01-01", Hukou: daoli, MarriedOn: "2020-01-01"}},
				Events: []eligibility.CaseEvent{{Type: schemas.RentalRegistered, Time: "2023-01-01",
					Data: map[string]any{"lease_id": "L1", "address_code": chifengTown, "start": "2023-01-01"}}},
			}
			ids, in, err := c.Inputs()
			if err != nil {
				t.Fatal(err)
			}
			r.apply(t, in)
			r.expect(t, nil, 1500*time.Millisecond) // the spouse is registered in Harbin: nobody to join

			r.apply(t, []hub.Input{storetest.Event(t, schemas.HukouMigrated, ids[1], "ps-m1", time.Date(2025, 4, 10, 9, 0, 0, 0, china),
				schemas.HukouMigratedData{FromAddressCode: daoli, ToAddressCode: tt.movesTo, Reason: "family"})})
			if !tt.announce {
				r.expect(t, nil, 1500*time.Millisecond)
				return
			}
			r.expect(t, &schemas.EligibilityNotification{CitizenID: ids[0], Policy: "chifeng/central", RegionCode: "150402"}, 10*time.Second)
			r.expect(t, nil, 1500*time.Millisecond) // the spouse, not eligible, is not announced
		})
	}
}

// TestSpouseMarriageReDecidesApplicant: a family reunion joins a spouse
// whose own record shows the marriage too, and the marriage register
// sends one event per spouse, late at times. The spouse's own marriage
// event arriving after their move re-decides the applicant, who is
// announced then; without it the applicant is not announced. A divorce
// or a marriage to another re-decides the former spouse, whose record
// still names the spouse, so that a remarriage announces them again.
func TestSpouseMarriageReDecidesApplicant(t *testing.T) {
	const daoli, chifengTown = "230102001001", "150402001001"
	today, tomorrow := time.Date(2025, 4, 10, 12, 0, 0, 0, china), time.Date(2025, 4, 11, 12, 0, 0, 0, china)
	// step is what arrives on a day, and whether the applicant is announced.
	type step struct {
		day      time.Time
		in       func(t *testing.T, a, b citizenid.ID) []hub.Input
		announce bool
	}
	moves := func(t *testing.T, _, b citizenid.ID) []hub.Input {
		return []hub.Input{storetest.Event(t, schemas.HukouMigrated, b, "ps-m1", time.Date(2025, 4, 10, 9, 0, 0, 0, china),
			schemas.HukouMigratedData{FromAddressCode: daoli, ToAddressCode: chifengTown, Reason: "family"})}
	}
	marries := func(t *testing.T, a, b citizenid.ID) []hub.Input {
		return []hub.Input{storetest.Event(t, schemas.MarriageRegistered, b, "mz-late", time.Date(2020, 1, 1, 9, 0, 0, 0, china),
			schemas.MarriageRegisteredData{SpouseID: a})}
	}
	divorces := func(t *testing.T, a, b citizenid.ID) []hub.Input {
		return []hub.Input{storetest.Event(t, schemas.MarriageDivorced, b, "mz-d1", time.Date(2025, 4, 10, 10, 0, 0, 0, china),
			schemas.MarriageDivorcedData{SpouseID: a})}
	}
	marriesAnother := func(t *testing.T, _, b citizenid.ID) []hub.Input {
		return []hub.Input{storetest.Event(t, schemas.MarriageRegistered, b, "mz-o1", time.Date(2025, 4, 10, 10, 0, 0, 0, china),
			schemas.MarriageRegisteredData{SpouseID: storetest.ValidID(1_000_000)})}
	}
	remarries := func(t *testing.T, a, b citizenid.ID) []hub.Input {
		return []hub.Input{storetest.Event(t, schemas.MarriageRegistered, b, "mz-m2", time.Date(2025, 4, 11, 9, 0, 0, 0, china),
			schemas.MarriageRegisteredData{SpouseID: a})}
	}
	tests := []struct {
		name string
		// spouseMarried is whether the spouse's own marriage event is
		// among the first events.
		spouseMarried bool
		steps         []step
	}{
		{"the spouse's own marriage event arrives after their move", false,
			[]step{{today, moves, false}, {today, marries, true}}},
		{"the spouse's own marriage event never arrives", false,
			[]step{{today, moves, false}}},
		{"the spouse divorces the applicant, then remarries them", true,
			[]step{{today, moves, true}, {today, divorces, false}, {tomorrow, remarries, true}}},
		{"the spouse marries another, then the applicant again", true,
			[]step{{today, moves, true}, {today, marriesAnother, false}, {tomorrow, remarries, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, today, "chifeng/central")
			c := eligibility.Case{
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: daoli},
				Family: []eligibility.CasePerson{{BirthDate: "1989-01-01", Hukou: daoli, MarriedOn: "2020-01-01"}},
			}
			ids, in, err := c.Inputs()
			if err != nil {
				t.Fatal(err)
			}
			a, b := ids[0], ids[1]
			in = slices.DeleteFunc(in, func(x hub.Input) bool {
				return !tt.spouseMarried && x.Event.Type == schemas.MarriageRegistered && x.Event.Subject == b
			})
			r.apply(t, in)
			r.expect(t, nil, 1500*time.Millisecond) // the spouse is registered in Harbin: nobody to join
			for _, s := range tt.steps {
				r.now.Store(&s.day)
				r.apply(t, s.in(t, a, b))
				if !s.announce {
					r.expect(t, nil, 1500*time.Millisecond)
					continue
				}
				// R is the place itself: the couple's home is not on record.
				r.expect(t, &schemas.EligibilityNotification{CitizenID: a, Policy: "chifeng/central", RegionCode: "150400"}, 10*time.Second)
			}
		})
	}
}

// TestChangeStampedAheadReDecidedOnItsDay: the marriage register's copy
// for one spouse carries the office's wall-clock time written as UTC
// (16:30Z, 00:30 on the next China day), within the clock skew the hub
// accepts, and both copies arrive on the wedding day. Decided as of the
// end of that day the applicant is not yet married by both records, and
// no event will come when the next day does: the watcher decides the
// applicant again on the day of the change it left out, and announces
// them then.
func TestChangeStampedAheadReDecidedOnItsDay(t *testing.T) {
	const daoli, chifengTown = "230102001001", "150402001001"
	weddingDay, nextDay := time.Date(2025, 4, 10, 17, 0, 0, 0, china), time.Date(2025, 4, 11, 12, 0, 0, 0, china)
	onTime, inUTC := time.Date(2025, 4, 10, 16, 30, 0, 0, china), time.Date(2025, 4, 10, 16, 30, 0, 0, time.UTC)
	tests := []struct {
		name string
		// mine and theirs stamp the applicant's and the spouse's copies.
		mine, theirs time.Time
		// announcedOn is the day the applicant is announced.
		announcedOn time.Time
	}{
		{"both copies stamped on the wedding day", onTime, onTime, weddingDay},
		{"the applicant's copy stamped on the next China day", inUTC, onTime, nextDay},
		{"the spouse's copy stamped on the next China day", onTime, inUTC, nextDay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, weddingDay, "chifeng/central")
			c := eligibility.Case{
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: daoli},
				Family: []eligibility.CasePerson{{BirthDate: "1989-01-01", Hukou: chifengTown}},
			}
			ids, in, err := c.Inputs()
			if err != nil {
				t.Fatal(err)
			}
			a, b := ids[0], ids[1]
			r.apply(t, in)
			r.expect(t, nil, 1500*time.Millisecond) // not married: nobody to join
			r.apply(t, []hub.Input{
				storetest.Event(t, schemas.MarriageRegistered, a, "mz-m1", tt.mine, schemas.MarriageRegisteredData{SpouseID: b}),
				storetest.Event(t, schemas.MarriageRegistered, b, "mz-m2", tt.theirs, schemas.MarriageRegisteredData{SpouseID: a}),
			})
			want := &schemas.EligibilityNotification{CitizenID: a, Policy: "chifeng/central", RegionCode: "150400"}
			if tt.announcedOn.Equal(nextDay) {
				r.expect(t, nil, 1500*time.Millisecond)
				r.now.Store(&nextDay)
			}
			r.expect(t, want, 10*time.Second)
			r.expect(t, nil, 1500*time.Millisecond) // once
		})
	}
}
