package merge

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestPermitWalkKeptAsDerived: within a batch, the residence permits of a
// person's next event come from the permit walk the batch keeps, gone on
// over each permit point added after all others (resume), not from the
// whole timelines walked again. Over random sequences — permits issued,
// renewed and revoked in several cities and under county codes,
// valid_until past, near and long-term, registrations, migrations,
// cancellations and deaths, mostly in time order, some late or at equal
// times, on fresh states and on states stored before permit points
// carried valid_until — the history must name each section exactly when
// deriving it whole before and after the event differs, and the walk
// kept at the end must hold what walking the final state holds.
func TestPermitWalkKeptAsDerived(t *testing.T) {
	p := id(t, male)
	r := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2020, 1, 1, 8, 0, 0, 0, schemas.CST())
	random := func(n int, when string) hub.Input { return randomEvent(t, r, p, permitKinds, n, when) }
	// check runs rest in one batch on loaded, against one event at a
	// time with each section derived whole.
	check := func(label string, loaded *State, rest []hub.Input) {
		t.Helper()
		out := Batch(map[citizenid.ID]*State{p: loaded}, rest, now)
		st := loaded.Clone()
		for i, in := range rest {
			next := st.Clone()
			next.apply(&in.Event)
			for _, sec := range changeable[in.Event.Type] {
				want := !sectionEqual(st.section(sec), next.section(sec))
				if got := slices.Contains(out.History[i].Change.Sections, string(sec)); got != want {
					t.Fatalf("%s, event %d (%s at %s): history names %s: %v, derived whole it changed: %v",
						label, i, in.Event.Type, in.Event.Time, sec, got, want)
				}
			}
			st = next
		}
		got := out.States[p]
		if w := out.walks[got]; w != nil {
			if held, want := w.held, st.walkPermits(false).held; !maps.Equal(held, want) {
				t.Fatalf("%s: the walk kept holds %+v, walking the final state holds %+v", label, held, want)
			}
		}
		if a, b := out.section(got, schemas.SecResidencePermits), st.section(schemas.SecResidencePermits); !sectionEqual(a, b) {
			t.Fatalf("%s: residence permits from the walk kept %+v, derived whole %+v", label, a, b)
		}
	}
	// stored applies events to a new state, as a stored state holds
	// them; legacy strips valid_until from its permit points.
	stored := func(events []hub.Input, legacy bool) *State {
		st := NewState(p)
		for i := range events {
			st.apply(&events[i].Event)
		}
		if legacy {
			for i := range st.PermitLine {
				st.PermitLine[i].Until = ""
			}
		}
		return st
	}

	// A stored point without valid_until reads it from its register while
	// the register's latest: an issue in Harbin already expired when
	// issued is not held, and leaves Qiqihar's permit held; revoking
	// Harbin's changes what that point meant, and walking again from
	// the start holds neither.
	issue := func(eid, when, city, until string) hub.Input {
		return ev(t, schemas.ResidencePermitIssued, p, eid, when, map[string]any{
			"city_code": city, "address_code": permitAddresses[city], "basis": "employment", "valid_until": until})
	}
	revoke := func(eid, when, city string) hub.Input {
		return ev(t, schemas.ResidencePermitRevoked, p, eid, when, map[string]any{"city_code": city})
	}
	check("stored point without valid_until", stored([]hub.Input{
		issue("q1", "2020-01-01T08:00:00+08:00", "230200", "2030-12-31"),
		issue("h1", "2020-02-01T08:00:00+08:00", "230100", "2019-12-31"),
	}, true), []hub.Input{
		revoke("b1", "2020-03-01T08:00:00+08:00", "110100"),
		revoke("h2", "2020-04-01T08:00:00+08:00", "230100"),
	})

	for round := range 1000 {
		// Mostly in time order, as a renewal or a runaway export comes;
		// some late, some at the time of the event before.
		var events []hub.Input
		hour := 0
		for n := range 4 + r.IntN(40) {
			when := hour
			switch k := r.IntN(10); {
			case k == 0:
				when = r.IntN(hour + 1)
			case k == 1:
			default:
				hour += 1 + r.IntN(24*60)
				when = hour
			}
			events = append(events, random(round*100+n, base.Add(time.Duration(when)*time.Hour).Format(time.RFC3339)))
		}
		// The first events stored, the rest in one batch; half the
		// stored states without valid_until on their permit points.
		split := r.IntN(len(events))
		check(fmt.Sprintf("round %d", round), stored(events[:split], round%2 == 1), events[split:])
	}
}

