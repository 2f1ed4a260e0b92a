package stats_test

import (
	"slices"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestPersonPermitCountsFollowLateEvents applies a permit holder's events
// in batches, as a store does, keeping the counters from each batch's
// before and after states: a death or a renewal that arrives late moves
// the permit holders counted on the dates it concerns, and the counters
// end equal to those of the final state counted afresh.
func TestPersonPermitCountsFollowLateEvents(t *testing.T) {
	p := storetest.ValidID(1)
	at := func(date string) time.Time { return dayAt(t, date, 10) }
	reg := storetest.Event(t, schemas.HukouRegistered, p, "r1", at("2020-01-01"), schemas.HukouRegisteredData{
		Name: "王芳", Gender: p.Gender(), BirthDate: p.BirthDate().Format(time.DateOnly), Ethnicity: "01",
		AddressCode: "440106001001", HouseholdID: "H1", Reason: "birth"})
	issue := func(id, date, validUntil string) hub.Input {
		return storetest.Event(t, schemas.ResidencePermitIssued, p, id, at(date), schemas.ResidencePermitIssuedData{
			CityCode: "230100", AddressCode: "230102001001", Basis: "employment", ValidUntil: validUntil})
	}
	death := storetest.Event(t, schemas.DeathCertified, p, "d1", at("2025-03-04"), schemas.DeathCertifiedData{
		DateOfDeath: "2025-03-04", CertificateNo: "D1"})
	emigration := storetest.Event(t, schemas.HukouCancelled, p, "c1", at("2025-03-04"), schemas.HukouCancelledData{Reason: "emigration"})
	tests := []struct {
		name    string
		batches [][]hub.Input
		holders map[string]int64 // Harbin's permit holders at the end of each day
	}{
		{"a late death", [][]hub.Input{{reg, issue("p1", "2024-01-01", "2026-12-31")}, {death}},
			map[string]int64{"2023-12-31": 0, "2024-01-01": 1, "2025-03-03": 1, "2025-03-04": 0, "2026-06-30": 0}},
		{"a late emigration", [][]hub.Input{{reg, issue("p1", "2024-01-01", "2026-12-31")}, {emigration}},
			map[string]int64{"2025-03-03": 1, "2025-03-04": 0, "2026-06-30": 0}},
		{"a death before the registration arrived", [][]hub.Input{{issue("p1", "2024-01-01", "2026-12-31")}, {death}, {reg}},
			map[string]int64{"2025-03-03": 1, "2025-03-04": 0}},
		{"a late renewal", [][]hub.Input{{reg, issue("p1", "2024-01-01", "2024-12-31")}, {issue("p2", "2024-12-20", "2025-12-31")}},
			map[string]int64{"2024-12-31": 1, "2025-01-01": 1, "2025-12-31": 1, "2026-01-01": 0}},
		{"a late first permit before a renewal after its expiry",
			[][]hub.Input{{reg, issue("p2", "2025-03-01", "2026-02-28")}, {issue("p1", "2024-01-01", "2024-12-31")}},
			map[string]int64{"2024-12-31": 1, "2025-01-01": 0, "2025-03-01": 1, "2026-02-28": 1, "2026-03-01": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, states := keptOver(tc.batches)
			for day, want := range tc.holders {
				if got := permitHolders(t, kept, "2301", day); got != want {
					t.Errorf("Harbin's permit holders at the end of %s: %d, want %d", day, got, want)
				}
			}
			keptAsAfresh(t, kept, states[p])
		})
	}
}

// permitHolders is the residence-permit holders of region at the end of
// day.
func permitHolders(t *testing.T, acc stats.Acc, region, day string) int64 {
	return countAt(t, acc, region, day, func(c stats.Class) bool { return c == stats.Permit })
}

// countAt sums the counters of region whose class is selected, at the end
// of day.
func countAt(t *testing.T, acc stats.Acc, region, day string, class func(stats.Class) bool) int64 {
	t.Helper()
	rs, err := stats.AsOf(day)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for k, v := range acc {
		if k.Region == region && class(k.Class) && stats.In(k.Bucket, rs) {
			n += v
		}
	}
	return n
}

// TestPersonPermitHolderCountedOnce: a permit is counted in its city
// whichever of the city's codes the department wrote (a county's code, as
// city_code allows, is its city's), and a holder who moves to another
// city counts there from the new permit's issue day and no longer in the
// old city, so a province counts them once. Late arrivals move the counts
// as the final state counted afresh has them.
func TestPersonPermitHolderCountedOnce(t *testing.T) {
	p := storetest.ValidID(4242)
	at := func(date string) time.Time { return dayAt(t, date, 9) }
	harbin := storetest.Event(t, schemas.ResidencePermitIssued, p, "rp-1", at("2025-01-10"), schemas.ResidencePermitIssuedData{
		CityCode: "230100", AddressCode: "230102001001", Basis: "employment", ValidUntil: "2025-12-31"})
	daqing := storetest.Event(t, schemas.ResidencePermitIssued, p, "rp-2", at("2025-06-01"), schemas.ResidencePermitIssuedData{
		CityCode: "230600", AddressCode: "230602013001", Basis: "employment", ValidUntil: "2026-05-31"})
	revokedAsCounty := storetest.Event(t, schemas.ResidencePermitRevoked, p, "rp-3", at("2025-03-01"), schemas.ResidencePermitRevokedData{
		CityCode: "230102"})
	type holders struct{ province, harbin, harbin6, daoli, daqing int64 }
	tests := []struct {
		name    string
		batches [][]hub.Input
		want    map[string]holders // at the end of each day
	}{
		{"a move to Daqing", [][]hub.Input{{harbin}, {daqing}},
			map[string]holders{"2025-05-31": {1, 1, 1, 0, 0}, "2025-06-01": {1, 0, 0, 0, 1}, "2025-08-01": {1, 0, 0, 0, 1}, "2026-06-01": {}}},
		{"a late move to Daqing", [][]hub.Input{{daqing}, {harbin}},
			map[string]holders{"2025-05-31": {1, 1, 1, 0, 0}, "2025-06-01": {1, 0, 0, 0, 1}, "2025-12-31": {1, 0, 0, 0, 1}}},
		{"revoked with a county's code", [][]hub.Input{{harbin}, {revokedAsCounty}},
			map[string]holders{"2025-02-28": {1, 1, 1, 0, 0}, "2025-03-01": {}, "2025-08-01": {}}},
		{"revoked with a county's code, then a move", [][]hub.Input{{harbin, daqing}, {revokedAsCounty}},
			map[string]holders{"2025-02-28": {1, 1, 1, 0, 0}, "2025-03-01": {}, "2025-06-01": {1, 0, 0, 0, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, states := keptOver(tc.batches)
			for day, want := range tc.want {
				got := holders{permitHolders(t, kept, "23", day), permitHolders(t, kept, "2301", day), permitHolders(t, kept, "230100", day),
					permitHolders(t, kept, "230102", day), permitHolders(t, kept, "2306", day)}
				if got != want {
					t.Errorf("permit holders at the end of %s (23, 2301, 230100, 230102, 2306): %v, want %v", day, got, want)
				}
			}
			keptAsAfresh(t, kept, states[p])
		})
	}
}

// keptOver merges batches one after another and returns the counters kept
// batch by batch, as a store keeps them, and the persons' final states.
// keptAsAfresh checks that the counters kept batch by batch are those of
// the final state counted afresh.
func keptAsAfresh(t *testing.T, kept stats.Acc, final *merge.State) {
	t.Helper()
	afresh := stats.Acc{}
	afresh.Person(nil, final, stats.UrbanByCode)
	if got, want := kept.Deltas(), afresh.Deltas(); !slices.Equal(got, want) {
		t.Errorf("counters kept batch by batch %v, counted afresh %v", got, want)
	}
}

func keptOver(batches [][]hub.Input) (stats.Acc, map[citizenid.ID]*merge.State) {
	states := map[citizenid.ID]*merge.State{}
	kept := stats.Acc{}
	for _, batch := range batches {
		out := merge.Batch(states, batch, time.Now())
		for id, after := range out.States {
			var before stats.Timeline
			if old := states[id]; old != nil {
				before = old
			}
			kept.Person(before, after, stats.UrbanByCode)
			states[id] = after
		}
	}
	return kept, states
}

// TestPersonEachDeathEndsOnItsDate: a person who dies, has the hukou
// restored and dies again leaves the counts on each death's own certified
// date of death, so a count already published for a day after the first
// death does not change when the second death arrives. A correction of
// the first death, certified before the restoration, moves that death's
// date. Late and out-of-order arrivals give the counters of the final
// state counted afresh.
func TestPersonEachDeathEndsOnItsDate(t *testing.T) {
	p := storetest.ValidID(77)
	at := func(date string) time.Time { return dayAt(t, date, 9) }
	reg := func(id, date, reason string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, p, id, at(date), schemas.HukouRegisteredData{
			Name: "李四", Gender: p.Gender(), BirthDate: p.BirthDate().Format(time.DateOnly), Ethnicity: "01",
			AddressCode: "230124100011", HouseholdID: "H6", Reason: reason})
	}
	death := func(id, certified, died string) hub.Input {
		return storetest.Event(t, schemas.DeathCertified, p, id, at(certified), schemas.DeathCertifiedData{
			DateOfDeath: died, CertificateNo: "D-" + id})
	}
	issue := func(id, date string) hub.Input {
		return storetest.Event(t, schemas.ResidencePermitIssued, p, id, at(date), schemas.ResidencePermitIssuedData{
			CityCode: "230600", AddressCode: "230602013001", Basis: "employment", ValidUntil: "2030-12-31"})
	}
	born, restored := reg("r1", "2020-01-01", "birth"), reg("r2", "2023-09-01", "restored")
	permit, permitAgain := issue("p1", "2021-01-01"), issue("p2", "2023-10-01")
	first := death("d1", "2023-06-01", "2023-01-10")
	corrected := death("d1c", "2023-07-01", "2023-01-05")
	second := death("d2", "2026-11-01", "2026-10-01")
	type counts struct{ registered, permits int64 } // in 方正县 230124 (Harbin's), and Daqing's permit holders
	firstDeath := map[string]counts{"2023-01-09": {1, 1}, "2023-01-10": {}, "2023-05-31": {}, "2023-06-01": {},
		"2023-09-01": {1, 0}, "2023-10-01": {1, 1}, "2026-09-30": {1, 1}, "2026-10-01": {}}
	correctedDeath := map[string]counts{"2023-01-04": {1, 1}, "2023-01-05": {}, "2023-01-10": {}, "2023-05-31": {},
		"2023-09-01": {1, 0}, "2023-10-01": {1, 1}, "2026-10-01": {}}
	tests := []struct {
		name    string
		batches [][]hub.Input
		want    map[string]counts // at the end of each day
	}{
		{"the second death arrives last", [][]hub.Input{{born, permit, first, restored, permitAgain}, {second}}, firstDeath},
		{"the second death arrives first", [][]hub.Input{{born, permit}, {second}, {first}, {restored, permitAgain}}, firstDeath},
		{"the restoration arrives last", [][]hub.Input{{born, permit, permitAgain}, {second}, {first}, {restored}}, firstDeath},
		{"the first death arrives last", [][]hub.Input{{born, permit, restored, permitAgain, second}, {first}}, firstDeath},
		{"a correction of the first death after the second", [][]hub.Input{{born, permit, first, restored, permitAgain}, {second}, {corrected}},
			correctedDeath},
		{"a correction of the first death before it", [][]hub.Input{{born, permit, restored, permitAgain}, {corrected}, {second}, {first}},
			correctedDeath},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, states := keptOver(tc.batches)
			for day, want := range tc.want {
				if got := (counts{registeredIn(t, kept, "230124", day), permitHolders(t, kept, "2306", day)}); got != want {
					t.Errorf("registered in 230124 and Daqing's permit holders at the end of %s: %v, want %v", day, got, want)
				}
			}
			keptAsAfresh(t, kept, states[p])
		})
	}
}

