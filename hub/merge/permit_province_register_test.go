package merge

import (
	"reflect"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestPermitListedIsTheOneHeld: README "Events" accepts a province's code
// as a permit's city_code for any address of the province, and f20070e
// keys the permits the walk holds by the city of the address. Two
// issues written under the province's code for addresses in two cities
// share one register (Permits["230000"]), so when the later one is not
// held (issued in the city the hukou is in, or issued already expired)
// the earlier, still held, is listed with the later one's data: the record
// shows as current a Daqing permit, where the hukou is, or one issued
// already expired, while the statistics count a Harbin permit holder.
// README "Records": "a permit of the city the hukou is in is not listed";
// "a permit issued already expired is not listed".
func TestPermitListedIsTheOneHeld(t *testing.T) {
	p := id(t, male)
	inDaqing := registered(t, p, "pr-r1", "2020-01-01T08:00:00+08:00", "230602013001", "1", "1990-01-01")
	inGuangzhou := registered(t, p, "pr-r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01")
	harbin := ev(t, schemas.ResidencePermitIssued, p, "pr-p1", "2022-01-01T08:00:00+08:00",
		map[string]any{"city_code": "230000", "address_code": "230102001001", "basis": "housing", "valid_until": "2030-12-31"})
	daqing := ev(t, schemas.ResidencePermitIssued, p, "pr-p2", "2024-01-01T08:00:00+08:00",
		map[string]any{"city_code": "230000", "address_code": "230602013001", "basis": "employment", "valid_until": "2030-12-31"})
	daqingExpired := ev(t, schemas.ResidencePermitIssued, p, "pr-p2", "2024-01-01T08:00:00+08:00",
		map[string]any{"city_code": "230000", "address_code": "230602013001", "basis": "employment", "valid_until": "2023-06-30"})
	tests := []struct {
		name   string
		events []hub.Input
	}{
		{"the later issue is in the hukou's city", []hub.Input{inDaqing, harbin, daqing}},
		{"the later issue was issued already expired", []hub.Input{inGuangzhou, harbin, daqingExpired}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			states, _ := run(tc.events)
			st := states[p]
			spans := st.PermitSpans()
			for _, rp := range st.Record().ResidencePermits {
				if rp.AddressCode == "230602013001" {
					t.Errorf("the record lists as current the Daqing permit %+v, which is not held (permit spans %+v)", rp, spans)
				}
			}
		})
	}
}

// TestStoredProvinceCodePermitCountsInItsAddressCity: README "Statistics"
// (f20070e): a permit "issued under its province's code (230000) ... is
// counted in the city of its address_code, and revoked by any code of that
// city, province or municipality. A PostgreSQL hub whose counters a
// release up to 2026-12-07 counted (migration 0017_counting_permits marks
// it) needs pophub stats rebuild once for these rules." A rebuild counts
// the stored states again, but an issue point stored by that release
// carries no address (point.Addr), so the walk keyed it by its city_code,
// 230000: after the rebuild the holder still counts in no city, and a
// hukou settling anywhere in the province (Daqing) ends the Harbin permit.
// The address is in the permit register, as valid_until is for
// permitUntil.
func TestStoredProvinceCodePermitCountsInItsAddressCity(t *testing.T) {
	p := id(t, male)
	before := []hub.Input{
		registered(t, p, "pl-r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01"),
		ev(t, schemas.ResidencePermitIssued, p, "pl-p1", "2022-01-01T08:00:00+08:00",
			map[string]any{"city_code": "230000", "address_code": "230102001001", "basis": "housing"}),
	}
	toDaqing := ev(t, schemas.HukouMigrated, p, "pl-m1", "2024-03-01T08:00:00+08:00",
		map[string]any{"from_address_code": "440106001001", "to_address_code": "230602013001", "reason": "housing"})
	fresh, _ := run(before, []hub.Input{toDaqing})
	want := []hub.Interval{{Code: "230100", From: "2022-01-01"}}
	if got := fresh[p].PermitSpans(); !reflect.DeepEqual(got, want) {
		t.Fatalf("fresh state: spans %+v, want %+v", got, want)
	}

	// Stored by the release of 2026-12-07: no city on the points.
	states, _ := run(before)
	st := storedBefore(t, states[p], func(st *State) {
		for i := range st.PermitLine {
			st.PermitLine[i].Addr = ""
		}
	})
	if got := st.PermitSpans(); !reflect.DeepEqual(got, []hub.Interval{{Code: "230100", From: "2022-01-01"}}) {
		t.Errorf("stored state, as pophub stats rebuild counts it: spans %+v, want the Harbin permit counted in 230100", got)
	}
	out := Batch(map[citizenid.ID]*State{p: st}, []hub.Input{toDaqing}, now)
	if got := out.States[p].PermitSpans(); !reflect.DeepEqual(got, want) {
		t.Errorf("stored state, after the hukou moved to Daqing: spans %+v, want %+v", got, want)
	}
	if got := out.States[p].Record().ResidencePermits; len(got) != 1 {
		t.Errorf("stored state, after the hukou moved to Daqing the Harbin permit is not listed: %+v", got)
	}
}
