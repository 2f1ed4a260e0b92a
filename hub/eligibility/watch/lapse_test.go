package watch_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// daqingWithEnds is a Daqing applicant whose labour contract (in 230602)
// and lease (in Longfeng, 230604) both carry the end agreed when they
// were signed, as most contracts and leases do.
func daqingWithEnds(t *testing.T, contractEnd, leaseEnd, months string) (citizenid.ID, []hub.Input) {
	t.Helper()
	c := eligibility.Case{
		Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "231221100200"},
		Events: []eligibility.CaseEvent{
			{Type: schemas.ContractStarted, Time: "2024-03-01", Data: map[string]any{"contract_id": "C1",
				"employer_id": "91230100MA1234567X", "employer_name": "示例公司", "work_region": "230602",
				"start": "2024-03-01", "end": contractEnd}},
			{Type: schemas.RentalRegistered, Time: "2023-03-01", Data: map[string]any{"lease_id": "L1",
				"address_code": "230604010012", "start": "2023-03-01", "end": leaseEnd}},
			{Type: schemas.ContributionRecorded, Months: months, Data: map[string]any{"region": "230604",
				"insurances": []any{"pension"}}},
		},
	}
	if leaseEnd == "" {
		delete(c.Events[1].Data, "end")
	}
	ids, in, err := c.Inputs()
	if err != nil {
		t.Fatal(err)
	}
	return ids[0], in
}

// TestRegionIsTheLeaseInForce: R is the address of the person's current
// rental in the policy's place; a lease in force today whose agreed end
// lies ahead (2026-12-31) is current, so R is its county, 230604, not the
// place's first code.
func TestRegionIsTheLeaseInForce(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqingWithEnds(t, "2027-02-28", "2026-12-31", "2023-04..2025-03") // 24 months
	r.apply(t, in)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230604"}, 10*time.Second)
}

// TestEligibleAgainAfterALapseIsAnnounced: eligible in April (announced);
// the contract reaches its agreed end on 2025-06-30 and nothing is sent,
// so the watcher decides the person again on the day it lapses; on
// 2025-08-01 a new contract starts and the person, eligible again, is
// announced again.
func TestEligibleAgainAfterALapseIsAnnounced(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqingWithEnds(t, "2025-06-30", "", "2023-04..2025-03") // an open lease
	r.apply(t, in)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230604"}, 10*time.Second)

	for deadline := time.Now().Add(10 * time.Second); eligibleInBucket(t, r) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no eligible decision saved")
		}
	}

	// Time passes: the contract's agreed end goes by, no event.
	july := time.Date(2025, 7, 15, 12, 0, 0, 0, china)
	r.now.Store(&july)
	p, _ := r.cat.Policy("heilongjiang/daqing")
	d, err := eligibility.Decide(context.Background(), r.store, p, id, eligibility.EndOfToday(july), false)
	if err != nil {
		t.Fatal(err)
	}
	if d.Eligible {
		t.Fatalf("on %s the contract has ended: want not eligible, got eligible", d.AsOf)
	}
	deadline := time.Now().Add(15 * time.Second)
	for eligibleInBucket(t, r) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher still holds the person eligible after the contract's end; log:\n%s", r.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	aug := time.Date(2025, 8, 1, 12, 0, 0, 0, china)
	r.now.Store(&aug)
	c2 := hub.Input{Event: in[0].Event}
	for _, x := range in {
		if x.Event.Type == schemas.ContractStarted {
			c2.Event = x.Event
		}
	}
	c2.Event.ID = "employment-c2"
	c2.Event.Time = time.Date(2025, 8, 1, 9, 0, 0, 0, china)
	c2.Event.Data = []byte(`{"contract_id":"C2","employer_id":"91230100MA7654321X","employer_name":"另一公司","work_region":"230602","start":"2025-08-01","end":"2026-12-31"}`)
	c2.Event.Payload = schemas.NewData(schemas.ContractStarted)
	if err := json.Unmarshal(c2.Event.Data, c2.Event.Payload); err != nil {
		t.Fatal(err)
	}
	r.apply(t, []hub.Input{c2})
	d, err = eligibility.Decide(context.Background(), r.store, p, id, eligibility.EndOfToday(aug), false)
	if err != nil || !d.Eligible {
		t.Fatalf("on 2025-08-01 with the new contract: eligible %v, %v", d.Eligible, err)
	}
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230604"}, 10*time.Second)
}

// eligibleInBucket counts the eligible decisions the watcher holds.
func eligibleInBucket(t *testing.T, r *rig) int {
	t.Helper()
	kv, err := r.js.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range bucketKeys(t, r.js) {
		e, err := kv.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Eligible bool }
		if json.Unmarshal(e.Value(), &st) == nil && st.Eligible {
			n++
		}
	}
	return n
}

// TestLapseAfterTheUpgradeWalk: decisions saved by a release before the
// lapse day carry none; the walk the README has the operator ask for
// after the upgrade gives them theirs, so a person eligible at the
// upgrade is decided again when their contract ends.
func TestLapseAfterTheUpgradeWalk(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqingWithEnds(t, "2025-06-30", "", "2023-04..2025-03")
	r.apply(t, in)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230604"}, 10*time.Second)
	for deadline := time.Now().Add(10 * time.Second); eligibleInBucket(t, r) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no eligible decision saved")
		}
	}
	// The decision as the earlier release saved it, then the operator's
	// `nats kv put pophub_eligibility _policy.<hex> '{}'` and a restart.
	r.stop()
	ctx := context.Background()
	kv, err := r.js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range bucketKeys(t, r.js) {
		if !strings.HasPrefix(k, "_") {
			if _, err := kv.Put(ctx, k, []byte(`{"eligible":true,"as_of":"2025-04-10"}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := kv.Put(ctx, versionEntryKey("heilongjiang/daqing"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	r.start(t)
	r.expect(t, nil, 2*time.Second) // the walk announces nobody eligible already

	july := time.Date(2025, 7, 15, 12, 0, 0, 0, china)
	r.now.Store(&july)
	deadline := time.Now().Add(15 * time.Second)
	for eligibleInBucket(t, r) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the upgrade walk the person is still eligible past the contract's end; log:\n%s", r.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