// registeredIn is the registered population of region at the end of day.
func registeredIn(t *testing.T, acc stats.Acc, region, day string) int64 {
	return countAt(t, acc, region, day, func(c stats.Class) bool { return c != stats.Permit })
}

// TestPersonKnownByAMigrationIsCounted: a person whose registration
// predates the hub and whose first hukou event is a migration is active,
// with the hukou the migration moved to (the record, eligibility and
// death_not_cancelled all take the hukou as registered there), so the
// registered population counts them at that address from the
// migration's effective date on.
func TestPersonKnownByAMigrationIsCounted(t *testing.T) {
	p := storetest.ValidID(9191)
	at := func(date string) time.Time { return dayAt(t, date, 9) }
	move := storetest.Event(t, schemas.HukouMigrated, p, "m1", at("2024-05-01"), schemas.HukouMigratedData{
		FromAddressCode: "230102001001", ToAddressCode: "230103002002", Reason: "housing"})
	kept, states := keptOver([][]hub.Input{{move}})
	if got := states[p].Record(); got.Status != hub.StatusActive || got.Hukou == nil || got.Hukou.AddressCode != "230103002002" {
		t.Fatalf("premise: record status %q hukou %+v, want active at 230103002002", got.Status, got.Hukou)
	}
	for day, want := range map[string]int64{"2024-04-30": 0, "2024-05-01": 1, "2026-01-01": 1} {
		if got := registeredIn(t, kept, "230103", day); got != want {
			t.Errorf("registered in 230103 (where the active record's hukou is) at the end of %s: %d, want %d", day, got, want)
		}
	}
}

// dayAt is hour o'clock China time on date (YYYY-MM-DD).
func dayAt(t *testing.T, date string, hour int) time.Time {
	t.Helper()
	d, err := time.ParseInLocation(time.DateOnly, date, time.FixedZone("CST", 8*3600))
	if err != nil {
		t.Fatal(err)
	}
	return d.Add(time.Duration(hour) * time.Hour)
}
