package eligibility_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// applyBetween is a store into which an event is applied between the
// read of the person's record and the read of their history, as a
// department's event applied by the consumer while a clerk's decision is
// being made.
type applyBetween struct {
	*memdb.Store
	once sync.Once
	late hub.Input
	err  error
}

func (a *applyBetween) History(ctx context.Context, id citizenid.ID) ([]hub.Change, error) {
	a.once.Do(func() { _, a.err = a.Store.Apply(ctx, []hub.Input{a.late}) })
	if a.err != nil {
		return nil, a.err
	}
	return a.Store.History(ctx, id)
}

// TestRecordVersionIsTheVersionTheDecisionRead: record_version is "the
// version of the person's golden record the decision was made from". The
// record and the history are read apart; a contribution applied in between
// is counted by the decision (its month is listed, citing its event), yet
// the decision names the version before it: an auditor reading the record
// at that version cannot find the month the answer counted.
func TestRecordVersionIsTheVersionTheDecisionRead(t *testing.T) {
	p := policy(t, "heilongjiang/daqing")
	c := eligibility.Case{
		Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "231221100200"},
		Events: []eligibility.CaseEvent{
			{Type: schemas.RentalRegistered, Time: "2023-03-01", Data: map[string]any{"lease_id": "L1",
				"address_code": "230602013001", "start": "2023-03-01"}},
			{Type: schemas.ContributionRecorded, Months: "2023-04..2025-02", Data: map[string]any{"region": "230604",
				"insurances": []any{"pension"}}},
		},
	}
	ids, in, err := c.Inputs()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := memdb.Open(ctx, memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Apply(ctx, in); err != nil {
		t.Fatal(err)
	}
	china := time.FixedZone("CST", 8*3600)
	data := schemas.ContributionRecordedData{Month: "2023-03", Region: "230604", Insurances: []string{"pension"}}
	raw, _ := json.Marshal(data)
	late := hub.Input{Event: schemas.Event{SpecVersion: schemas.SpecVersion, ID: "late-contribution-2023-03",
		Source: schemas.SourceOf(schemas.ContributionRecorded), Type: schemas.ContributionRecorded, Subject: ids[0],
		Time: time.Date(2025, 4, 9, 9, 0, 0, 0, china), DataContentType: "application/json", Data: raw, Payload: &data}}
	r := &applyBetween{Store: store, late: late}

	asOf := eligibility.EndOfToday(time.Date(2025, 4, 10, 12, 0, 0, 0, china))
	d, err := eligibility.Decide(ctx, r, p, ids[0], asOf, false)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := store.History(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var lateVersion int64
	for _, ch := range hist {
		if ch.EventID == late.Event.ID {
			lateVersion = ch.Version
		}
	}
	counted := false
	for _, cr := range d.Conditions {
		for _, f := range cr.Facts {
			counted = counted || (f.EventID == late.Event.ID && strings.Contains(f.Text, "2023-03"))
		}
	}
	if !counted {
		t.Fatalf("premise: the decision does not count the late month 2023-03: %+v", d.Conditions)
	}
	if d.RecordVersion < lateVersion {
		t.Errorf("the decision counts the month of the change at version %d, and names record_version %d", lateVersion, d.RecordVersion)
	}
}
