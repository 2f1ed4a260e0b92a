package eligibility_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestSpouseOwnRecordShowsTheMarriage: the marriage register sends one
// event per spouse, and either may be late, missing, or followed by a
// divorce or remarriage whose copy for the other never arrived. A family
// reunion joins a spouse, and the family lists one, only when the
// spouse's own record (as of the day decided) names the applicant too;
// otherwise the clause is not met, and its missing text says what the
// spouse's record shows (another spouse's ID masked) and where to confirm.
func TestSpouseOwnRecordShowsTheMarriage(t *testing.T) {
	const daoli = "230102001001"
	me, sp, other := storetest.ValidID(61), storetest.ValidID(62), storetest.ValidID(63)
	register := func(who citizenid.ID, eid, addr, born string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, who, eid, on(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: born, Ethnicity: "01", AddressCode: addr, HouseholdID: eid, Reason: "birth"})
	}
	marry := func(who, spouse citizenid.ID, eid string, y int) hub.Input {
		return storetest.Event(t, schemas.MarriageRegistered, who, eid, on(y, 1, 1), schemas.MarriageRegisteredData{SpouseID: spouse})
	}
	divorce := func(who, spouse citizenid.ID, eid string, y int) hub.Input {
		return storetest.Event(t, schemas.MarriageDivorced, who, eid, on(y, 1, 1), schemas.MarriageDivorcedData{SpouseID: spouse})
	}
	base := []hub.Input{register(me, "ps-r61", daoli, "1990-01-01"), register(sp, "ps-r62", chifengAddr, "1989-01-01"),
		register(other, "ps-r63", daoli, "1991-01-01"), marry(me, sp, "mz-m61", 2020)}
	tests := []struct {
		name string
		in   []hub.Input
		// shows is, by day, what the spouse's record shows instead of the
		// marriage to the applicant; "" when it shows that marriage.
		shows map[string]string
		// cites is the spouse's marital event the decision of the last
		// day cites for what their record shows.
		cites string
	}{
		{"both records show the marriage", []hub.Input{marry(sp, me, "mz-m62", 2020)},
			map[string]string{"2024-07-01": ""}, ""},
		{"the spouse's own marriage event is missing", nil,
			map[string]string{"2024-07-01": "shows no marriage"}, ""},
		{"the spouse's record shows a divorce the applicant's does not",
			[]hub.Input{marry(sp, me, "mz-m62", 2020), divorce(sp, me, "mz-d62", 2023)},
			map[string]string{"2022-07-01": "", "2024-07-01": "shows a divorce"}, "mz-d62"},
		{"the spouse divorced the applicant and married another",
			[]hub.Input{marry(sp, me, "mz-m62", 2020), divorce(sp, me, "mz-d62", 2023), marry(sp, other, "mz-m63", 2024), marry(other, sp, "mz-m64", 2024)},
			map[string]string{"2022-07-01": "", "2023-07-01": "shows a divorce", "2024-07-01": "names " + other.Masked() + " as spouse"}, "mz-m63"},
		{"the spouse's marriage registered after the day", []hub.Input{marry(sp, me, "mz-m62", 2021)},
			map[string]string{"2020-07-01": "shows no marriage", "2024-07-01": ""}, ""},
	}
	p := policy(t, "chifeng/central")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subj := subjects(t, slices.Concat(base, tt.in))
			days := slices.Sorted(maps.Keys(tt.shows))
			for _, day := range days {
				relatives := map[string][]eligibility.Subject{"with histories": {subj[sp], subj[other]}}
				if day == days[len(days)-1] {
					// After every event: the records as they stand, as
					// a decision for today reads them.
					relatives["records only"] = []eligibility.Subject{{Record: subj[sp].Record}, {Record: subj[other].Record}}
				}
				for how, rel := range relatives {
					d := eligibility.Evaluate(p, subj[me], rel, asOfDay(t, day))
					checkSpouseRecord(t, day+", "+how, d, sp, other, tt.shows[day])
					if day != days[len(days)-1] || tt.shows[day] == "" {
						continue
					}
					c, _ := conditionOf(d, "family_reunion")
					if !slices.ContainsFunc(c.Facts, func(f eligibility.Fact) bool {
						return strings.HasPrefix(f.Text, "the spouse's own marriage record ") && f.EventID == tt.cites
					}) {
						t.Errorf("%s, %s: facts %+v, want one citing the spouse's marital event %q", day, how, c.Facts, tt.cites)
					}
				}
			}
		})
	}
}

// checkSpouseRecord tests one decision of TestSpouseOwnRecordShowsTheMarriage.
func checkSpouseRecord(t *testing.T, when string, d eligibility.Decision, sp, other citizenid.ID, shows string) {
	t.Helper()
	c, _ := conditionOf(d, "family_reunion")
	if want := shows == ""; c.Met != want || d.Eligible != want {
		t.Errorf("%s: family_reunion met = %v, eligible = %v, want %v (missing %q)", when, c.Met, d.Eligible, want, c.Missing)
	}
	if shows != "" {
		want := "the spouse's own marriage record does not show the marriage to the applicant (it " + shows + "); confirm with the marriage register"
		if c.Missing != want {
			t.Errorf("%s: missing %q, want %q", when, c.Missing, want)
		}
		if strings.Contains(c.Missing, string(other)) {
			t.Errorf("%s: missing %q shows a citizen ID unmasked", when, c.Missing)
		}
	}
	listed := slices.ContainsFunc(d.Family, func(m eligibility.FamilyMember) bool { return m.CitizenID == sp })
	if listed != (shows == "") {
		t.Errorf("%s: spouse listed = %v, want %v (family %+v)", when, listed, shows == "", d.Family)
	}
}

// conditionOf is the decision's result of clause id.
func conditionOf(d eligibility.Decision, id string) (eligibility.ConditionResult, bool) {
	for _, c := range d.Conditions {
		if c.ID == id {
			return c, true
		}
	}
	return eligibility.ConditionResult{}, false
}

// TestSpouseNotHeldIsListedToConfirm: a spouse of whom the hub holds no
// record (registered elsewhere) is no one a family reunion can join, and
// the family lists them on the applicant's marriage record alone only
// with a basis asking a clerk to confirm it with the marriage register.
func TestSpouseNotHeldIsListedToConfirm(t *testing.T) {
	me, sp := storetest.ValidID(64), storetest.ValidID(65)
	subj := subjects(t, []hub.Input{
		storetest.Event(t, schemas.HukouRegistered, me, "ps-r64", on(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "230102001001", HouseholdID: "H64", Reason: "birth"}),
		storetest.Event(t, schemas.MarriageRegistered, me, "mz-m64", on(2020, 1, 1), schemas.MarriageRegisteredData{SpouseID: sp}),
	})
	d := eligibility.Evaluate(policy(t, "chifeng/central"), subj[me], nil, asOfDay(t, "2024-07-01"))
	if c, _ := conditionOf(d, "family_reunion"); c.Met || !strings.Contains(c.Missing, "the spouse's record (not found)") {
		t.Errorf("family_reunion met = %v, missing %q; want not met, the spouse's record not found", c.Met, c.Missing)
	}
	want := []eligibility.FamilyMember{{CitizenID: sp, Relation: "spouse",
		Basis: "spouse on the applicant's marriage record; the spouse's own record is not held here: confirm with the marriage register"}}
	if !slices.Equal(d.Family, want) {
		t.Errorf("family %+v, want %+v", d.Family, want)
	}
}
