package eligibility_test

import (
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

// A contract's start and its end stamped with the same effective time.
// Two versions of one department record (a row deleted and inserted again
// in one transaction, captured by pophub cdc) stand in the order of their
// versions; different records (a back-filled, finished contract) leave the
// contract ended whichever id sorts last. Eligibility counts the contract
// exactly when the record shows it running.
func TestSameTimeEndFollowsStart(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Policy("heilongjiang/daqing")
	who := storetest.ValidID(3)
	at := time.Date(2024, 7, 1, 9, 0, 0, 0, cst)
	tests := []struct {
		name        string
		start, end  string // event ids
		wantRunning bool
	}{
		{"two records, the end's id sorting first", "emp-b", "emp-a", false},
		{"two records, the start's id sorting first", "emp-a", "emp-b", false},
		{"one record inserted again", versioned("C1", 2), versioned("C1", 1), true},
		{"one record deleted", versioned("C1", 1), versioned("C1", 2), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []hub.Input{
				storetest.Event(t, schemas.HukouRegistered, who, "ps-r1", time.Date(2020, 1, 1, 9, 0, 0, 0, cst),
					schemas.HukouRegisteredData{Name: "李娜", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "231221100200", HouseholdID: "H1", Reason: "birth"}),
				storetest.Event(t, schemas.ContractStarted, who, tc.start, at, schemas.ContractStartedData{ContractID: "C1",
					EmployerID: "91230102MA1B2C3D46", EmployerName: "示例公司", WorkRegion: "230602", Start: "2023-01-01"}),
				storetest.Event(t, schemas.ContractEnded, who, tc.end, at, schemas.ContractEndedData{ContractID: "C1", End: "2023-03-31"}),
			}
			out := merge.Batch(nil, in, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			rec := out.States[who].Record()
			if len(rec.Employment) != 1 || (rec.Employment[0].End == "") != tc.wantRunning {
				t.Fatalf("record employment %+v; want the contract running: %v", rec.Employment, tc.wantRunning)
			}
			subj := eligibility.Subject{Record: rec}
			for _, e := range out.History {
				subj.History = append(subj.History, e.Change)
			}
			asOf, _ := eligibility.AsOfDay("2025-06-01")
			counted := false
			for _, c := range eligibility.Evaluate(p, subj, nil, asOf).Conditions {
				for _, f := range c.Facts {
					counted = counted || f.EventID == tc.start && c.Met
				}
			}
			if counted != tc.wantRunning {
				t.Errorf("contract C1 counted in 2025: %v; the record shows it running: %v", counted, tc.wantRunning)
			}
		})
	}
}

// versioned is an event id of publisher.EventID's form for version v of
// an employment record.
func versioned(key string, v int64) string {
	return publisher.EventID(schemas.Employment, key, v)
}
