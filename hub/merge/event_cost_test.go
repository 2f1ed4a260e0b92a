package merge

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// manyEntries are the ways a person comes to hold very many entries in
// one section (a department's placeholder ID for "unknown", a runaway
// export): held(i) is the i-th entry held, next(i) an event arriving
// after them.
func manyEntries(t testing.TB) []struct {
	name       string
	held, next func(i int) hub.Input
} {
	p := id(t, male)
	emp := uscc(t, "91230102MA1234567")
	base := time.Date(2010, 1, 1, 0, 0, 0, 0, schemas.CST())
	when := func(i int) string { return base.Add(time.Duration(i) * time.Hour).Format(time.RFC3339) }
	contract := func(i int) hub.Input {
		return ev(t, schemas.ContractStarted, p, fmt.Sprintf("c-%d", i), when(i), map[string]any{
			"contract_id": fmt.Sprintf("C%d", i), "employer_id": emp, "employer_name": "龙江机械", "work_region": "230102", "start": "2023-03-01"})
	}
	enrolment := func(i int) hub.Input {
		return ev(t, schemas.EducationEnrolled, p, fmt.Sprintf("e-%d", i), when(i), map[string]any{
			"institution": fmt.Sprintf("I%d", i), "level": "21", "region": "230102", "start": "2020-09-01"})
	}
	graduation := func(i int) hub.Input {
		return ev(t, schemas.EducationGraduated, p, fmt.Sprintf("g-%d", i), when(i), map[string]any{
			"institution": fmt.Sprintf("I%d", i), "level": []string{"31", "21"}[i%2], "date": "2024-07-01", "certificate_no": fmt.Sprintf("G%d", i)})
	}
	renewal := func(i int) hub.Input {
		return ev(t, schemas.ResidencePermitIssued, p, fmt.Sprintf("p-%d", i), when(i), map[string]any{
			"city_code": "230100", "address_code": "230102001001", "basis": "employment"})
	}
	move := func(i int) hub.Input {
		city, addr := "230100", "230102001001"
		if i%2 == 1 {
			city, addr = "230200", "230202001001"
		}
		return ev(t, schemas.ResidencePermitIssued, p, fmt.Sprintf("m-%d", i), when(i), map[string]any{
			"city_code": city, "address_code": addr, "basis": "employment", "valid_until": "2030-12-31"})
	}
	return []struct {
		name       string
		held, next func(i int) hub.Input
	}{
		{"contract", contract, contract},
		{"education enrolment", enrolment, enrolment},
		{"graduation, enrolments held", enrolment, graduation},
		{"residence permit renewed", renewal, renewal},
		{"residence permit moving between two cities", move, move},
	}
}

// TestEventCostFlatInSectionSize: one more event of a person costs the
// same whether they hold 100 entries in the section it touches or 4,000.
// An event that derived the whole section before and after (every
// enrolment copied and sorted, every permit and registration point
// walked) made a batch of k events of a person holding n entries cost
// k·n, and one such person held back every partition of the instance.
// Work is counted in bytes allocated, which unlike time do not depend on
// the machine's load: the marginal bytes of one more event in a batch.
func TestEventCostFlatInSectionSize(t *testing.T) {
	const k = 200
	marginal := func(held, next func(int) hub.Input, n int) float64 {
		// The entries held, folded in directly (a batch of them would
		// itself take n² work before the fix).
		var st *State
		for i := range n {
			in := held(i)
			if st == nil {
				st = NewState(in.Event.Subject)
			}
			st.apply(&in.Event)
			st.Ver++
		}
		states := map[citizenid.ID]*State{st.ID: st}
		events := make([]hub.Input, k+1)
		for i := range events {
			events[i] = next(n + i)
		}
		bytes := func(in []hub.Input) float64 {
			Batch(states, in, now) // warm up
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			Batch(states, in, now)
			runtime.ReadMemStats(&after)
			return float64(after.TotalAlloc - before.TotalAlloc)
		}
		return (bytes(events) - bytes(events[:1])) / k
	}
	for _, c := range manyEntries(t) {
		t.Run(c.name, func(t *testing.T) {
			small, large := marginal(c.held, c.next, 100), marginal(c.held, c.next, 4000)
			t.Logf("bytes allocated per event: %.0f holding 100, %.0f holding 4,000", small, large)
			// The allowance covers a timeline's amortized growth: the
			// batch's copy of the state has no room to spare, and one
			// reallocation of 4,000 points falls within the k events.
			if large > 3*small+4096 {
				t.Errorf("an event of a person holding 4,000 entries allocates %.0f bytes, against %.0f holding 100 (%.0f×): "+
					"each event derives the whole section", large, small, large/small)
			}
		})
	}
}

// BenchmarkManyEntriesOnePerson: an event for a person who holds many
// entries in its section already, in a batch of its own (the worst case:
// the state is copied for each batch), as BenchmarkManyContractsOnePerson
// for the other sections.
func BenchmarkManyEntriesOnePerson(b *testing.B) {
	for _, c := range manyEntries(b) {
		for _, n := range []int{100, 10_000} {
			b.Run(fmt.Sprintf("%s/held=%d", c.name, n), func(b *testing.B) {
				var st *State
				for i := range n {
					in := c.held(i)
					if st == nil {
						st = NewState(in.Event.Subject)
					}
					st.apply(&in.Event)
					st.Ver++
				}
				states := map[citizenid.ID]*State{st.ID: st}
				next := make([]hub.Input, b.N)
				for i := range next {
					next[i] = c.next(n + i)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					Batch(states, next[i:i+1], now)
				}
			})
		}
	}
}
