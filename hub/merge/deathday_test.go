package merge

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestDeathEndsOnDateOfDeath: a death certificate is issued (its event
// time, the importer's 签发日期) days after the death; the registered
// population and the permit holders stop counting the person on the
// certified date of death, not on the issue day, so someone who died on
// 30 December is not counted on the year-end reference day.
func TestDeathEndsOnDateOfDeath(t *testing.T) {
	p := id(t, male)
	const a, b, harbin = "230602013004", "230602013001", "230100" // registered in Daqing, permits in Harbin
	reg := func(eid, when, addr string) hub.Input { return registered(t, p, eid, when, addr, "1", "1990-01-01") }
	move := func(eid, when, to string) hub.Input {
		return ev(t, schemas.HukouMigrated, p, eid, when, map[string]any{"from_address_code": a, "to_address_code": to, "reason": "employment"})
	}
	cert := func(eid, when, died string) hub.Input {
		return ev(t, schemas.DeathCertified, p, eid, when, map[string]any{"date_of_death": died, "certificate_no": "D-" + eid})
	}
	issue := func(eid, when, city, until string) hub.Input {
		address := "230103001001"
		if city == "440100" {
			address = "440106001001" // in Guangzhou
		}
		return ev(t, schemas.ResidencePermitIssued, p, eid, when, map[string]any{"city_code": city, "address_code": address, "basis": "employment", "valid_until": until})
	}
	cancel := func(eid, when string) hub.Input {
		return ev(t, schemas.HukouCancelled, p, eid, when, map[string]any{"reason": "death"})
	}
	restore := func(eid, when string) hub.Input {
		return ev(t, schemas.HukouRegistered, p, eid, when, map[string]any{"name": "张伟", "gender": "1", "birth_date": "1990-01-01",
			"ethnicity": "01", "address_code": a, "household_id": "H1", "reason": "restored"})
	}
	tests := []struct {
		name        string
		events      []hub.Input
		wantReg     []hub.Interval
		wantPermits []hub.Interval
	}{
		{name: "certified after the year end, dead before it",
			events:  []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), cert("d1", "2026-01-04T09:00:00+08:00", "2025-12-30")},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2025-12-30"}}},
		{name: "a migration registered between the death and the certificate does not count",
			events: []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), move("m1", "2026-01-02T10:00:00+08:00", b),
				cert("d1", "2026-01-04T09:00:00+08:00", "2025-12-30")},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2025-12-30"}}},
		{name: "a corrected certificate moves the day",
			events: []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), cert("d1", "2026-01-04T09:00:00+08:00", "2025-12-30"),
				cert("d2", "2026-01-20T09:00:00+08:00", "2025-12-29")},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2025-12-29"}}},
		{name: "a date after the certificate's own day is not believed",
			events:  []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), cert("d1", "2026-01-04T09:00:00+08:00", "2026-02-01")},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2026-01-04"}}},
		{name: "the permit ends on the date of death; one issued after it never counts",
			events: []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), issue("p1", "2025-01-01T08:00:00+08:00", harbin, "2026-12-31"),
				issue("p2", "2026-01-02T08:00:00+08:00", "440100", "2027-12-31"), cert("d1", "2026-01-04T09:00:00+08:00", "2025-12-30")},
			wantReg:     []hub.Interval{{Code: a, From: "2020-01-01", To: "2025-12-30"}},
			wantPermits: []hub.Interval{{Code: harbin, From: "2025-01-01", To: "2025-12-30"}}},
		{name: "a restoration after the death counts again, and a permit issued after it is held",
			events: []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), issue("p1", "2024-01-01T08:00:00+08:00", harbin, "2030-12-31"),
				cancel("c1", "2025-03-10T08:00:00+08:00"), restore("r2", "2025-05-01T08:00:00+08:00"),
				cert("d1", "2025-03-01T09:00:00+08:00", "2025-02-28"), issue("p2", "2025-06-01T08:00:00+08:00", harbin, "2030-12-31")},
			wantReg:     []hub.Interval{{Code: a, From: "2020-01-01", To: "2025-02-28"}, {Code: a, From: "2025-05-01"}},
			wantPermits: []hub.Interval{{Code: harbin, From: "2024-01-01", To: "2025-02-28"}, {Code: harbin, From: "2025-06-01", To: "2031-01-01"}}},
		{name: "a death certified after a restoration ends the count again",
			events: []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), cancel("c1", "2025-01-10T08:00:00+08:00"),
				restore("r2", "2025-02-01T08:00:00+08:00"), cert("d1", "2025-03-01T09:00:00+08:00", "2025-02-28")},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2025-01-10"}, {Code: a, From: "2025-02-01", To: "2025-02-28"}}},
		// The certificate, stamped after the registration, keeps the
		// person deceased: the counts end on the date of death, not on
		// the registration's day, nor on a cancellation after the death.
		{name: "a registration between the date of death and the certificate does not count",
			events: []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), issue("p1", "2023-01-01T08:00:00+08:00", harbin, "2030-12-31"),
				reg("r2", "2024-06-01T10:00:00+08:00", b), cert("d1", "2024-07-01T10:00:00+08:00", "2024-02-28")},
			wantReg:     []hub.Interval{{Code: a, From: "2020-01-01", To: "2024-02-28"}},
			wantPermits: []hub.Interval{{Code: harbin, From: "2023-01-01", To: "2024-02-28"}}},
		{name: "a restoration between the date of death and the certificate does not count",
			events: []hub.Input{reg("r1", "2020-01-01T08:00:00+08:00", a), cancel("c1", "2024-03-01T10:00:00+08:00"),
				restore("r2", "2024-06-01T10:00:00+08:00"), cert("d1", "2024-07-01T10:00:00+08:00", "2024-02-28")},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2024-02-28"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every arrival order gives the same spans.
			for _, batches := range shuffledOneByOne(tc.events, rand.New(rand.NewPCG(5, 6)), 5) {
				states, _ := run(batches...)
				if got := states[p].Registrations(); !reflect.DeepEqual(got, tc.wantReg) {
					t.Fatalf("registrations %+v, want %+v", got, tc.wantReg)
				}
				if got := states[p].PermitSpans(); !reflect.DeepEqual(got, tc.wantPermits) {
					t.Fatalf("permits %+v, want %+v", got, tc.wantPermits)
				}
			}
		})
	}
}

