package watch_test

import (
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// TestSpouseChangeReDecidesApplicant: under a policy that reads the
// family (Chifeng's family reunion joins a spouse registered at a town
// address), the spouse's move re-decides the applicant, who is announced
// when it makes them eligible (README: the watcher "announces newly
// eligible persons"). The applicant's own records do not change.
func TestSpouseChangeReDecidesApplicant(t *testing.T) {
	const daoli, chifengTown, chifengVillage = "230102001001", "150402001001", "150421100200"
	tests := []struct {
		name     string
		movesTo  string
		announce bool
	}{
		{"spouse moves to a town address in Chifeng", chifengTown, true},
		{"spouse moves to a village in Chifeng", chifengVillage, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2025, 4, 10, 12, 0, 0, 0, china)
			r := newRig(t, now, "chifeng/central")
			c := eligibility.Case{
				Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: daoli},
				Family: []eligibility.CasePerson{{BirthDate: "1989-01-01", Hukou: daoli, MarriedOn: "2020-01-01"}},
				Events: []eligibility.CaseEvent{{Type: schemas.RentalRegistered, Time: "2023-01-01",
					Data: map[string]any{"lease_id": "L1", "address_code": chifengTown, "start": "2023-01-01"}}},
			}
			ids, in, err := c.Inputs()
			if err != nil {
				t.Fatal(err)
			}
			r.apply(t, in)
			r.expect(t, nil, 1500*time.Millisecond) // the spouse is registered in Harbin: nobody to join

			r.apply(t, []hub.Input{storetest.Event(t, schemas.HukouMigrated, ids[1], "ps-m1", time.Date(2025, 4, 10, 9, 0, 0, 0, china),
				schemas.HukouMigratedData{FromAddressCode: daoli, ToAddressCode: tt.movesTo, Reason: "family"})})
			if !tt.announce {
				r.expect(t, nil, 1500*time.Millisecond)
				return
			}
			r.expect(t, &schemas.EligibilityNotification{CitizenID: ids[0], Policy: "chifeng/central", RegionCode: "150402"}, 10*time.Second)
			r.expect(t, nil, 1500*time.Millisecond) // the spouse, not eligible, is not announced
		})
	}
}
