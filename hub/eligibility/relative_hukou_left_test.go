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
	"github.com/pophub/pophub/schemas"
)

// TestSpouseHukouOfAPastDayCitesTheMigrationItCameFrom: a spouse whose
// records predate the hub and whose first hukou event is a migration was
// registered, on a day before it, at the address it moved them from; the
// family-reunion fact of that address cites that migration and says so,
// as the applicant's own hukou fact does, not the record's provenance of
// today (here a second migration, which names neither the address shown
// nor the day decided): an appeal ("she was not registered there") must
// start from the record the fact rests on.
func TestSpouseHukouOfAPastDayCitesTheMigrationItCameFrom(t *testing.T) {
	p := policy(t, "chifeng/central")
	c := eligibility.Case{
		Person: eligibility.CasePerson{BirthDate: "1992-03-01", Hukou: "231221100200"},
		// The spouse's record predates the hub: no registration event.
		Family: []eligibility.CasePerson{{BirthDate: "1990-01-01", MarriedOn: "2020-01-01"}},
	}
	ids, in, err := c.Inputs()
	if err != nil {
		t.Fatal(err)
	}
	china := time.FixedZone("CST", 8*3600)
	migrate := func(id, from, to string, at time.Time) hub.Input {
		d := schemas.HukouMigratedData{FromAddressCode: from, ToAddressCode: to, Reason: "family", HouseholdID: "H-" + to}
		raw, _ := json.Marshal(d)
		return hub.Input{Event: schemas.Event{SpecVersion: schemas.SpecVersion, ID: id, Source: schemas.SourceOf(schemas.HukouMigrated),
			Type: schemas.HukouMigrated, Subject: ids[1], Time: at, DataContentType: "application/json", Data: raw, Payload: &d}}
	}
	in = append(in,
		migrate("spouse-m1", "150402001001", "150421100200", time.Date(2024, 8, 1, 9, 0, 0, 0, china)),
		migrate("spouse-m2", "150421100200", "231221100201", time.Date(2024, 9, 1, 9, 0, 0, 0, china)))
	ctx := context.Background()
	store, err := memdb.Open(ctx, memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Apply(ctx, in); err != nil {
		t.Fatal(err)
	}
	asOf, _ := eligibility.AsOfDay("2024-07-01")
	d, err := eligibility.Decide(ctx, store, p, ids[0], asOf, true)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, cr := range d.Conditions {
		for _, f := range cr.Facts {
			if strings.HasPrefix(f.Text, "spouse's hukou registered at") {
				found = append(found, fmt.Sprintf("%s: %q cites %s", cr.ID, f.Text, f.EventID))
				if !strings.Contains(f.Text, "150402001001") {
					t.Errorf("premise: the spouse's hukou of 2024-07-01 is 150402001001 (moved from on 2024-08-01): %q", f.Text)
				}
				if !strings.Contains(f.Text, "moved from by the migration of 2024-08-01") {
					t.Errorf("condition %s: %q does not say the address is the one the migration moved from", cr.ID, f.Text)
				}
				if f.EventID != "spouse-m1" {
					t.Errorf("condition %s: %q cites event %q, want spouse-m1, the migration that moved it from there", cr.ID, f.Text, f.EventID)
				}
			}
		}
	}
	if len(found) == 0 {
		t.Fatalf("premise: no fact of the spouse's hukou in %+v", d.Conditions)
	}
}
