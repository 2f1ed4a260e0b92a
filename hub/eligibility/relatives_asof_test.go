package eligibility_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// subjects merges the inputs as the hub would and returns each person's
// record with their history.
func subjects(t *testing.T, in []hub.Input) map[citizenid.ID]eligibility.Subject {
	t.Helper()
	out := merge.Batch(nil, in, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	subj := map[citizenid.ID]eligibility.Subject{}
	for id, st := range out.States {
		subj[id] = eligibility.Subject{Record: st.Record()}
	}
	for _, e := range out.History {
		s := subj[e.CitizenID]
		s.History = append(s.History, e.Change)
		subj[e.CitizenID] = s
	}
	return subj
}

func policy(t *testing.T, id string) *eligibility.Policy {
	t.Helper()
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := cat.Policy(id)
	if !ok {
		t.Fatalf("no policy %s", id)
	}
	return p
}

func asOfDay(t *testing.T, day string) time.Time {
	t.Helper()
	asOf, err := eligibility.AsOfDay(day)
	if err != nil {
		t.Fatal(err)
	}
	return asOf
}

func on(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 10, 0, 0, 0, cst) }

// TestPastDayTakesMaritalAndHukouOfThatDay: for a past day, the applicant's
// marriage and the spouse's hukou are those of that day, read from the
// history, also when the first such event came after it (README: "for a
// past day … the relatives are those of that day"). Only a history with no
// such event at all leaves the record's own section standing. A first
// event that ends something (a migration, a divorce) says what held
// before it.
func TestPastDayTakesMaritalAndHukouOfThatDay(t *testing.T) {
	const daoli = "230102001001"
	me, sp := storetest.ValidID(21), storetest.ValidID(22)
	register := func(who citizenid.ID, eid string, at time.Time, addr, household, born string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, who, eid, at, schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: born, Ethnicity: "01", AddressCode: addr, HouseholdID: household, Reason: "birth"})
	}
	marry := func(at time.Time) []hub.Input {
		return []hub.Input{
			storetest.Event(t, schemas.MarriageRegistered, me, "mz-m21", at, schemas.MarriageRegisteredData{SpouseID: sp}),
			storetest.Event(t, schemas.MarriageRegistered, sp, "mz-m22", at, schemas.MarriageRegisteredData{SpouseID: me}),
		}
	}
	rent := storetest.Event(t, schemas.RentalRegistered, me, "hs-l21", on(2023, 7, 1), schemas.RentalRegisteredData{
		LeaseID: "L21", AddressCode: chifengAddr, Start: "2023-07-01"})
	tests := []struct {
		name string
		in   []hub.Input
		// met is whether family_reunion holds, by day.
		met map[string]bool
	}{
		{
			name: "marriage registered after the day",
			in: append([]hub.Input{register(me, "ps-r21", on(2010, 1, 1), daoli, "H21", "1990-01-01"),
				register(sp, "ps-r22", on(2010, 1, 1), chifengAddr, "H22", "1989-01-01"), rent}, marry(on(2024, 9, 1))...),
			met: map[string]bool{"2024-07-01": false, "2024-08-31": false, "2024-09-01": true},
		},
		{
			name: "spouse first registered after the day",
			in: append([]hub.Input{register(me, "ps-r21", on(2010, 1, 1), daoli, "H21", "1990-01-01"),
				register(sp, "ps-r22", on(2024, 9, 1), chifengAddr, "H22", "1989-01-01"), rent}, marry(on(2023, 1, 1))...),
			met: map[string]bool{"2024-07-01": false, "2024-09-01": true},
		},
		{
			// The spouse's record predates the hub: its first event moves
			// them away from Chifeng, where they were registered before.
			name: "spouse's first event a migration away",
			in: append([]hub.Input{register(me, "ps-r21", on(2010, 1, 1), daoli, "H21", "1990-01-01"), rent,
				storetest.Event(t, schemas.HukouMigrated, sp, "ps-m22", on(2024, 9, 1), schemas.HukouMigratedData{
					FromAddressCode: chifengAddr, ToAddressCode: daoli, Reason: "family"})}, marry(on(2023, 1, 1))...),
			met: map[string]bool{"2024-07-01": true, "2024-09-01": false},
		},
	}
	p := policy(t, "chifeng/central")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subj := subjects(t, tt.in)
			for day, want := range tt.met {
				d := eligibility.Evaluate(p, subj[me], []eligibility.Subject{subj[sp]}, asOfDay(t, day))
				var got eligibility.ConditionResult
				for _, c := range d.Conditions {
					if c.ID == "family_reunion" {
						got = c
					}
				}
				if got.Met != want {
					t.Errorf("as of %s: family_reunion met = %v, want %v (missing %q, facts %+v)", day, got.Met, want, got.Missing, got.Facts)
				}
				listed := slices.ContainsFunc(d.Family, func(m eligibility.FamilyMember) bool { return m.Relation == "spouse" })
				if married := tt.name != "marriage registered after the day" || day >= "2024-09-01"; listed != married {
					t.Errorf("as of %s: spouse listed = %v, want %v", day, listed, married)
				}
			}
		})
	}
}

