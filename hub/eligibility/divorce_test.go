package eligibility_test

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

// TestDivorceEndsOnlyTheMarriageItNames: as in the golden record, a
// divorce ends the marriage to the spouse it names when that marriage is
// the latest; one naming a former spouse leaves the current marriage.
// The spouse of a day is the one the facts cite and the family lists, and
// on a day after every event it is the record's.
func TestDivorceEndsOnlyTheMarriageItNames(t *testing.T) {
	const daoli = "230102001001"
	me, sp, ex := storetest.ValidID(31), storetest.ValidID(32), storetest.ValidID(33)
	register := func(who citizenid.ID, eid, addr string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, who, eid, on(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: addr, HouseholdID: eid, Reason: "birth"})
	}
	// The marriage register sends each event for both spouses, and a
	// spouse counts when their own record shows the marriage too.
	marry := func(eid string, at time.Time, spouse citizenid.ID) []hub.Input {
		return []hub.Input{
			storetest.Event(t, schemas.MarriageRegistered, me, eid, at, schemas.MarriageRegisteredData{SpouseID: spouse}),
			storetest.Event(t, schemas.MarriageRegistered, spouse, eid+"s", at, schemas.MarriageRegisteredData{SpouseID: me}),
		}
	}
	divorce := func(eid string, at time.Time, spouse citizenid.ID) []hub.Input {
		return []hub.Input{
			storetest.Event(t, schemas.MarriageDivorced, me, eid, at, schemas.MarriageDivorcedData{SpouseID: spouse}),
			storetest.Event(t, schemas.MarriageDivorced, spouse, eid+"s", at, schemas.MarriageDivorcedData{SpouseID: me}),
		}
	}
	base := []hub.Input{register(me, "ps-r31", daoli), register(sp, "ps-r32", chifengAddr), register(ex, "ps-r33", daoli)}
	// married is the marriage event family_reunion cites by day, "" when
	// the person is not married that day.
	tests := []struct {
		name    string
		in      []hub.Input
		married map[string]string
	}{
		{"a divorce naming a former spouse leaves the marriage",
			slices.Concat(marry("mz-m1", on(2015, 1, 1), ex), marry("mz-m2", on(2023, 1, 1), sp), divorce("mz-d1", on(2024, 3, 1), ex)),
			map[string]string{"2024-02-01": "mz-m2", "2024-07-01": "mz-m2"}},
		{"a divorce naming the spouse ends the marriage",
			slices.Concat(marry("mz-m2", on(2023, 1, 1), sp), divorce("mz-d2", on(2024, 3, 1), sp)),
			map[string]string{"2024-02-01": "mz-m2", "2024-07-01": ""}},
		{"a former spouse's divorce, then the spouse's",
			slices.Concat(marry("mz-m1", on(2015, 1, 1), ex), marry("mz-m2", on(2023, 1, 1), sp),
				divorce("mz-d1", on(2024, 3, 1), ex), divorce("mz-d2", on(2024, 5, 1), sp)),
			map[string]string{"2024-04-01": "mz-m2", "2024-07-01": ""}},
		{"a former spouse's divorce after the spouse's",
			slices.Concat(marry("mz-m1", on(2015, 1, 1), ex), marry("mz-m2", on(2023, 1, 1), sp),
				divorce("mz-d2", on(2024, 3, 1), sp), divorce("mz-d1", on(2024, 5, 1), ex)),
			map[string]string{"2024-02-01": "mz-m2", "2024-04-01": "", "2024-07-01": ""}},
		{"divorced from the former spouse before the marriage",
			slices.Concat(marry("mz-m1", on(2015, 1, 1), ex), divorce("mz-d1", on(2020, 3, 1), ex), marry("mz-m2", on(2023, 1, 1), sp)),
			map[string]string{"2021-07-01": "", "2024-07-01": "mz-m2"}},
	}
	p := policy(t, "chifeng/central")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subj := subjects(t, append(append([]hub.Input(nil), base...), tt.in...))
			rec := subj[me].Record
			for day, want := range tt.married {
				d := eligibility.Evaluate(p, subj[me], []eligibility.Subject{subj[sp], subj[ex]}, asOfDay(t, day))
				var got string
				for _, c := range d.Conditions {
					if c.ID == "family_reunion" && len(c.Facts) > 0 {
						got = c.Facts[0].EventID
					}
				}
				if got != want {
					t.Errorf("as of %s: family_reunion cites marriage %q, want %q", day, got, want)
				}
				var spouses []citizenid.ID
				for _, m := range d.Family {
					if m.Relation == "spouse" {
						spouses = append(spouses, m.CitizenID)
					}
				}
				if wantSpouse := want != ""; wantSpouse != (len(spouses) == 1 && spouses[0] == sp) || len(spouses) > 1 {
					t.Errorf("as of %s: spouses listed %v, want sp %v", day, spouses, wantSpouse)
				}
				if day != "2024-07-01" {
					continue
				}
				// After every event: the record's marital state.
				if recMarried := rec.Marital != nil && rec.Marital.SpouseID == sp; recMarried != (want != "") {
					t.Errorf("the record shows %+v, eligibility married %v", rec.Marital, want != "")
				}
			}
		})
	}
}
