package eligibility_test

import (
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestPastDayHouseholdUnknownFallsBackForRelatives: when the history does
// not say which household someone was in on a past day (their records
// predate the hub and their first event is a migration), the applicant is
// taken to be in today's household, and so must their relatives be;
// otherwise a parent and child who moved together are one family after the
// move and strangers before it. A relative whose earlier household the
// history does say (registered elsewhere, then moved in) stays out of the
// family on a day before they moved in.
func TestPastDayHouseholdUnknownFallsBackForRelatives(t *testing.T) {
	const daoli = "230102001001"
	mk := func(birth string) citizenid.ID {
		first17 := "230102" + birth + "123"
		return citizenid.ID(first17 + string(citizenid.CheckChar(first17)))
	}
	me, kid := mk("19700101"), mk("19990101")
	move := func(id citizenid.ID, eid string) hub.Input {
		return storetest.Event(t, schemas.HukouMigrated, id, eid, on(2024, 9, 1), schemas.HukouMigratedData{
			FromAddressCode: chifengAddr, ToAddressCode: daoli, HouseholdID: "H9", Reason: "family"})
	}
	kidRegisteredElsewhere := storetest.Event(t, schemas.HukouRegistered, kid, "ps-r43", on(2024, 1, 10), schemas.HukouRegisteredData{
		Name: "孩子", Gender: "1", BirthDate: "1999-01-01", Ethnicity: "01", AddressCode: chifengAddr, HouseholdID: "H2"})
	tests := []struct {
		name   string
		in     []hub.Input
		day    string
		family int
	}{
		{"moved together, after the move", []hub.Input{move(me, "ps-m41"), move(kid, "ps-m42")}, "2024-10-01", 1},
		{"moved together, before the move", []hub.Input{move(me, "ps-m41"), move(kid, "ps-m42")}, "2024-07-01", 1},
		{"kid moved in from a known household, after", []hub.Input{move(me, "ps-m41"), kidRegisteredElsewhere, move(kid, "ps-m42")}, "2024-10-01", 1},
		{"kid moved in from a known household, before", []hub.Input{move(me, "ps-m41"), kidRegisteredElsewhere, move(kid, "ps-m42")}, "2024-07-01", 0},
	}
	p := policy(t, "chifeng/central")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subj := subjects(t, tt.in)
			d := eligibility.Evaluate(p, subj[me], []eligibility.Subject{subj[kid]}, asOfDay(t, tt.day))
			if len(d.Family) != tt.family {
				t.Errorf("%s: family %+v, want %d member(s)", tt.day, d.Family, tt.family)
			}
		})
	}
}