// permitAddresses is an address in each city or county permits are
// issued in.
var permitAddresses = map[string]string{"230100": "230102001001", "230102": "230102001001", "230200": "230202001001", "110100": "110101001001"}

// Kinds of event randomEvent draws from: the first permitKinds are the
// permit and registration events the permit walk reads; allKinds adds
// identity corrections, enrolments and graduations.
const (
	permitKinds = 12
	allKinds    = 16
)

// randomEvent draws one of the first kinds kinds of event of p, with id
// "e<n>", at when: permits issued (in cities and under county codes, with
// valid_until past, near, long-term or none) and revoked, registrations,
// migrations, cancellations, deaths, and with allKinds identity
// corrections, enrolments and graduations (a quarter of them without a
// level, as stored states may hold).
func randomEvent(t *testing.T, r *rand.Rand, p citizenid.ID, kinds, n int, when string) hub.Input {
	t.Helper()
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	cities := []string{"230100", "230102", "230200", "110100"} // permitAddresses' keys, in a fixed order
	untils := []string{"", "2019-12-31", "2020-03-01", "2030-12-31", "9999-12-31"}
	evid := fmt.Sprintf("e%d", n)
	switch k := r.IntN(kinds); {
	case k < 6:
		city := pick(cities)
		data := map[string]any{"city_code": city, "address_code": permitAddresses[city], "basis": pick([]string{"employment", "study"})}
		if u := pick(untils); u != "" {
			data["valid_until"] = u
		}
		return ev(t, schemas.ResidencePermitIssued, p, evid, when, data)
	case k < 8:
		return ev(t, schemas.ResidencePermitRevoked, p, evid, when, map[string]any{"city_code": pick(cities)})
	case k == 8:
		return registered(t, p, evid, when, "440106001001", "1", "1990-01-01")
	case k == 9:
		return ev(t, schemas.HukouMigrated, p, evid, when, map[string]any{
			"from_address_code": "440106001001", "to_address_code": "230602013004", "reason": "employment"})
	case k == 10:
		return ev(t, schemas.HukouCancelled, p, evid, when, map[string]any{"reason": pick([]string{"death", "emigration", "military", "duplicate"})})
	case k == 11:
		return ev(t, schemas.DeathCertified, p, evid, when, map[string]any{"date_of_death": pick([]string{"2020-02-01", "2021-06-30"}), "certificate_no": "D1"})
	case k == 12:
		return ev(t, schemas.IdentityCorrected, p, evid, when, map[string]any{"name": pick([]string{"张伟", "李四"})})
	case k == 13:
		return ev(t, schemas.EducationEnrolled, p, evid, when, map[string]any{"institution": pick([]string{"I1", "I2"}),
			"level": pick([]string{"21", "31"}), "region": "230102", "start": pick([]string{"2020-09-01", "2021-09-01"})})
	default:
		in := ev(t, schemas.EducationGraduated, p, evid, when, map[string]any{"institution": pick([]string{"I1", "I2"}),
			"level": pick([]string{"21", "31"}), "date": pick([]string{"2024-07-01", "2025-07-01"}), "certificate_no": "G"})
		if r.IntN(4) == 0 {
			in.Event.Payload.(*schemas.EducationGraduatedData).Level = ""
		}
		return in
	}
}
