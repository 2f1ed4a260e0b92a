package merge

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestMixedBatchChangedAsDerived: several persons interleaved in one
// batch (sequential and parallel), permit, hukou, death, identity,
// enrolment and graduation events, stored states round-tripped through
// Marshal/Unmarshal and stripped of point fields a previous release did
// not write; the history must name each section exactly when deriving it
// whole before and after differs.
func TestMixedBatchChangedAsDerived(t *testing.T) {
	persons := []citizenid.ID{id(t, male), id(t, female), id(t, "23010219850303124")}
	r := rand.New(rand.NewPCG(13, 8))
	base := time.Date(2020, 1, 1, 8, 0, 0, 0, schemas.CST())
	random := func(p citizenid.ID, n int, when string) hub.Input { return randomEvent(t, r, p, allKinds, n, when) }
	for round := range 600 {
		loaded := map[citizenid.ID]*State{}
		var rest []hub.Input
		n := 0
		for pi, p := range persons {
			var events []hub.Input
			hour := 0
			for range 2 + r.IntN(25) {
				when := hour
				switch k := r.IntN(10); {
				case k == 0:
					when = r.IntN(hour + 1)
				case k == 1:
				default:
					hour += 1 + r.IntN(24*60)
					when = hour
				}
				n++
				events = append(events, random(p, round*1000+n, base.Add(time.Duration(when)*time.Hour).Format(time.RFC3339)))
			}
			split := r.IntN(len(events))
			st := NewState(p)
			for i := range events[:split] {
				st.apply(&events[i].Event)
			}
			if (round+pi)%2 == 1 {
				for i := range st.PermitLine {
					st.PermitLine[i].Until = ""
				}
				for i := range st.HukouLine {
					st.HukouLine[i].Reason, st.HukouLine[i].Died = "", ""
				}
			}
			if (round+pi)%3 == 2 { // stored in UTC, as before times were kept in CST
				utc := func(a *Stamp) { a.T = a.T.UTC() }
				for i := range st.PermitLine {
					utc(&st.PermitLine[i].At)
				}
				for i := range st.HukouLine {
					utc(&st.HukouLine[i].At)
				}
				for _, reg := range st.Permits {
					utc(&reg.At)
				}
				utc(&st.Lifecycle.At)
				utc(&st.Death.At)
				for _, reg := range st.Graduations {
					utc(&reg.At)
				}
				for _, reg := range st.Enrolments {
					utc(&reg.At)
				}
			}
			if round%7 == 3 && pi == 0 { // stored before the timelines existed
				st.PermitLine, st.HukouLine = nil, nil
			}
			b, err := Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if st, err = Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			loaded[p] = st
			// interleave
			for _, e := range events[split:] {
				at := r.IntN(len(rest) + 1)
				rest = slices.Insert(rest, at, e)
			}
		}
		if round%10 == 0 { // padding to take the parallel path
			for i := range 600 {
				q := id(t, fmt.Sprintf("110101198001%05d", 10000+i)[:17])
				rest = append(rest, ev(t, schemas.IdentityCorrected, q, fmt.Sprintf("pad%d-%d", round, i), "2020-01-01T00:00:00+08:00", map[string]any{"name": "王五"}))
			}
		}
		out := Batch(loaded, rest, now)
		cur := map[citizenid.ID]*State{}
		for p, s := range loaded {
			cur[p] = s.Clone()
		}
		for i, in := range rest {
			st := cur[in.Event.Subject]
			if st == nil {
				continue
			}
			next := st.Clone()
			next.apply(&in.Event)
			for _, sec := range changeable[in.Event.Type] {
				want := !sectionEqual(st.section(sec), next.section(sec))
				if got := slices.Contains(out.History[i].Change.Sections, string(sec)); got != want {
					t.Fatalf("round %d, event %d (%s %s at %s, %+v): history names %s: %v, derived whole it changed: %v\nbefore %+v\nafter %+v",
						round, i, in.Event.Subject, in.Event.Type, in.Event.Time, in.Event.Payload, sec, got, want, st.section(sec), next.section(sec))
				}
			}
			cur[in.Event.Subject] = next
		}
	}
}

