package merge

import (
	"reflect"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestRestorationDoesNotReviveEndedPermitOfStoredState: README "Golden
// record": "a revocation, death, or a hukou cancelled for death or
// emigration ends it"; README "Statistics": a holder counts "no longer ...
// from a cancellation of the hukou for death or emigration". Nothing there
// lets a later registration (a restoration) bring such a permit back. On a
// state stored before cancellation points carried their reason (an
// upgraded store: the reason is then read from the lifecycle register,
// cancellationReason), the registration that restores the hukou replaces
// that register, the cancellation's reason is lost, and the permit the
// cancellation ended is listed as current again and counted from the
// cancellation on, while the same events on a fresh state keep it ended.
func TestRestorationDoesNotReviveEndedPermitOfStoredState(t *testing.T) {
	p := id(t, male)
	for _, reason := range []string{"death", "emigration"} {
		t.Run(reason, func(t *testing.T) {
			before := []hub.Input{
				registered(t, p, "ps-r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01"),
				ev(t, schemas.ResidencePermitIssued, p, "ps-p1", "2022-01-01T08:00:00+08:00",
					map[string]any{"city_code": "230100", "address_code": "230102001001", "basis": "employment"}),
				ev(t, schemas.HukouCancelled, p, "ps-c1", "2024-09-01T08:00:00+08:00", map[string]any{"reason": reason}),
			}
			restore := registered(t, p, "ps-r2", "2025-02-01T08:00:00+08:00", "440106001001", "1", "1990-01-01")

			// Fresh: the same events applied by this release.
			fresh, _ := run(before, []hub.Input{restore})
			wantPermits, wantSpans := fresh[p].Record().ResidencePermits, fresh[p].PermitSpans()
			if wantPermits != nil || !reflect.DeepEqual(wantSpans, []hub.Interval{{Code: "230100", From: "2022-01-01", To: "2024-09-01"}}) {
				t.Fatalf("fresh state: permits %+v, spans %+v", wantPermits, wantSpans)
			}

			// Stored by an earlier release: no reason on the points.
			states, _ := run(before)
			st := storedBefore(t, states[p], func(st *State) {
				for i := range st.HukouLine {
					st.HukouLine[i].Reason = ""
				}
			})
			if got := st.Record().ResidencePermits; got != nil {
				t.Fatalf("stored state before the restoration lists %+v", got)
			}
			out := Batch(map[citizenid.ID]*State{p: st}, []hub.Input{restore}, now)
			got := out.States[p]
			if perms := got.Record().ResidencePermits; perms != nil {
				t.Errorf("after the restoration the permit the %s ended is listed again: %+v (history sections %v)",
					reason, perms, out.History[0].Change.Sections)
			}
			if spans := got.PermitSpans(); !reflect.DeepEqual(spans, wantSpans) {
				t.Errorf("after the restoration permit spans %+v, want %+v", spans, wantSpans)
			}
		})
	}
}

// TestLaterCancellationDoesNotReviveEndedPermitOfStoredState: the same
// loss through another cancellation, which replaces the lifecycle register
// too: README "a cancellation for death stays until such a registration,
// whatever other cancellation follows", and a hukou cancelled for death or
// emigration ends the permit. On a stored state, a later cancellation
// (reason other) makes the earlier cancellation's permit current again.
func TestLaterCancellationDoesNotReviveEndedPermitOfStoredState(t *testing.T) {
	p := id(t, male)
	for _, reason := range []string{"death", "emigration"} {
		t.Run(reason, func(t *testing.T) {
			states, _ := run([]hub.Input{
				registered(t, p, "ps-r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01"),
				ev(t, schemas.ResidencePermitIssued, p, "ps-p1", "2022-01-01T08:00:00+08:00",
					map[string]any{"city_code": "230100", "address_code": "230102001001", "basis": "employment"}),
				ev(t, schemas.HukouCancelled, p, "ps-c1", "2024-09-01T08:00:00+08:00", map[string]any{"reason": reason}),
			})
			st := states[p].Clone()
			for i := range st.HukouLine {
				st.HukouLine[i].Reason = ""
			}
			wantStatus := st.Status()
			later := ev(t, schemas.HukouCancelled, p, "ps-c2", "2024-10-01T08:00:00+08:00", map[string]any{"reason": "other"})
			out := Batch(map[citizenid.ID]*State{p: st}, []hub.Input{later}, now)
			got := out.States[p]
			if perms := got.Record().ResidencePermits; perms != nil {
				t.Errorf("after a later cancellation the permit the %s ended is listed again: %+v", reason, perms)
			}
			if reason == "death" && got.Status() != wantStatus {
				t.Errorf("status %s after a later cancellation, was %s", got.Status(), wantStatus)
			}
		})
	}
}

// TestRevocationDoesNotExtendLapsedPermitOfStoredState: README
// "Statistics": a holder counts "until the day after its valid_until"; the
// upgrade note concedes only that "records stored before the upgrade keep
// only each city's latest valid_until, so an earlier permit's lapse before
// a renewal is not seen". A revocation is no renewal, yet on a stored state
// (permit points without valid_until, read from the city's register,
// permitUntil) a revocation arriving after the permit lapsed empties the
// register, and the lapsed permit is counted again from its lapse up to the
// revocation: the counts of past days change although no event said the
// permit was valid then.
func TestRevocationDoesNotExtendLapsedPermitOfStoredState(t *testing.T) {
	p := id(t, male)
	states, _ := run([]hub.Input{
		registered(t, p, "ps-r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01"),
		ev(t, schemas.ResidencePermitIssued, p, "ps-p1", "2022-01-01T08:00:00+08:00",
			map[string]any{"city_code": "230100", "address_code": "230102001001", "basis": "employment", "valid_until": "2022-12-31"}),
	})
	st := states[p].Clone()
	for i := range st.PermitLine {
		st.PermitLine[i].Until = ""
	}
	want := []hub.Interval{{Code: "230100", From: "2022-01-01", To: "2023-01-01"}}
	if got := st.PermitSpans(); !reflect.DeepEqual(got, want) {
		t.Fatalf("stored state: spans %+v, want %+v", got, want)
	}
	revoke := ev(t, schemas.ResidencePermitRevoked, p, "ps-x1", "2024-06-01T08:00:00+08:00", map[string]any{"city_code": "230100"})
	out := Batch(map[citizenid.ID]*State{p: st}, []hub.Input{revoke}, now)
	if got := out.States[p].PermitSpans(); !reflect.DeepEqual(got, want) {
		t.Errorf("after a revocation a year and a half after the lapse: spans %+v, want %+v", got, want)
	}
}
