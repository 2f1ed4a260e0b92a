package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// testHouseholds: Persons with a household (PersonQuery.Household) lists
// exactly the persons whose golden record shows that address and that
// household id, whatever else is registered at the address, in pages that
// end: the same id at another address is another household; a member who
// migrates out with a household of the new address leaves it, one who
// migrates without naming a household keeps it at the new address (a
// household that moved together), one who migrates in joins it, and one
// given another household at the same address moves to it.
func testHouseholds(t *testing.T, s hub.Store) {
	const a, b = "230102001001", "230102001002"
	at := func(day int) time.Time { return time.Date(2020, 1, day, 9, 0, 0, 0, schemas.CST()) }
	var in []hub.Input
	registered := func(n int, addr, household string) citizenid.ID {
		id := ValidID(9000 + n)
		in = append(in, Event(t, schemas.HukouRegistered, id, fmt.Sprintf("hh-reg-%d", n), at(1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly), Ethnicity: "01",
			AddressCode: addr, HouseholdID: household, Reason: "birth"}))
		return id
	}
	migrated := func(id citizenid.ID, n int, from, to, household string) {
		in = append(in, Event(t, schemas.HukouMigrated, id, fmt.Sprintf("hh-mig-%d", n), at(5), schemas.HukouMigratedData{
			FromAddressCode: from, ToAddressCode: to, Reason: "family", HouseholdID: household}))
	}
	registered(0, a, "HH1")
	registered(1, a, "HH1")
	registered(2, a, "HH2")
	registered(3, b, "HH1")                           // the same id at another address
	migrated(registered(4, a, "HH1"), 4, a, b, "HH9") // out, into a household there
	migrated(registered(5, b, "HH5"), 5, b, a, "HH1") // in
	migrated(registered(6, a, "HH1"), 6, a, b, "")    // out, keeping the household
	migrated(registered(7, a, "HH1"), 7, a, a, "HH2") // to another household here
	for n := range 5 {
		registered(10+n, a, "集体户001")
	}
	for n := range 20 {
		registered(20+n, a, fmt.Sprintf("F%d", n)) // neighbours
	}
	ApplyAll(t, s, in, 7)
	want := Expected(in)
	// What the scenario means to test, so that it cannot pass on
	// households of one.
	sizes := map[string]int{a + "/HH1": 3, b + "/HH1": 2, a + "/HH2": 2, b + "/HH9": 1, a + "/HH5": 0, a + "/集体户001": 5}
	ctx := context.Background()
	for _, addr := range []string{a, b} {
		for _, household := range []string{"HH1", "HH2", "HH5", "HH9", "集体户001", "F3", "nobody"} {
			var members []citizenid.ID
			for id, r := range want {
				if r.Hukou != nil && r.Hukou.AddressCode == addr && r.Hukou.HouseholdID == household {
					members = append(members, id)
				}
			}
			slices.Sort(members)
			if n, ok := sizes[addr+"/"+household]; ok && len(members) != n {
				t.Fatalf("the scenario puts %d persons in household %s at %s, not %d: the merge rules changed", len(members), household, addr, n)
			}
			for _, limit := range []int{1, 2, hub.MaxPersonsPage} {
				var got []citizenid.ID
				after := ""
				for pages := 0; ; pages++ {
					if pages > len(members)+1 {
						t.Fatalf("household %s at %s, limit %d: the walk does not end", household, addr, limit)
					}
					recs, next, err := s.Persons(ctx, hub.PersonQuery{Region: addr, Household: household, After: after, Limit: limit})
					if err != nil {
						t.Fatalf("household %s at %s, limit %d: %v", household, addr, limit, err)
					}
					if len(recs) > limit {
						t.Fatalf("household %s at %s: a page of %d, limit %d", household, addr, len(recs), limit)
					}
					for _, r := range recs {
						got = append(got, r.CitizenID)
					}
					if next == "" {
						break
					}
					after = next
				}
				slices.Sort(got)
				if !slices.Equal(got, members) {
					t.Errorf("household %s at %s, limit %d: %d members listed, want %d (%v, want %v)",
						household, addr, limit, len(got), len(members), masked(got), masked(members))
				}
			}
		}
	}
	for _, q := range []hub.PersonQuery{
		{Region: "230102", Household: "HH1", Limit: 5},
		{Household: "HH1", Limit: 5},
		{Region: a, Household: strings.Repeat("户", hub.MaxHouseholdID+1), Limit: 5},
	} {
		if _, _, err := s.Persons(ctx, q); !errors.Is(err, hub.ErrInvalid) {
			t.Errorf("Persons(region %q, a household of %d bytes) = %v, want ErrInvalid", q.Region, len(q.Household), err)
		}
	}
}

// masked lists IDs as a failure message may show them.
func masked(ids []citizenid.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Masked()
	}
	return out
}