// TestEachDeathKeepsItsDate: a person who dies, has the hukou restored
// and dies again has two deaths, each ending the counts on its own
// certified date of death; the later death's certificate does not move
// the earlier death's end to that certificate's day. A correction (a
// later certificate before the restoration) still replaces the date of
// the death it corrects. Every arrival order gives the same spans.
func TestEachDeathKeepsItsDate(t *testing.T) {
	p := id(t, male)
	const a, harbin = "230602013004", "230100" // registered in Daqing
	reg := registered(t, p, "r1", "2020-01-01T08:00:00+08:00", a, "1", "1990-01-01")
	cert := func(eid, when, died string) hub.Input {
		return ev(t, schemas.DeathCertified, p, eid, when, map[string]any{"date_of_death": died, "certificate_no": "D-" + eid})
	}
	restore := ev(t, schemas.HukouRegistered, p, "r2", "2023-09-01T08:00:00+08:00", map[string]any{"name": "张伟", "gender": "1",
		"birth_date": "1990-01-01", "ethnicity": "01", "address_code": a, "household_id": "H1", "reason": "restored"})
	issue := func(eid, when string) hub.Input {
		return ev(t, schemas.ResidencePermitIssued, p, eid, when, map[string]any{"city_code": harbin, "address_code": "230103001001",
			"basis": "employment", "valid_until": "2030-12-31"})
	}
	deathA := cert("d1", "2023-06-01T09:00:00+08:00", "2023-01-10")
	correctionA := cert("d1c", "2023-07-01T09:00:00+08:00", "2023-01-05")
	deathB := cert("d2", "2026-11-01T09:00:00+08:00", "2026-10-01")
	correctionB := cert("d2c", "2026-11-20T09:00:00+08:00", "2026-09-30")
	tests := []struct {
		name        string
		events      []hub.Input
		wantReg     []hub.Interval
		wantPermits []hub.Interval
	}{
		{name: "the earlier death ends on its own date",
			events:  []hub.Input{reg, deathA, restore, deathB},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-10"}, {Code: a, From: "2023-09-01", To: "2026-10-01"}}},
		{name: "a correction of the earlier death moves its date",
			events:  []hub.Input{reg, deathA, correctionA, restore, deathB},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-05"}, {Code: a, From: "2023-09-01", To: "2026-10-01"}}},
		{name: "a correction of the later death moves only its date",
			events:  []hub.Input{reg, deathA, restore, deathB, correctionB},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-10"}, {Code: a, From: "2023-09-01", To: "2026-09-30"}}},
		{name: "both deaths corrected",
			events:  []hub.Input{reg, deathA, correctionA, restore, deathB, correctionB},
			wantReg: []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-05"}, {Code: a, From: "2023-09-01", To: "2026-09-30"}}},
		{name: "permits end on each death's own date",
			events: []hub.Input{reg, issue("p1", "2021-01-01T08:00:00+08:00"), deathA, correctionA, restore,
				issue("p2", "2023-10-01T08:00:00+08:00"), deathB},
			wantReg:     []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-05"}, {Code: a, From: "2023-09-01", To: "2026-10-01"}},
			wantPermits: []hub.Interval{{Code: harbin, From: "2021-01-01", To: "2023-01-05"}, {Code: harbin, From: "2023-10-01", To: "2026-10-01"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reversed := slices.Clone(tc.events)
			slices.Reverse(reversed)
			orders := append([][][]hub.Input{oneByOne(tc.events), oneByOne(reversed), {tc.events}},
				shuffledOneByOne(tc.events, rand.New(rand.NewPCG(7, 8)), 8)...)
			for _, batches := range orders {
				states, _ := run(batches...)
				if got := states[p].Registrations(); !reflect.DeepEqual(got, tc.wantReg) {
					t.Fatalf("registrations %+v, want %+v", got, tc.wantReg)
				}
				if got := states[p].PermitSpans(); !reflect.DeepEqual(got, tc.wantPermits) {
					t.Fatalf("permits %+v, want %+v", got, tc.wantPermits)
				}
			}
		})
	}
}

// TestDeathDateOfStatesStoredBefore: a state stored before certificate
// points carried their date of death has the date only in the death
// register, that of the latest certificate. Its spans are what they were
// when stored, and a later certificate, replacing the register, leaves
// the earlier death its date.
func TestDeathDateOfStatesStoredBefore(t *testing.T) {
	p := id(t, male)
	const a = "230102001001"
	reg := registered(t, p, "r1", "2020-01-01T08:00:00+08:00", a, "1", "1990-01-01")
	cert := func(eid, when, died string) hub.Input {
		return ev(t, schemas.DeathCertified, p, eid, when, map[string]any{"date_of_death": died, "certificate_no": "D-" + eid})
	}
	restore := ev(t, schemas.HukouRegistered, p, "r2", "2023-09-01T08:00:00+08:00", map[string]any{"name": "张伟", "gender": "1",
		"birth_date": "1990-01-01", "ethnicity": "01", "address_code": a, "household_id": "H1", "reason": "restored"})
	deathA := cert("d1", "2023-06-01T09:00:00+08:00", "2023-01-10")
	correctionA := cert("d1c", "2023-07-01T09:00:00+08:00", "2023-01-05")
	deathB := cert("d2", "2026-11-01T09:00:00+08:00", "2026-10-01")
	tests := []struct {
		name           string
		stored, later  []hub.Input
		wantStored     []hub.Interval
		wantAfterLater []hub.Interval
	}{
		{name: "a death, then a restoration and another death",
			stored: []hub.Input{reg, deathA}, later: []hub.Input{restore, deathB},
			wantStored:     []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-10"}},
			wantAfterLater: []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-10"}, {Code: a, From: "2023-09-01", To: "2026-10-01"}}},
		{name: "a corrected death, then a restoration and another death",
			stored: []hub.Input{reg, deathA, correctionA}, later: []hub.Input{restore, deathB},
			wantStored:     []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-05"}},
			wantAfterLater: []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-05"}, {Code: a, From: "2023-09-01", To: "2026-10-01"}}},
		{name: "the later death arrives before the restoration",
			stored: []hub.Input{reg, deathA}, later: []hub.Input{deathB, restore},
			wantStored:     []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-10"}},
			wantAfterLater: []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-01-10"}, {Code: a, From: "2023-09-01", To: "2026-10-01"}}},
		// Both deaths stored before: the earlier one's date was lost
		// with the register's, so it ends on its certificate's day, as
		// it did when stored.
		{name: "both deaths stored before",
			stored:         []hub.Input{reg, deathA, restore, deathB},
			wantStored:     []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-06-01"}, {Code: a, From: "2023-09-01", To: "2026-10-01"}},
			wantAfterLater: []hub.Interval{{Code: a, From: "2020-01-01", To: "2023-06-01"}, {Code: a, From: "2023-09-01", To: "2026-10-01"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			states, _ := run(oneByOne(tc.stored)...)
			st := storedBefore(t, states[p], func(st *State) {
				for i := range st.HukouLine {
					st.HukouLine[i].Died = ""
				}
			})
			if got := st.Registrations(); !reflect.DeepEqual(got, tc.wantStored) {
				t.Fatalf("registrations as stored %+v, want %+v", got, tc.wantStored)
			}
			states = map[citizenid.ID]*State{p: st}
			for _, in := range tc.later {
				for id, next := range Batch(states, []hub.Input{in}, now).States {
					states[id] = next
				}
			}
			if got := states[p].Registrations(); !reflect.DeepEqual(got, tc.wantAfterLater) {
				t.Fatalf("registrations after the later events %+v, want %+v", got, tc.wantAfterLater)
			}
		})
	}
}
