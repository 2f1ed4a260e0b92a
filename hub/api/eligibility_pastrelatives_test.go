package api_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestEligibilityPastDayRelativesOfThatDay: for a past as_of the spouse is
// the one married then, with the hukou of then (README: "for a past day …
// the relatives are those of that day"): a marriage registered, or a
// spouse first registered, after as_of does not make the family reunion
// hold on it.
func TestEligibilityPastDayRelativesOfThatDay(t *testing.T) {
	const daoli, chifeng = "230102001001", "150402001001"
	me, sp := storetest.ValidID(31), storetest.ValidID(32)
	register := func(who citizenid.ID, eid string, at time.Time, addr, household string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, who, eid, at, schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: addr, HouseholdID: household, Reason: "birth"})
	}
	marriage := func(at time.Time) []hub.Input {
		return []hub.Input{
			storetest.Event(t, schemas.MarriageRegistered, me, "mz-m31", at, schemas.MarriageRegisteredData{SpouseID: sp}),
			storetest.Event(t, schemas.MarriageRegistered, sp, "mz-m32", at, schemas.MarriageRegisteredData{SpouseID: me}),
		}
	}
	rent := storetest.Event(t, schemas.RentalRegistered, me, "hs-l31", cstDay(2023, 7, 1), schemas.RentalRegisteredData{
		LeaseID: "L31", AddressCode: chifeng, Start: "2023-07-01"})
	tests := []struct {
		name string
		in   []hub.Input
	}{
		{"marriage registered after as_of", append([]hub.Input{register(me, "ps-r31", cstDay(2010, 1, 1), daoli, "H31"),
			register(sp, "ps-r32", cstDay(2010, 1, 1), chifeng, "H32"), rent}, marriage(cstDay(2024, 9, 1))...)},
		{"spouse first registered after as_of", append([]hub.Input{register(me, "ps-r31", cstDay(2010, 1, 1), daoli, "H31"),
			register(sp, "ps-r32", cstDay(2024, 9, 1), chifeng, "H32"), rent}, marriage(cstDay(2023, 1, 1))...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMemStore(t)
			applyEach(t, s, tt.in)
			for asOf, want := range map[string]bool{"2024-07-01": false, "2024-09-01": true} {
				d := decide(t, s, me, "chifeng/central", asOf)
				c, _ := condition(d, "family_reunion")
				if c.Met != want || d.Eligible != want {
					t.Errorf("as of %s: family_reunion met = %v, eligible = %v, want %v; missing %q", asOf, c.Met, d.Eligible, want, c.Missing)
				}
			}
		})
	}
}

// TestEligibilityFamilyReunionSaysWhySpouseFails: a spouse on record who
// is deceased or whose hukou is cancelled is reported as such, not as a
// record not found, and the fact cites the certificate or cancellation
// the spouse's status rests on as of the day decided — not the one
// today's status rests on, which may not have happened by that day.
func TestEligibilityFamilyReunionSaysWhySpouseFails(t *testing.T) {
	const daoli, chifeng = "230102001001", "150402001001"
	me, sp := storetest.ValidID(33), storetest.ValidID(34)
	base := []hub.Input{
		storetest.Event(t, schemas.HukouRegistered, me, "ps-r33", cstDay(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: daoli, HouseholdID: "H33", Reason: "birth"}),
		storetest.Event(t, schemas.HukouRegistered, sp, "ps-r34", cstDay(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "张伟", Gender: "1", BirthDate: "1989-01-01", Ethnicity: "01", AddressCode: chifeng, HouseholdID: "H34", Reason: "birth"}),
		storetest.Event(t, schemas.MarriageRegistered, me, "mz-m33", cstDay(2020, 1, 1), schemas.MarriageRegisteredData{SpouseID: sp}),
		storetest.Event(t, schemas.MarriageRegistered, sp, "mz-m34", cstDay(2020, 1, 1), schemas.MarriageRegisteredData{SpouseID: me}),
	}
	cancel := func(id string, y, m, d int, reason string) hub.Input {
		return storetest.Event(t, schemas.HukouCancelled, sp, id, cstDay(y, time.Month(m), d), schemas.HukouCancelledData{Reason: reason})
	}
	restore := func(id string, y, m, d int) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, sp, id, cstDay(y, time.Month(m), d), schemas.HukouRegisteredData{
			Name: "张伟", Gender: "1", BirthDate: "1989-01-01", Ethnicity: "01", AddressCode: chifeng, HouseholdID: "H34", Reason: "restored"})
	}
	tests := []struct {
		name   string
		events []hub.Input
		asOf   string
		want   string
		cites  string // the event the fact about the spouse cites
	}{
		{"deceased today", []hub.Input{certificate(t, sp, "hl-d34", cstDay(2024, 9, 5), "2024-09-01")}, "",
			"the spouse is deceased", "hl-d34"},
		{"deceased by a past day", []hub.Input{certificate(t, sp, "hl-d34", cstDay(2024, 9, 5), "2024-09-01")}, "2024-10-01",
			"the spouse is deceased", "hl-d34"},
		{"cancelled", []hub.Input{cancel("ps-c34", 2024, 9, 5, "emigration")}, "",
			"the spouse's hukou is cancelled", "ps-c34"},
		{"cancelled by a past day, deceased today",
			[]hub.Input{cancel("ps-c34", 2024, 9, 5, "emigration"), certificate(t, sp, "hl-d34", cstDay(2025, 3, 5), "2025-03-01")}, "2024-10-01",
			"the spouse's hukou is cancelled", "ps-c34"},
		{"cancelled by a past day, restored and cancelled again since",
			[]hub.Input{cancel("ps-c34", 2024, 9, 5, "emigration"), restore("ps-r34b", 2025, 1, 5), cancel("ps-c34b", 2025, 6, 5, "other")}, "2024-10-01",
			"the spouse's hukou is cancelled", "ps-c34"},
		{"deceased by a past day, the certificate sent again since",
			[]hub.Input{certificate(t, sp, "hl-d34", cstDay(2024, 9, 5), "2024-09-01"), certificate(t, sp, "hl-d34b", cstDay(2025, 6, 5), "2024-09-01")}, "2024-10-01",
			"the spouse is deceased", "hl-d34"},
		{"cancelled for death by a past day, certified since",
			[]hub.Input{cancel("ps-c34", 2024, 9, 5, "death"), certificate(t, sp, "hl-d34", cstDay(2025, 3, 5), "2024-09-01")}, "2024-10-01",
			"the spouse is deceased", "ps-c34"},
		{"deceased by a past day, restored since (a wrong certificate)",
			[]hub.Input{certificate(t, sp, "hl-d34", cstDay(2024, 9, 5), "2024-09-01"), restore("ps-r34b", 2025, 1, 5)}, "2024-10-01",
			"the spouse is deceased", "hl-d34"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMemStore(t)
			applyEach(t, s, append(append([]hub.Input(nil), base...), tt.events...))
			c, _ := condition(decide(t, s, me, "chifeng/central", tt.asOf), "family_reunion")
			if c.Met || !strings.Contains(c.Missing, tt.want) || strings.Contains(c.Missing, "not found") {
				t.Errorf("family_reunion met = %v, missing %q; want unmet, saying %q", c.Met, c.Missing, tt.want)
			}
			var cited []string
			for _, f := range c.Facts {
				if f.Text == tt.want {
					cited = append(cited, f.EventID)
				}
			}
			if !slices.Equal(cited, []string{tt.cites}) {
				t.Errorf("the fact %q cites %q, want %s", tt.want, cited, tt.cites)
			}
		})
	}
}
