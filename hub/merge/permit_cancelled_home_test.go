package merge

import (
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestPermitAfterHukouCancelledIsHeld: README "Statistics" (f20070e): "a
// person is counted in the registered population of the city their hukou
// is in, or as a permit holder there, never both; a permit issued where
// the hukou is counts nowhere", and a hukou "cancelled on enlistment, as a
// duplicate or for another reason leaves the permit to its revocation or
// valid_until". Once the Harbin hukou is cancelled (reason other) the
// person no longer counts in Harbin's registered population, and the hukou
// is in no city; a permit issued in Harbin afterwards is not held and the
// person counts nowhere, since the walk's home keeps the cancelled
// hukou's address.
func TestPermitAfterHukouCancelledIsHeld(t *testing.T) {
	p := id(t, male)
	for _, reason := range []string{"other", "military", "duplicate"} {
		t.Run(reason, func(t *testing.T) {
			states, _ := run([]hub.Input{
				registered(t, p, "pc-r1", "2020-01-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
				ev(t, schemas.HukouCancelled, p, "pc-c1", "2022-01-01T08:00:00+08:00", map[string]any{"reason": reason}),
				ev(t, schemas.ResidencePermitIssued, p, "pc-p1", "2023-01-01T08:00:00+08:00",
					map[string]any{"city_code": "230100", "address_code": "230103001001", "basis": "employment"}),
			})
			st := states[p]
			regs := st.Registrations()
			if len(regs) != 1 || regs[0].To != "2022-01-01" {
				t.Fatalf("registrations %+v, want ended by the cancellation", regs)
			}
			if got := st.PermitSpans(); len(got) == 0 {
				t.Errorf("the permit issued after the hukou was cancelled counts nowhere (registrations %+v): the person counts in neither population", regs)
			}
			if got := st.Record().ResidencePermits; len(got) == 0 {
				t.Errorf("the permit issued after the hukou was cancelled is not listed")
			}
		})
	}
}
