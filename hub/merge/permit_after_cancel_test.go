package merge

import (
	"reflect"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// TestPermitIssuedAfterEndingCancellation: a hukou cancelled for death or
// emigration ends the residence permit and keeps a permit issued later
// from being held, as a certified death does, until the hukou is
// restored or the person registered again. Both what the record lists and
// what the statistics count (PermitSpans) follow, in any arrival order.
func TestPermitIssuedAfterEndingCancellation(t *testing.T) {
	p := id(t, male)
	reg := registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01")
	restore := registered(t, p, "r2", "2024-12-01T08:00:00+08:00", "440106001001", "1", "1990-01-01")
	cancel := func(eid, when, reason string) hub.Input {
		return ev(t, schemas.HukouCancelled, p, eid, when, map[string]any{"reason": reason})
	}
	issue := func(eid, when string) hub.Input {
		return ev(t, schemas.ResidencePermitIssued, p, eid, when,
			map[string]any{"city_code": "230100", "address_code": "230102001001", "basis": "employment"})
	}
	early := issue("p0", "2022-01-01T08:00:00+08:00")
	late := issue("p1", "2025-01-01T08:00:00+08:00")
	heldLate := []hub.ResidencePermit{{CityCode: "230100", AddressCode: "230102001001", Basis: "employment", Since: "2025-01-01"}}
	tests := []struct {
		name    string
		events  []hub.Input
		permits []hub.ResidencePermit
		spans   []hub.Interval
	}{
		{"a permit issued after a cancellation for death is not held",
			[]hub.Input{reg, cancel("c1", "2024-09-01T08:00:00+08:00", "death"), late}, nil, nil},
		{"a permit issued after a cancellation for emigration is not held",
			[]hub.Input{reg, cancel("c1", "2024-09-01T08:00:00+08:00", "emigration"), late}, nil, nil},
		{"one held before a cancellation for death ends there, and a later issue does not resume it",
			[]hub.Input{reg, early, cancel("c1", "2024-09-01T08:00:00+08:00", "death"), late}, nil,
			[]hub.Interval{{Code: "230100", From: "2022-01-01", To: "2024-09-01"}}},
		{"a permit issued after the hukou's restoration is held",
			[]hub.Input{reg, cancel("c1", "2024-09-01T08:00:00+08:00", "death"), restore, late}, heldLate,
			[]hub.Interval{{Code: "230100", From: "2025-01-01"}}},
		{"a permit issued after re-registration following emigration is held",
			[]hub.Input{reg, cancel("c1", "2024-09-01T08:00:00+08:00", "emigration"), restore, late}, heldLate,
			[]hub.Interval{{Code: "230100", From: "2025-01-01"}}},
		{"a permit issued after an enlistment's cancellation is held",
			[]hub.Input{reg, cancel("c1", "2024-09-01T08:00:00+08:00", "military"), late}, heldLate,
			[]hub.Interval{{Code: "230100", From: "2025-01-01"}}},
		{"a later cancellation for another reason does not lift a death's",
			[]hub.Input{reg, cancel("c1", "2024-09-01T08:00:00+08:00", "death"), cancel("c2", "2024-10-01T08:00:00+08:00", "duplicate"), late}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, batches := range arrivalOrders(tc.events, 4) {
				states, _ := run(batches...)
				st := states[p]
				if got := st.Record().ResidencePermits; !reflect.DeepEqual(got, tc.permits) {
					t.Errorf("order %d: residence permits %+v, want %+v", i, got, tc.permits)
				}
				if got := st.PermitSpans(); !reflect.DeepEqual(got, tc.spans) {
					t.Errorf("order %d: permit spans %+v, want %+v", i, got, tc.spans)
				}
				if t.Failed() {
					t.FailNow()
				}
			}
		})
	}
}

// TestPermitAfterEndingCancellationOfStoredStates: a state stored before
// cancellation points carried their reason still bars a later permit, the
// reason read from the lifecycle register, so that counters rebuilt from
// stored states follow the rule.
func TestPermitAfterEndingCancellationOfStoredStates(t *testing.T) {
	p := id(t, male)
	for _, reason := range []string{"death", "emigration"} {
		t.Run(reason, func(t *testing.T) {
			states, _ := run([]hub.Input{
				registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01"),
				ev(t, schemas.HukouCancelled, p, "c1", "2024-09-01T08:00:00+08:00", map[string]any{"reason": reason}),
				ev(t, schemas.ResidencePermitIssued, p, "p1", "2025-01-01T08:00:00+08:00",
					map[string]any{"city_code": "230100", "address_code": "230102001001", "basis": "employment"}),
			})
			st := storedBefore(t, states[p], func(st *State) {
				for i := range st.HukouLine {
					st.HukouLine[i].Reason = ""
				}
			})
			if got := st.PermitSpans(); got != nil {
				t.Errorf("permit spans %+v, want none", got)
			}
			if got := st.Record().ResidencePermits; got != nil {
				t.Errorf("residence permits %+v, want none", got)
			}
		})
	}
}