// TestPastDayDivorceFirstMeansMarriedBefore: a history whose first
// marital event is a divorce says the person was married, to that spouse,
// before it; so does the spouse's, whose own record must show the
// marriage too.
func TestPastDayDivorceFirstMeansMarriedBefore(t *testing.T) {
	me, sp := storetest.ValidID(23), storetest.ValidID(24)
	in := []hub.Input{
		storetest.Event(t, schemas.HukouRegistered, me, "ps-r23", on(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "230102001001", HouseholdID: "H23", Reason: "birth"}),
		storetest.Event(t, schemas.HukouRegistered, sp, "ps-r24", on(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "张伟", Gender: "1", BirthDate: "1989-01-01", Ethnicity: "01", AddressCode: chifengAddr, HouseholdID: "H24", Reason: "birth"}),
		storetest.Event(t, schemas.RentalRegistered, me, "hs-l23", on(2023, 7, 1), schemas.RentalRegisteredData{
			LeaseID: "L23", AddressCode: chifengAddr, Start: "2023-07-01"}),
		storetest.Event(t, schemas.MarriageDivorced, me, "mz-d23", on(2024, 9, 1), schemas.MarriageDivorcedData{SpouseID: sp}),
		storetest.Event(t, schemas.MarriageDivorced, sp, "mz-d24", on(2024, 9, 1), schemas.MarriageDivorcedData{SpouseID: me}),
	}
	subj := subjects(t, in)
	p := policy(t, "chifeng/central")
	for day, want := range map[string]bool{"2024-07-01": true, "2024-09-01": false} {
		d := eligibility.Evaluate(p, subj[me], []eligibility.Subject{subj[sp]}, asOfDay(t, day))
		for _, c := range d.Conditions {
			if c.ID == "family_reunion" && c.Met != want {
				t.Errorf("as of %s: family_reunion met = %v, want %v (missing %q)", day, c.Met, want, c.Missing)
			}
		}
	}
}

// TestUnmarriedChildrenOfThatDay: a policy admitting unmarried children
// lists a child unmarried on the evaluation day, though married since, and
// not one married by then.
func TestUnmarriedChildrenOfThatDay(t *testing.T) {
	parent, child, other := storetest.ValidID(25), storetest.ValidID(26), storetest.ValidID(27)
	reg := func(who citizenid.ID, eid, born, household string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, who, eid, on(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "李" + eid, Gender: "1", BirthDate: born, Ethnicity: "01", AddressCode: jilinCity, HouseholdID: household, Reason: "birth"})
	}
	in := []hub.Input{
		reg(parent, "r25", "1960-01-01", "H25"), reg(child, "r26", "1990-01-01", "H25"), reg(other, "r27", "1991-01-01", "H27"),
		storetest.Event(t, schemas.MarriageRegistered, child, "mz-m26", on(2024, 9, 1), schemas.MarriageRegisteredData{SpouseID: other}),
		storetest.Event(t, schemas.MarriageRegistered, other, "mz-m27", on(2024, 9, 1), schemas.MarriageRegisteredData{SpouseID: child}),
	}
	subj := subjects(t, in)
	p := policy(t, "jilin/city")
	for day, want := range map[string]bool{"2024-07-01": true, "2024-09-01": false} {
		d := eligibility.Evaluate(p, subj[parent], []eligibility.Subject{subj[child]}, asOfDay(t, day))
		listed := slices.ContainsFunc(d.Family, func(m eligibility.FamilyMember) bool {
			return m.CitizenID == child && strings.Contains(m.Basis, "unmarried")
		})
		if listed != want {
			t.Errorf("as of %s: child listed as unmarried = %v, want %v (family %+v)", day, listed, want, d.Family)
		}
	}
}