// TestSectionShortcutCasesAnySplit: the cases the entry and permit-walk
// shortcuts must get right (a late issue between renewals, a county
// revocation at an equal time, a death before a permit, graduations
// without a level), each split over two batches at every point and run
// with "now" a day before and years after the permits' valid_until: the
// history names each section exactly when deriving it whole differs, and
// the record does not depend on now or on where the batches split.
func TestSectionShortcutCasesAnySplit(t *testing.T) {
	p := id(t, male)
	issue := func(eid, when, city, until string) hub.Input {
		addr := map[string]string{"230100": "230102001001", "230102": "230102001001", "230200": "230202001001"}[city]
		d := map[string]any{"city_code": city, "address_code": addr, "basis": "employment"}
		if until != "" {
			d["valid_until"] = until
		}
		return ev(t, schemas.ResidencePermitIssued, p, eid, when, d)
	}
	revoke := func(eid, when, city string) hub.Input {
		return ev(t, schemas.ResidencePermitRevoked, p, eid, when, map[string]any{"city_code": city})
	}
	grad := func(eid, when, inst, level string) hub.Input {
		in := ev(t, schemas.EducationGraduated, p, eid, when, map[string]any{"institution": inst, "level": "21", "date": "2024-07-01", "certificate_no": "G"})
		in.Event.Payload.(*schemas.EducationGraduatedData).Level = level
		return in
	}
	enrol := func(eid, when, inst string) hub.Input {
		return ev(t, schemas.EducationEnrolled, p, eid, when, map[string]any{"institution": inst, "level": "21", "region": "230102", "start": "2020-09-01"})
	}
	tests := []struct {
		name   string
		events []hub.Input
	}{
		{"renewals, then a late issue in another city between them", []hub.Input{
			issue("a", "2020-01-01T08:00:00+08:00", "230100", "2020-06-30"),
			issue("b", "2020-06-01T08:00:00+08:00", "230100", "2021-06-30"),
			issue("c", "2020-03-01T08:00:00+08:00", "230200", "2021-06-30"),
			issue("d", "2021-06-01T08:00:00+08:00", "230100", "2022-06-30")}},
		{"county revocation after a city issue, equal times", []hub.Input{
			issue("a", "2020-01-01T08:00:00+08:00", "230100", ""),
			revoke("b", "2020-01-01T08:00:00+08:00", "230102"),
			issue("c", "2020-01-01T08:00:00+08:00", "230102", "2030-01-01")}},
		{"death, registration, identity correction, permit", []hub.Input{
			issue("a", "2020-01-01T08:00:00+08:00", "230100", ""),
			ev(t, schemas.DeathCertified, p, "d", "2020-02-01T08:00:00+08:00", map[string]any{"date_of_death": "2020-01-15", "certificate_no": "D"}),
			ev(t, schemas.IdentityCorrected, p, "i", "2020-02-02T08:00:00+08:00", map[string]any{"name": "李四"}),
			issue("b", "2020-03-01T08:00:00+08:00", "230100", ""),
			registered(t, p, "r", "2020-04-01T08:00:00+08:00", "230102001001", "1", "1990-01-01"),
			issue("c", "2020-05-01T08:00:00+08:00", "230100", "")}},
		{"graduations without level, twice at one institution", []hub.Input{
			enrol("e1", "2020-01-01T08:00:00+08:00", "I1"),
			grad("g1", "2020-02-01T08:00:00+08:00", "I1", ""),
			grad("g2", "2020-03-01T08:00:00+08:00", "I1", "21"),
			grad("g3", "2020-04-01T08:00:00+08:00", "I1", "21"),
			grad("g4", "2020-05-01T08:00:00+08:00", "I2", ""),
			enrol("e2", "2020-06-01T08:00:00+08:00", "I1")}},
	}
	nows := []time.Time{time.Date(2020, 6, 29, 0, 0, 0, 0, time.UTC), time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want *hub.Record
			for split := range len(tc.events) + 1 {
				for _, now := range nows {
					loaded := map[citizenid.ID]*State{}
					if split > 0 {
						loaded = Batch(nil, tc.events[:split], nows[0]).States
					}
					out := Batch(loaded, tc.events[split:], now)
					st := NewState(p)
					if s := loaded[p]; s != nil {
						st = s.Clone()
					}
					for i, in := range tc.events[split:] {
						next := st.Clone()
						next.apply(&in.Event)
						for _, sec := range changeable[in.Event.Type] {
							w := !sectionEqual(st.section(sec), next.section(sec))
							if got := slices.Contains(out.History[i].Change.Sections, string(sec)); got != w {
								t.Fatalf("split %d now %s event %s: history names %s: %v, derived whole: %v", split, now, in.Event.ID, sec, got, w)
							}
						}
						st = next
					}
					if s := out.States[p]; s != nil {
						r := s.Record()
						r.UpdatedAt, r.Version = time.Time{}, 0
						if want == nil {
							want = &r
						} else if !reflect.DeepEqual(*want, r) {
							t.Fatalf("split %d now %s: record %+v, want %+v", split, now, r, *want)
						}
					}
				}
			}
		})
	}
}
