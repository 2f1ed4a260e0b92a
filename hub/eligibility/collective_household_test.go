package eligibility_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// TestCollectiveHouseholdIsNoFamily: a collective hukou (集体户) — a
// university's, a factory's, a barracks' — registers unrelated people
// under one household_id. Relations were presumed from the household by
// age alone: a lecturer of 45 registered in her university's collective
// household got each of its 3,000 students listed as her child, in an
// answer of 470 KB naming every one of them in relatives_versions and in
// the audit trail. A household larger than any family, or one the
// applicant's registration calls collective, presumes no one by age and
// says so in family_note; a large family below the bound still does.
//
// The bound counts the active members of the household the family list
// is drawn from: not those whose hukou was cancelled (a family of 20
// children and 11 deceased members lost its 20 children), and not the
// members of another household that carries the same id at another
// address (the spouse's: household ids are unique only within one
// address), today or on a past day.
func TestCollectiveHouseholdIsNoFamily(t *testing.T) {
	const addr, elsewhere = "150402001001", "150402001002"
	lecturer := sizedID(t, "15040219810101002")
	spouse := sizedID(t, "15040219820202001")
	cst := time.FixedZone("CST", 8*3600)
	marriedOn, cancelledOn := time.Date(2021, 5, 1, 9, 0, 0, 0, cst), time.Date(2022, 1, 1, 9, 0, 0, 0, cst)
	past := time.Date(2023, 6, 1, 12, 0, 0, 0, cst)
	tests := []struct {
		name      string
		members   int    // born 2005, 24 years after the applicant
		relation  string // of the applicant's registration
		household string
		gone      int    // more members born 2005, their hukou cancelled in 2022
		reason    string // of the cancellation
		// spouseHousehold, when not 0, marries the applicant to a spouse
		// registered at another address in a household with the same id,
		// with that many other members.
		spouseHousehold int
		asOf            time.Time // zero: today
		children        int       // listed as the applicant's
		note            string
	}{
		{name: "a university's 3,000 students", members: 3000, household: "JT-001", note: "3001 active members"},
		{name: "one member past the bound", members: 30, relation: "户主", household: "JT-002", note: "31 active members"},
		{name: "a collective household by its registration", members: 5, relation: "集体户成员", household: "JT-003", note: `"集体户成员", a member of a collective household`},
		{name: "a family at the bound", members: 29, relation: "户主", household: "F-004", children: 29},
		{name: "a small family", members: 2, relation: "户主", household: "F-005", children: 2},
		{name: "a family with deceased members past the bound", members: 20, relation: "户主", household: "F-006", gone: 11, reason: "death", children: 20},
		{name: "a family with emigrated members past the bound", members: 20, relation: "户主", household: "F-007", gone: 11, reason: "emigration", children: 20},
		{name: "a family with deceased members past the bound, on a past day", members: 20, relation: "户主", household: "F-008", gone: 11, reason: "death", asOf: past, children: 20},
		{name: "a spouse's household elsewhere with the same id", members: 12, relation: "户主", household: "0001", spouseHousehold: 20, children: 12},
		{name: "a spouse's household elsewhere with the same id, on a past day", members: 12, relation: "户主", household: "0001", spouseHousehold: 20, asOf: past, children: 12},
		{name: "a spouse's collective household elsewhere with the same id", members: 12, relation: "户主", household: "0001", spouseHousehold: 40, children: 12,
			note: "the spouse's household has 41 active members"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			store, err := memdb.Open(ctx, memdb.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			in := []hub.Input{registeredIn(t, lecturer, "lecturer", addr, tc.household, tc.relation)}
			for i := range tc.members + tc.gone {
				id := sizedID(t, fmt.Sprintf("1504022005%02d%02d%03d", 1, 1+(i/1000)%28, i%1000))
				in = append(in, registeredIn(t, id, fmt.Sprintf("s-%d", i), addr, tc.household, ""))
				if i >= tc.members {
					in = append(in, storetest.Event(t, schemas.HukouCancelled, id, fmt.Sprintf("c-%d", i), cancelledOn,
						schemas.HukouCancelledData{Reason: tc.reason}))
				}
			}
			if tc.spouseHousehold > 0 {
				in = append(in, registeredIn(t, spouse, "spouse", elsewhere, tc.household, "子"),
					storetest.Event(t, schemas.MarriageRegistered, lecturer, "m-1", marriedOn, schemas.MarriageRegisteredData{SpouseID: spouse}),
					storetest.Event(t, schemas.MarriageRegistered, spouse, "m-2", marriedOn, schemas.MarriageRegisteredData{SpouseID: lecturer}))
			}
			for i := range tc.spouseHousehold {
				id := sizedID(t, fmt.Sprintf("1504021960%02d%02d%03d", 1, 1+i%28, 500+i))
				in = append(in, registeredIn(t, id, fmt.Sprintf("o-%d", i), elsewhere, tc.household, ""))
			}
			applyInBatches(t, store, in)
			asOf := tc.asOf
			if asOf.IsZero() {
				asOf = time.Now()
			}
			d, err := eligibility.Decide(ctx, store, policy(t, "chifeng/central"), lecturer, asOf, true)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			children := 0
			for _, m := range d.Family {
				if m.Relation == "child" {
					children++
				}
			}
			t.Logf("family listed: %d (%d as child), answer %d bytes, relatives_versions %d, note %q",
				len(d.Family), children, len(raw), len(d.RelativesVersions), d.FamilyNote)
			if children != tc.children {
				t.Errorf("a member of a household of %d active members is given %d children (%d relatives listed, an answer of %d bytes), want %d",
					tc.members+1, children, len(d.Family), len(raw), tc.children)
			}
			if tc.note == "" && d.FamilyNote != "" {
				t.Errorf("family note %q for a family household", d.FamilyNote)
			}
			if tc.note != "" && !strings.Contains(d.FamilyNote, tc.note) {
				t.Errorf("family note %q does not tell the clerk why no relative is presumed (want it to say %q)", d.FamilyNote, tc.note)
			}
		})
	}
}
