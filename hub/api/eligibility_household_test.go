package api_test

import (
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// A parent and a minor child, one household (H1) since 2016; in 2026 the
// whole household moves together to a new address and household number
// (H2). Decided as of 2025-06-01, when both were in H1, the child is
// family that may come along; today too.
func TestEligibilityHouseholdMovedTogether(t *testing.T) {
	const from, to = "230102001001", "230103001001"
	s := newMemStore(t)
	me, kid := storetest.ValidID(41), storetest.ValidID(42)
	applyEach(t, s, []hub.Input{
		storetest.Event(t, schemas.HukouRegistered, me, "ps-r41", cstDay(2016, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: "1985-01-01", Ethnicity: "01", AddressCode: from, HouseholdID: "H1", Reason: "birth"}),
		storetest.Event(t, schemas.HukouRegistered, kid, "ps-r42", cstDay(2016, 1, 1), schemas.HukouRegisteredData{
			Name: "王小明", Gender: "1", BirthDate: "2015-01-01", Ethnicity: "01", AddressCode: from, HouseholdID: "H1", Reason: "birth"}),
	}, []hub.Input{
		storetest.Event(t, schemas.HukouMigrated, me, "ps-m41", cstDay(2026, 3, 1), schemas.HukouMigratedData{
			FromAddressCode: from, ToAddressCode: to, HouseholdID: "H2", Reason: "family"}),
		storetest.Event(t, schemas.HukouMigrated, kid, "ps-m42", cstDay(2026, 3, 1), schemas.HukouMigratedData{
			FromAddressCode: from, ToAddressCode: to, HouseholdID: "H2", Reason: "family"}),
	})
	for _, asOf := range []string{"", "2025-06-01"} {
		d := decide(t, s, me, "heilongjiang/harbin", asOf)
		found := false
		for _, m := range d.Family {
			found = found || m.CitizenID == kid
		}
		if !found {
			t.Errorf("as_of %q: family %+v lacks the minor child, in the applicant's household on that day", asOf, d.Family)
		}
	}
}

// Married to sp1 (hukou at an urban Chifeng address) from 2023, divorced in
// 2025 and remarried to sp2 (registered in Harbin). As of 2024-07-01 the
// spouse a family reunion joins is sp1, registered urban in Chifeng then.
func TestEligibilitySpouseOfThatDay(t *testing.T) {
	const daoli, chifeng = "230102001001", "150402001001"
	s := newMemStore(t)
	me, sp1, sp2 := storetest.ValidID(51), storetest.ValidID(52), storetest.ValidID(53)
	reg := func(who citizenid.ID, id, name, g, born, addr, hh string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, who, id, cstDay(2010, 1, 1), schemas.HukouRegisteredData{
			Name: name, Gender: g, BirthDate: born, Ethnicity: "01", AddressCode: addr, HouseholdID: hh, Reason: "birth"})
	}
	applyEach(t, s, []hub.Input{
		reg(me, "ps-r51", "王芳", "2", "1990-01-01", daoli, "H51"),
		reg(sp1, "ps-r52", "张伟", "1", "1989-01-01", chifeng, "H52"),
		reg(sp2, "ps-r53", "李强", "1", "1988-01-01", daoli, "H53"),
		storetest.Event(t, schemas.MarriageRegistered, me, "mz-m51", cstDay(2023, 1, 1), schemas.MarriageRegisteredData{SpouseID: sp1}),
		storetest.Event(t, schemas.MarriageRegistered, sp1, "mz-m51b", cstDay(2023, 1, 1), schemas.MarriageRegisteredData{SpouseID: me}),
		storetest.Event(t, schemas.RentalRegistered, me, "hs-l51", cstDay(2023, 7, 1), schemas.RentalRegisteredData{
			LeaseID: "L51", AddressCode: chifeng, Start: "2023-07-01"}),
	}, []hub.Input{
		storetest.Event(t, schemas.MarriageDivorced, me, "mz-d51", cstDay(2025, 3, 1), schemas.MarriageDivorcedData{SpouseID: sp1}),
		storetest.Event(t, schemas.MarriageDivorced, sp1, "mz-d51b", cstDay(2025, 3, 1), schemas.MarriageDivorcedData{SpouseID: me}),
		storetest.Event(t, schemas.MarriageRegistered, me, "mz-m52", cstDay(2025, 9, 1), schemas.MarriageRegisteredData{SpouseID: sp2}),
		storetest.Event(t, schemas.MarriageRegistered, sp2, "mz-m52b", cstDay(2025, 9, 1), schemas.MarriageRegisteredData{SpouseID: me}),
	})
	d := decide(t, s, me, "chifeng/central", "2024-07-01")
	c, _ := condition(d, "family_reunion")
	if !c.Met {
		t.Errorf("as of 2024-07-01: family_reunion %+v; want met by sp1's hukou at %s", c, chifeng)
	}
	for _, m := range d.Family {
		if m.Relation == "spouse" {
			t.Logf("spouse listed: %+v", m)
		}
	}
}
