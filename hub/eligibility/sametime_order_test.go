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
	ended := func(lease, key string, v int64, end string) hub.Input {
		return storetest.Event(t, schemas.RentalEnded, who, publisher.EventID(schemas.Housing, key, v), at, schemas.RentalEndedData{LeaseID: lease, End: end})
	}
	registeredAs := func(lease, key string, v int64) hub.Input {
		return storetest.Event(t, schemas.RentalRegistered, who, publisher.EventID(schemas.Housing, key, v), at,
			schemas.RentalRegisteredData{LeaseID: lease, AddressCode: "230102001002", Start: "2024-01-01"})
	}
	terminated := func(key string, end string, kinds ...string) hub.Input {
		return storetest.Event(t, schemas.InsuranceTerminated, who, publisher.EventID(schemas.SocialInsurance, key, 1), at,
			schemas.InsuranceTerminatedData{Insurances: kinds, Region: "230102", End: end})
	}
	enrolled := func(key string, kinds ...string) hub.Input {
		return storetest.Event(t, schemas.InsuranceEnrolled, who, publisher.EventID(schemas.SocialInsurance, key, 1), at,
			schemas.InsuranceEnrolledData{Scheme: "employee", Insurances: kinds, Region: "230102", Start: "2024-01-01"})
	}
	tests := []struct {
		name   string
		before []hub.Input
		same   []hub.Input
		// running says, per key, whether the record shows it running; nil
		// when that depends on how the ids hash: eligibility must then
		// agree with the record, whatever it shows.
		running map[string]bool
		// keys and insurances are compared with the record when running
		// is nil.
		keys, insurances []string
	}{
		{"a lease replaced in one transaction beside another lease's insert",
			[]hub.Input{storetest.Event(t, schemas.RentalRegistered, who, publisher.EventID(schemas.Housing, "L1", 1), at.AddDate(0, -6, 0),
				schemas.RentalRegisteredData{LeaseID: "L1", AddressCode: "230102001002", Start: "2024-01-01"})},
			[]hub.Input{
				storetest.Event(t, schemas.RentalEnded, who, publisher.EventID(schemas.Housing, "L1", 10), at, schemas.RentalEndedData{LeaseID: "L1", End: "2025-01-10"}),
				rental("L1", 11), rental("L2", 12),
			},
			map[string]bool{"L1": true, "L2": true}, nil, nil},
		{"a finished contract back-filled beside another contract's start", nil,
			[]hub.Input{
				contract("C1", "签订\x1fC1"),
				storetest.Event(t, schemas.ContractEnded, who, publisher.EventID(schemas.Employment, "终止\x1fC1", 1), at, schemas.ContractEndedData{ContractID: "C1", End: "2024-12-31"}),
				contract("C2", "签订\x1fC2"),
			},
			map[string]bool{"C1": false, "C2": true}, nil, nil},
	}
	for _, other := range []string{"甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸", "子", "丑"} {
		tests = append(tests, []struct {
			name             string
			before           []hub.Input
			same             []hub.Input
			running          map[string]bool
			keys, insurances []string
		}{
			{"a lease replaced beside another record's start of it " + other, nil,
				[]hub.Input{ended("L1", "L1", 10, "2025-01-10"), registeredAs("L1", "L1", 11), registeredAs("L1", other, 1)}, nil, []string{"L1"}, nil},
			{"a lease replaced beside another record's end of it " + other, nil,
				[]hub.Input{ended("L1", "L1", 10, "2025-01-10"), registeredAs("L1", "L1", 11), ended("L1", other, 1, "2024-06-30")}, nil, []string{"L1"}, nil},
			{"two ends and a start " + other, nil,
				[]hub.Input{registeredAs("L1", "L1", 1), ended("L1", "L1", 2, "2024-12-31"), ended("L1", other, 1, "2024-06-30")}, nil, []string{"L1"}, nil},
			{"terminations of overlapping insurances " + other, nil,
				[]hub.Input{terminated("T1"+other, "2024-12-31", "pension", "medical"), enrolled("E"+other, "pension"), terminated("T2"+other, "2025-06-30", "medical")},
				nil, nil, []string{"pension", "medical"}},
		}...)
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
				spans := append(slices.Clone(f.rentals), f.contracts...)
				for key, want := range tc.running {
					if got := recordRunning(rec, key); got != want {
						t.Fatalf("arrival %s: the record shows %s running: %v, want %v", ids(arrival), key, got, want)
					}
					if got := spanOpen(spans, key); got != want {
						t.Errorf("arrival %s: eligibility takes %s as running: %v; the record: %v", ids(arrival), key, got, want)
					}
				}
				for _, key := range tc.keys {
					if got, want := spanEnd(spans, key), recordEnd(rec, key); got != want {
						t.Errorf("arrival %s: eligibility takes %s as ending %q; the record: %q", ids(arrival), key, got, want)
					}
				}
				for _, k := range tc.insurances {
					want := ""
					if rec.SocialInsurance != nil {
						want = rec.SocialInsurance.Insurances[k].Until
					}
					got := ""
					if end, ok := f.terminated[k]; ok && want != "" {
						got = end.Format(time.DateOnly)
					}
					if want != "" && got != want {
						t.Errorf("arrival %s: eligibility takes %s as terminated %q; the record: until %q", ids(arrival), k, got, want)
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

// recordEnd is the end the record shows for a contract or lease, "" when
// running.
func recordEnd(r hub.Record, key string) string {
	for _, c := range r.Employment {
		if c.ContractID == key {
			return c.End
		}
	}
	if r.Housing != nil {
		for _, l := range r.Housing.Rentals {
			if l.LeaseID == key {
				return l.End
			}
		}
	}
	return ""
}

// spanEnd is the end eligibility takes for a contract or lease, "" when
// running.
func spanEnd(spans []span, key string) string {
	for _, s := range spans {
		if s.key == key && !s.open {
			return s.to.Format(time.DateOnly)
		}
	}
	return ""
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
