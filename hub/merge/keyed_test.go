package merge

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestKeyedSectionsChangedAsDerived: for events about one contract,
// property, lease, business, enrolment or graduation, a merge tells
// whether the employment, housing, tax or education section changed from
// that entry alone (entryOf). Over random sequences — entries started,
// ended, registered, transferred, enrolled and graduated from, late, out
// of order, at equal times, repeated — the history must name the section
// exactly when deriving the whole section before and after the event
// differs.
func TestKeyedSectionsChangedAsDerived(t *testing.T) {
	p := id(t, male)
	emp := uscc(t, "91230102MA1234567")
	bizID := func(key string) string { return uscc(t, "92230102MA765432"+key) }
	times := []string{"2021-01-01T00:00:00+08:00", "2022-06-01T00:00:00+08:00", "2022-06-01T00:00:00+08:00", "2023-03-01T09:00:00+08:00", "2024-12-31T00:00:00+08:00"}
	dates := []string{"2021-01-01", "2022-06-01", "2023-03-01", "2024-12-31"}
	levels := []string{"21", "31", "41"}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	random := func(n int) hub.Input {
		key := fmt.Sprint(r.IntN(3))
		when := pick(times)
		evid := fmt.Sprintf("e%d", n)
		switch r.IntN(10) {
		case 0:
			return ev(t, schemas.ContractStarted, p, evid, when, map[string]any{"contract_id": "C" + key, "employer_id": emp,
				"employer_name": "龙江机械", "work_region": "230102", "start": pick(dates)})
		case 1:
			return ev(t, schemas.ContractEnded, p, evid, when, map[string]any{"contract_id": "C" + key, "end": pick(dates)})
		case 2:
			return ev(t, schemas.PropertyRegistered, p, evid, when, map[string]any{"property_id": "P" + key,
				"address_code": pick([]string{"230102001001", "230103001001"}), "acquired": "purchase"})
		case 3:
			return ev(t, schemas.PropertyTransferred, p, evid, when, map[string]any{"property_id": "P" + key})
		case 4:
			return ev(t, schemas.RentalRegistered, p, evid, when, map[string]any{"lease_id": "L" + key,
				"address_code": "230102001001", "start": pick(dates)})
		case 5:
			return ev(t, schemas.RentalEnded, p, evid, when, map[string]any{"lease_id": "L" + key, "end": pick(dates)})
		case 6:
			return ev(t, schemas.BusinessRegistered, p, evid, when, map[string]any{"business_id": bizID(key), "region": pick([]string{"230102", "230103"})})
		case 7:
			return ev(t, schemas.BusinessDeregistered, p, evid, when, map[string]any{"business_id": bizID(key)})
		case 8:
			return ev(t, schemas.EducationEnrolled, p, evid, when, map[string]any{"institution": "I" + key,
				"level": pick(levels), "region": pick([]string{"230102", "230103"}), "start": pick(dates)})
		default:
			return ev(t, schemas.EducationGraduated, p, evid, when, map[string]any{"institution": "I" + key,
				"level": pick(levels), "date": pick(dates), "certificate_no": "G" + key})
		}
	}
	for round := range 200 {
		var events []hub.Input
		for n := range 2 + r.IntN(30) {
			events = append(events, random(round*100+n))
		}
		// The whole sequence in one batch, against one event at a time
		// with each section derived whole.
		out := Batch(map[citizenid.ID]*State{}, events, now)
		st := NewState(p)
		for i, in := range events {
			sec, _, ok := st.entryOf(&in.Event)
			if !ok {
				t.Fatalf("%s: not a keyed event", in.Event.Type)
			}
			before := st.section(sec)
			next := st.Clone()
			next.apply(&in.Event)
			want := !sectionEqual(before, next.section(sec))
			got := slices.Contains(out.History[i].Change.Sections, string(sec))
			if got != want {
				t.Fatalf("round %d, event %d (%s at %s): history names %s: %v, derived whole it changed: %v",
					round, i, in.Event.Type, in.Event.Time, sec, got, want)
			}
			st = next
		}
	}
}

// BenchmarkManyContractsOnePerson: an event for a person who holds many
// contracts already, in a batch of its own (the worst case: the state is
// cloned for each batch). Its cost grows with the contracts only by the
// clone, not by deriving the employment section.
func BenchmarkManyContractsOnePerson(b *testing.B) {
	p := id(b, male)
	emp := uscc(b, "91230102MA1234567")
	contract := func(i int) hub.Input {
		return ev(b, schemas.ContractStarted, p, fmt.Sprintf("emp-%d", i), "2023-03-01T00:00:00+08:00", map[string]any{
			"contract_id": fmt.Sprintf("C%d", i), "employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2023-03-01"})
	}
	for _, held := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			var events []hub.Input
			for i := range held {
				events = append(events, contract(i))
			}
			states := map[citizenid.ID]*State{p: Batch(nil, events, now).States[p]}
			next := make([]hub.Input, b.N)
			for i := range next {
				next[i] = contract(held + i)
			}
			b.ResetTimer()
			for i := range b.N {
				Batch(states, next[i:i+1], now)
			}
		})
	}
}
