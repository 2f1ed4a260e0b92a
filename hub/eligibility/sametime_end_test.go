package eligibility_test

import (
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

// A contract's start and its end stamped with the same effective time
// (a back-filled, finished contract), the end's event id sorting first.
// The record applies the end (hub/merge: an end counts unless its time is
// before the start's); eligibility, taking same-time changes "in the
// record's order", meets the end before the start, drops it, and counts
// the contract as still running.
func TestSameTimeEndFollowsStart(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Policy("heilongjiang/daqing")
	who := storetest.ValidID(3)
	at := time.Date(2024, 7, 1, 9, 0, 0, 0, cst)
	in := []hub.Input{
		storetest.Event(t, schemas.HukouRegistered, who, "ps-r1", time.Date(2020, 1, 1, 9, 0, 0, 0, cst),
			schemas.HukouRegisteredData{Name: "李娜", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "231221100200", HouseholdID: "H1", Reason: "birth"}),
		storetest.Event(t, schemas.ContractStarted, who, "emp-b", at, schemas.ContractStartedData{ContractID: "C1",
			EmployerID: "91230102MA1B2C3D46", EmployerName: "示例公司", WorkRegion: "230602", Start: "2023-01-01"}),
		storetest.Event(t, schemas.ContractEnded, who, "emp-a", at, schemas.ContractEndedData{ContractID: "C1", End: "2023-03-31"}),
	}
	out := merge.Batch(nil, in, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	rec := out.States[who].Record()
	t.Logf("record employment: %+v", rec.Employment)
	subj := eligibility.Subject{Record: rec}
	for _, e := range out.History {
		subj.History = append(subj.History, e.Change)
	}
	asOf, _ := eligibility.AsOfDay("2025-06-01")
	for _, c := range eligibility.Evaluate(p, subj, nil, asOf).Conditions {
		for _, f := range c.Facts {
			if f.EventID == "emp-b" {
				t.Logf("%s met=%v: %s", c.ID, c.Met, f.Text)
				if c.Met {
					t.Errorf("condition %s met by contract C1, which the record shows ended 2023-03-31", c.ID)
				}
			}
		}
	}
}
