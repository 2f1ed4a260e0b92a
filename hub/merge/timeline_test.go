package merge

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

func TestRegistrations(t *testing.T) {
	p := id(t, male)
	const a, b = "230102001001", "230103002002"
	reg := func(eid, when, addr string) hub.Input { return registered(t, p, eid, when, addr, "1", "1990-01-01") }
	move := func(eid, when, to string) hub.Input {
		return ev(t, schemas.HukouMigrated, p, eid, when, map[string]any{"from_address_code": a, "to_address_code": to, "reason": "employment"})
	}
	cancel := func(eid, when, reason string) hub.Input {
		return ev(t, schemas.HukouCancelled, p, eid, when, map[string]any{"reason": reason})
	}
	death := func(eid, when string) hub.Input {
		return ev(t, schemas.DeathCertified, p, eid, when, map[string]any{"date_of_death": when[:10], "certificate_no": "D1"})
	}
	tests := []struct {
		name   string
		events []hub.Input
		want   []hub.Interval
	}{
		{"registered", []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a)},
			[]hub.Interval{{Code: a, From: "2020-01-01"}}},
		{"moved on the migration's date",
			[]hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), move("m1", "2022-06-30T10:00:00+08:00", b)},
			[]hub.Interval{{Code: a, From: "2020-01-01", To: "2022-06-30"}, {Code: b, From: "2022-06-30"}}},
		{"late migration slots in before a later one",
			[]hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), move("m2", "2024-01-01T10:00:00+08:00", a), move("m1", "2022-06-30T10:00:00+08:00", b)},
			[]hub.Interval{{Code: a, From: "2020-01-01", To: "2022-06-30"}, {Code: b, From: "2022-06-30", To: "2024-01-01"}, {Code: a, From: "2024-01-01"}}},
		{"death ends the count", []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), death("d1", "2025-03-04T23:00:00+08:00")},
			[]hub.Interval{{Code: a, From: "2020-01-01", To: "2025-03-04"}}},
		{"death is final: a later registration does not restore",
			[]hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), death("d1", "2025-03-04T23:00:00+08:00"), reg("r2", "2025-05-01T08:00:00+08:00", b)},
			[]hub.Interval{{Code: a, From: "2020-01-01", To: "2025-03-04"}}},
		{"cancelled then restored",
			[]hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), cancel("c1", "2021-01-01T08:00:00+08:00", "emigration"), reg("r2", "2023-02-01T08:00:00+08:00", b)},
			[]hub.Interval{{Code: a, From: "2020-01-01", To: "2021-01-01"}, {Code: b, From: "2023-02-01"}}},
		{"steps of one day leave the day's last state",
			[]hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), move("m1", "2020-01-01T09:00:00+08:00", b)},
			[]hub.Interval{{Code: b, From: "2020-01-01"}}},
		{"days are China time", []hub.Input{reg("r1", "2019-12-31T17:00:00Z", a)},
			[]hub.Interval{{Code: a, From: "2020-01-01"}}},
		{"a migration before any registration counts nowhere",
			[]hub.Input{move("m1", "2019-01-01T08:00:00+08:00", b), reg("r1", "2020-01-01T08:00:00+08:00", a)},
			[]hub.Interval{{Code: a, From: "2020-01-01"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every arrival order gives the same spans.
			r := rand.New(rand.NewPCG(3, 4))
			for range 5 {
				in := append([]hub.Input(nil), tc.events...)
				r.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
				var batches [][]hub.Input
				for _, e := range in {
					batches = append(batches, []hub.Input{e})
				}
				states, _ := run(batches...)
				if got := states[p].Registrations(); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("spans %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

func TestPermitSpans(t *testing.T) {
	p := id(t, male)
	issue := func(eid, when, city string) hub.Input {
		return ev(t, schemas.ResidencePermitIssued, p, eid, when, map[string]any{"city_code": city, "address_code": map[string]string{"230100": "230102001001", "440100": "440106001001"}[city], "basis": "employment"})
	}
	revoke := func(eid, when, city string) hub.Input {
		return ev(t, schemas.ResidencePermitRevoked, p, eid, when, map[string]any{"city_code": city})
	}
	states, _ := run([]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", "230100"), revoke("x1", "2025-01-01T08:00:00+08:00", "230100"),
		issue("p2", "2024-06-01T08:00:00+08:00", "440100"), issue("p3", "2025-06-01T08:00:00+08:00", "440100")})
	want := []hub.Interval{{Code: "230100", From: "2024-01-01", To: "2025-01-01"}, {Code: "440100", From: "2024-06-01"}}
	if got := states[p].PermitSpans(); !reflect.DeepEqual(got, want) {
		t.Fatalf("permit spans %+v, want %+v", got, want)
	}
}
