package merge

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// shuffledOneByOne builds n arrival orders of events for run: each is
// events shuffled by r (in turn, so a seeded r gives the same orders every
// time), one event a batch, as a department's messages arriving singly in
// any order would be applied.
func shuffledOneByOne(events []hub.Input, r *rand.Rand, n int) [][][]hub.Input {
	orders := make([][][]hub.Input, 0, n)
	for range n {
		in := append([]hub.Input(nil), events...)
		r.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		orders = append(orders, oneByOne(in))
	}
	return orders
}

// oneByOne is events as batches of one, in their order.
func oneByOne(events []hub.Input) [][]hub.Input {
	batches := make([][]hub.Input, 0, len(events))
	for _, e := range events {
		batches = append(batches, []hub.Input{e})
	}
	return batches
}

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
		{"a registration after the death restores the count, as it makes the person active again",
			[]hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), death("d1", "2025-03-04T23:00:00+08:00"), reg("r2", "2025-05-01T08:00:00+08:00", b)},
			[]hub.Interval{{Code: a, From: "2020-01-01", To: "2025-03-04"}, {Code: b, From: "2025-05-01"}}},
		{"cancelled then restored",
			[]hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), cancel("c1", "2021-01-01T08:00:00+08:00", "emigration"), reg("r2", "2023-02-01T08:00:00+08:00", b)},
			[]hub.Interval{{Code: a, From: "2020-01-01", To: "2021-01-01"}, {Code: b, From: "2023-02-01"}}},
		{"steps of one day leave the day's last state",
			[]hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), move("m1", "2020-01-01T09:00:00+08:00", b)},
			[]hub.Interval{{Code: b, From: "2020-01-01"}}},
		{"days are China time", []hub.Input{reg("r1", "2019-12-31T17:00:00Z", a)},
			[]hub.Interval{{Code: a, From: "2020-01-01"}}},
		{"a migration after a cancellation does not end it",
			[]hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), cancel("c1", "2021-01-01T08:00:00+08:00", "other"), move("m1", "2022-01-01T08:00:00+08:00", b)},
			[]hub.Interval{{Code: a, From: "2020-01-01", To: "2021-01-01"}}},
		{"a migration before any registration counts from it, as the record takes the hukou moved to",
			[]hub.Input{move("m1", "2019-01-01T08:00:00+08:00", b), reg("r1", "2020-01-01T08:00:00+08:00", a)},
			[]hub.Interval{{Code: b, From: "2019-01-01", To: "2020-01-01"}, {Code: a, From: "2020-01-01"}}},
		{"a person known only by a migration counts where it moved them",
			[]hub.Input{move("m1", "2019-01-01T08:00:00+08:00", b)},
			[]hub.Interval{{Code: b, From: "2019-01-01"}}},
		{"a migration after a death does not count",
			[]hub.Input{death("d1", "2018-06-01T08:00:00+08:00"), move("m1", "2019-01-01T08:00:00+08:00", b)},
			nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every arrival order gives the same spans.
			for _, batches := range shuffledOneByOne(tc.events, rand.New(rand.NewPCG(3, 4)), 5) {
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
	const harbin, guangzhou, daqing = "230100", "440100", "230600"
	// Harbin's districts write its city_code as well (city_code takes any
	// county code): 230102 and 230103 are Harbin's.
	const daoli, nangang = "230102", "230103"
	address := map[string]string{harbin: "230102001001", guangzhou: "440106001001", daqing: "230602013001",
		daoli: "230102001001", nangang: "230103002002"}
	reg := registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "430104001001", "1", "1990-01-01") // in Changsha, away from the permits' cities
	issue := func(eid, when, city, validUntil string) hub.Input {
		data := map[string]any{"city_code": city, "address_code": address[city], "basis": "employment"}
		if validUntil != "" {
			data["valid_until"] = validUntil
		}
		return ev(t, schemas.ResidencePermitIssued, p, eid, when, data)
	}
	revoke := func(eid, when, city string) hub.Input {
		return ev(t, schemas.ResidencePermitRevoked, p, eid, when, map[string]any{"city_code": city})
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
		{"without valid_until: held until revoked",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", harbin, ""), revoke("x1", "2025-01-01T08:00:00+08:00", harbin),
				issue("p2", "2025-03-01T08:00:00+08:00", guangzhou, ""), issue("p3", "2025-06-01T08:00:00+08:00", guangzhou, "")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2025-01-01"}, {Code: guangzhou, From: "2025-03-01"}}},
		{"a permit issued in another city ends the previous city's on its issue day",
			[]hub.Input{issue("p1", "2025-01-10T09:00:00+08:00", harbin, "2025-12-31"), issue("p2", "2025-06-01T09:00:00+08:00", daqing, "2026-05-31")},
			[]hub.Interval{{Code: harbin, From: "2025-01-10", To: "2025-06-01"}, {Code: daqing, From: "2025-06-01", To: "2026-06-01"}}},
		{"a move and back: one permit at a time",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", harbin, ""), issue("p2", "2024-06-01T08:00:00+08:00", daqing, ""),
				issue("p3", "2025-02-01T08:00:00+08:00", nangang, "2026-01-31")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2024-06-01"}, {Code: harbin, From: "2025-02-01", To: "2026-02-01"},
				{Code: daqing, From: "2024-06-01", To: "2025-02-01"}}},
		{"a revocation written with a county's code ends the city's permit",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2026-12-31"), revoke("x1", "2024-05-10T08:00:00+08:00", daoli)},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2024-05-10"}}},
		{"a renewal written with a county's code carries the city's permit on",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", daoli, "2024-12-31"), issue("p2", "2024-12-20T08:00:00+08:00", nangang, "2025-12-31")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2026-01-01"}}},
		{"moved to Daqing, then revoked in Harbin by a county's code: Daqing's is held on",
			[]hub.Input{issue("rp-1", "2025-01-10T09:00:00+08:00", harbin, "2025-12-31"), issue("rp-2", "2025-06-01T09:00:00+08:00", daqing, "2026-05-31"),
				revoke("rp-3", "2025-07-01T09:00:00+08:00", daoli)},
			[]hub.Interval{{Code: harbin, From: "2025-01-10", To: "2025-06-01"}, {Code: daqing, From: "2025-06-01", To: "2026-06-01"}}},
		{"expires the day after valid_until",
			[]hub.Input{reg, issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2024-12-31")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2025-01-01"}}},
		{"renewed before expiry: held on",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2024-12-31"), issue("p2", "2024-12-20T08:00:00+08:00", harbin, "2025-12-31")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2026-01-01"}}},
		{"renewed the day after expiry: held on",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2024-12-31"), issue("p2", "2025-01-01T10:00:00+08:00", harbin, "2025-12-31")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2026-01-01"}}},
		{"renewed after expiry: a gap",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2024-12-31"), issue("p2", "2025-03-01T08:00:00+08:00", harbin, "2026-02-28")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2025-01-01"}, {Code: harbin, From: "2025-03-01", To: "2026-03-01"}}},
		{"renewed without valid_until: held until revoked",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2024-12-31"), issue("p2", "2024-06-01T08:00:00+08:00", harbin, "")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01"}}},
		{"revoked before expiry",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2024-12-31"), revoke("x1", "2024-05-10T08:00:00+08:00", harbin)},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2024-05-10"}}},
		{"issued already expired: not held",
			[]hub.Input{issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2023-12-31")},
			nil},
		{"death before expiry ends the permit on the day of death",
			[]hub.Input{reg, issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2026-12-31"), issue("p2", "2024-06-01T08:00:00+08:00", guangzhou, ""),
				death("d1", "2025-03-04T23:00:00+08:00")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2024-06-01"}, {Code: guangzhou, From: "2024-06-01", To: "2025-03-04"}}},
		{"death after expiry: ended at expiry",
			[]hub.Input{reg, issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2024-12-31"), death("d1", "2025-03-04T23:00:00+08:00")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2025-01-01"}}},
		{"a late death ends a later renewal too",
			[]hub.Input{reg, issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2024-12-31"), issue("p2", "2024-12-01T08:00:00+08:00", harbin, "2025-12-31"),
				issue("p3", "2025-06-01T08:00:00+08:00", guangzhou, "2026-05-31"), death("d1", "2025-03-04T23:00:00+08:00")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2025-03-04"}}},
		{"emigration ends it; a permit after the hukou's restoration counts",
			[]hub.Input{reg, issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2026-12-31"), cancel("c1", "2024-09-01T08:00:00+08:00", "emigration"),
				registered(t, p, "r2", "2025-02-01T08:00:00+08:00", "440106001001", "1", "1990-01-01"), issue("p2", "2025-04-01T08:00:00+08:00", harbin, "2026-03-31")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2024-09-01"}, {Code: harbin, From: "2025-04-01", To: "2026-04-01"}}},
		{"a cancellation for death ends it",
			[]hub.Input{reg, issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2026-12-31"), cancel("c1", "2024-09-01T08:00:00+08:00", "death")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2024-09-01"}}},
		{"enlistment, a duplicate's or another cancellation leave it to valid_until",
			[]hub.Input{reg, issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2026-12-31"), cancel("c1", "2024-09-01T08:00:00+08:00", "military"),
				cancel("c2", "2024-10-01T08:00:00+08:00", "duplicate"), cancel("c3", "2024-11-01T08:00:00+08:00", "other")},
			[]hub.Interval{{Code: harbin, From: "2024-01-01", To: "2027-01-01"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// As listed, all at once, and one by one in every arrival order
			// tried: the spans are the same.
			orders := append([][][]hub.Input{{tc.events}}, shuffledOneByOne(tc.events, rand.New(rand.NewPCG(5, 6)), 6)...)
			for _, batches := range orders {
				states, _ := run(batches...)
				if got := states[p].PermitSpans(); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("permit spans %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

// TestPermitSpansOfStoredStates: a state stored before timeline points
// carried valid_until and the cancellation's reason still expires the
// city's latest permit and ends permits at an emigration, so that counters
// rebuilt from stored states follow the rules.
func TestPermitSpansOfStoredStates(t *testing.T) {
	p := id(t, male)
	issue := func(eid, when, validUntil string) hub.Input {
		return ev(t, schemas.ResidencePermitIssued, p, eid, when, map[string]any{"city_code": "230100", "address_code": "230102001001", "basis": "employment", "valid_until": validUntil})
	}
	reg := registered(t, p, "r1", "2020-01-01T08:00:00+08:00", "440106001001", "1", "1990-01-01")
	tests := []struct {
		name   string
		events []hub.Input
		want   []hub.Interval
	}{
		{"the latest issue expires", []hub.Input{reg, issue("p1", "2023-01-01T08:00:00+08:00", "2023-12-31"), issue("p2", "2023-12-01T08:00:00+08:00", "2024-12-31")},
			[]hub.Interval{{Code: "230100", From: "2023-01-01", To: "2025-01-01"}}},
		{"an emigration ends it", []hub.Input{reg, issue("p1", "2024-01-01T08:00:00+08:00", "2026-12-31"),
			ev(t, schemas.HukouCancelled, p, "c1", "2024-09-01T08:00:00+08:00", map[string]any{"reason": "emigration"})},
			[]hub.Interval{{Code: "230100", From: "2024-01-01", To: "2024-09-01"}}},
		{"a revocation written with a county's code ends it", []hub.Input{reg, issue("p1", "2024-01-01T08:00:00+08:00", "2026-12-31"),
			ev(t, schemas.ResidencePermitRevoked, p, "x1", "2024-05-10T08:00:00+08:00", map[string]any{"city_code": "230102"})},
			[]hub.Interval{{Code: "230100", From: "2024-01-01", To: "2024-05-10"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			states, _ := run(tc.events)
			st := storedBefore(t, states[p], func(st *State) {
				for _, line := range [][]point{st.HukouLine, st.PermitLine} {
					for i := range line {
						line[i].Until, line[i].Reason = "", ""
					}
				}
			})
			if got := st.PermitSpans(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("permit spans %+v, want %+v", got, tc.want)
			}
		})
	}
}
