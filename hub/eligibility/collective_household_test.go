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
func TestCollectiveHouseholdIsNoFamily(t *testing.T) {
	const addr = "150402001001"
	lecturer := sizedID(t, "15040219810101002")
	tests := []struct {
		name      string
		members   int    // born 2005, 24 years after the applicant
		relation  string // of the applicant's registration
		household string
		children  int // listed as the applicant's
		note      string
	}{
		{"a university's 3,000 students", 3000, "", "JT-001", 0, "3001 registered members"},
		{"one member past the bound", 30, "户主", "JT-002", 0, "31 registered members"},
		{"a collective household by its registration", 5, "集体户成员", "JT-003", 0, `"集体户成员", a member of a collective household`},
		{"a family at the bound", 29, "户主", "F-004", 29, ""},
		{"a small family", 2, "户主", "F-005", 2, ""},
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
			for i := range tc.members {
				id := sizedID(t, fmt.Sprintf("1504022005%02d%02d%03d", 1, 1+(i/1000)%28, i%1000))
				in = append(in, registeredIn(t, id, fmt.Sprintf("s-%d", i), addr, tc.household, ""))
			}
			applyInBatches(t, store, in)
			d, err := eligibility.Decide(ctx, store, policy(t, "chifeng/central"), lecturer, time.Now(), true)
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
				t.Errorf("a member of a household of %d is given %d children (%d relatives listed, an answer of %d bytes), want %d",
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
