package eligibility

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// TestSameTimeOrderFollowsTheRecord: changes of one time that start and
// end leases and contracts are taken as the record takes them, whatever
// order they arrive in: a lease row deleted and inserted again in one
// transaction beside another lease's insert (pophub cdc, all at the
// commit time) stays running; a finished contract back-filled beside
// another contract's start stays ended. The order is one total order, so
// no arrival order can turn a decision.
func TestSameTimeOrderFollowsTheRecord(t *testing.T) {
	who := storetest.ValidID(5)
	at := time.Date(2025, 1, 10, 9, 0, 0, 0, schemas.CST())
	rental := func(key string, v int64) hub.Input {
		return storetest.Event(t, schemas.RentalRegistered, who, publisher.EventID(schemas.Housing, key, v), at,
			schemas.RentalRegisteredData{LeaseID: key, AddressCode: "230102001002", Start: "2024-01-01"})
	}
	contract := func(id, key string) hub.Input {
		return storetest.Event(t, schemas.ContractStarted, who, publisher.EventID(schemas.Employment, key, 1), at,
			schemas.ContractStartedData{ContractID: id, EmployerID: "91230102MA1B2C3D46", EmployerName: "示例公司", WorkRegion: "230602", Start: "2023-01-01"})
	}
	tests := []struct {
		name   string
		before []hub.Input
		same   []hub.Input
		// running says, per key, whether the record shows it running.
		running map[string]bool
	}{
		{"a lease replaced in one transaction beside another lease's insert",
			[]hub.Input{storetest.Event(t, schemas.RentalRegistered, who, publisher.EventID(schemas.Housing, "L1", 1), at.AddDate(0, -6, 0),
				schemas.RentalRegisteredData{LeaseID: "L1", AddressCode: "230102001002", Start: "2024-01-01"})},
			[]hub.Input{
				storetest.Event(t, schemas.RentalEnded, who, publisher.EventID(schemas.Housing, "L1", 10), at, schemas.RentalEndedData{LeaseID: "L1", End: "2025-01-10"}),
				rental("L1", 11), rental("L2", 12),
			},
			map[string]bool{"L1": true, "L2": true}},
		{"a finished contract back-filled beside another contract's start", nil,
			[]hub.Input{
				contract("C1", "签订\x1fC1"),
				storetest.Event(t, schemas.ContractEnded, who, publisher.EventID(schemas.Employment, "终止\x1fC1", 1), at, schemas.ContractEndedData{ContractID: "C1", End: "2024-12-31"}),
				contract("C2", "签订\x1fC2"),
			},
			map[string]bool{"C1": false, "C2": true}},
	}
	for _, tc := range tests {
		for _, arrival := range permutations(tc.same) {
			t.Run(tc.name, func(t *testing.T) {
				in := append(slices.Clone(tc.before), arrival...)
				out := merge.Batch(nil, in, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
				rec := out.States[who].Record()
				var history []hub.Change
				for _, e := range out.History {
					history = append(history, e.Change)
				}
				f := gather(&rec, history, at.AddDate(0, 1, 0))
				for key, want := range tc.running {
					if got := recordRunning(rec, key); got != want {
						t.Fatalf("arrival %s: the record shows %s running: %v, want %v", ids(arrival), key, got, want)
					}
					if got := spanOpen(append(slices.Clone(f.rentals), f.contracts...), key); got != want {
						t.Errorf("arrival %s: eligibility takes %s as running: %v; the record: %v", ids(arrival), key, got, want)
					}
				}
			})
		}
	}
}

func recordRunning(r hub.Record, key string) bool {
	for _, c := range r.Employment {
		if c.ContractID == key {
			return c.End == ""
		}
	}
	if r.Housing != nil {
		for _, l := range r.Housing.Rentals {
			if l.LeaseID == key {
				return l.End == ""
			}
		}
	}
	return false
}

func spanOpen(spans []span, key string) bool {
	for _, s := range spans {
		if s.key == key {
			return s.open
		}
	}
	return false
}

// permutations is every order of in.
func permutations(in []hub.Input) [][]hub.Input {
	if len(in) <= 1 {
		return [][]hub.Input{slices.Clone(in)}
	}
	var out [][]hub.Input
	for i := range in {
		rest := append(slices.Clone(in[:i]), in[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]hub.Input{in[i]}, p...))
		}
	}
	return out
}

func ids(in []hub.Input) string {
	var s []string
	for _, e := range in {
		s = append(s, fmt.Sprintf("%s(%s)", e.Event.Type, e.Event.ID[len(e.Event.ID)-4:]))
	}
	return fmt.Sprint(s)
}
