package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// testCountsOneSnapshot: one Counts call is one snapshot of the counters.
// The statistics API answers a region and every region below it from one
// call, and promises a statistics bureau that each region's row is then
// the sum of its children's; a store that read each region at a different
// moment would break that while it applies batches. Persons move between
// the two districts of a city while a reader asks for the city and both
// districts: the city must always be their sum.
func testCountsOneSnapshot(t *testing.T, s hub.Store) {
	const (
		persons = 8
		moves   = 150
		daoli   = "230102001001" // urban
		nangang = "230103020200" // rural, so a move changes both classes
	)
	at := time.Date(2021, 1, 1, 9, 0, 0, 0, cst)
	var in []hub.Input
	ids := make([]citizenid.ID, persons)
	for i := range ids {
		ids[i] = ValidID(900 + i)
		in = append(in, Event(t, schemas.HukouRegistered, ids[i], fmt.Sprintf("snap-r%d", i), at, schemas.HukouRegisteredData{
			Name: "王伟", Gender: "1", BirthDate: "1980-05-05", Ethnicity: "01", AddressCode: daoli, HouseholdID: "HS", Reason: "birth"}))
	}
	if _, err := s.Apply(context.Background(), in); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	// Each move takes one person to the other district, a day after their
	// previous move.
	var batches [][]hub.Input
	for m := range moves {
		p := m % persons
		from, to := daoli, nangang
		if (m/persons)%2 == 1 {
			from, to = nangang, daoli
		}
		batches = append(batches, []hub.Input{Event(t, schemas.HukouMigrated, ids[p], fmt.Sprintf("snap-m%d", m),
			at.AddDate(0, 0, 1+m/persons), schemas.HukouMigratedData{FromAddressCode: from, ToAddressCode: to, Reason: "employment"})})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var applyErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		for _, b := range batches {
			if _, err := s.Apply(context.Background(), b); err != nil {
				applyErr = err
				return
			}
		}
	}()
	regions := []string{"2301", "230102", "230103"}
	asOf := time.Now().In(cst).Format(time.DateOnly)
	reads := 0
	for ctx.Err() == nil {
		got, err := s.Counts(context.Background(), hub.CountQuery{Regions: regions, AsOf: asOf})
		if err != nil {
			t.Fatalf("Counts: %v", err)
		}
		reads++
		city, a, b := got["2301"], got["230102"], got["230103"]
		if city.Urban != a.Urban+b.Urban || city.Rural != a.Rural+b.Rural || city.Urban+city.Rural != persons {
			cancel()
			wg.Wait()
			t.Fatalf("read %d: city %+v, its districts %+v and %+v: one Counts call read the counters at different moments", reads, city, a, b)
		}
	}
	wg.Wait()
	if applyErr != nil {
		t.Fatalf("Apply: %v", applyErr)
	}
	t.Logf("%d consistent reads during %d moves", reads, moves)
}
