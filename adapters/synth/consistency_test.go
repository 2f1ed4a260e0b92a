package synth

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// population is the events of a 20,000-person population (3,000 with
// -short) without late arrivals, so each person's events arrive together
// and in time order; generated once for the tests of this file and
// household_test.go.
var population = sync.OnceValues(func() ([]schemas.Event, error) {
	persons := 20000
	if testing.Short() {
		persons = 3000
	}
	var out []schemas.Event
	err := Generate(context.Background(), Config{Persons: persons, Seed: 1, LateRate: -1}, func(ev schemas.Event) error {
		out = append(out, ev)
		return nil
	})
	return out, err
})

func testPopulation(t *testing.T) []schemas.Event {
	t.Helper()
	events, err := population()
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// birthOf is the birth date in an ID, as midnight China Standard Time.
func birthOf(id citizenid.ID) time.Time {
	b := id.BirthDate()
	return time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, china)
}

var defaultStart = time.Date(2024, 1, 1, 0, 0, 0, 0, china)

// TestYearsClamped: a waiting time drawn longer than a time.Duration holds
// (about 292 years) stays a long wait, on every platform, instead of
// wrapping into the past.
func TestYearsClamped(t *testing.T) {
	for _, y := range []float64{150, 292.5, 300, 1e6, 1e300, math.Inf(1), math.NaN()} {
		if d := years(y); d < years(150) || d > years(maxYears) {
			t.Errorf("years(%v) = %v, want between 150 and %d years", y, d, maxYears)
		}
	}
	for _, y := range []float64{-300, math.Inf(-1)} {
		if d := years(y); d != -years(maxYears) {
			t.Errorf("years(%v) = %v, want -%d years", y, d, maxYears)
		}
	}
	g, err := newGenerator(Config{Persons: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	lc := &lifeCourse{g: g, r: newRand(1, 0, streamLife)}
	for range 1000 {
		if at := lc.after(g.start, 1e-6); !at.After(g.end) {
			t.Fatalf("a wait at a rate of one in a million years ends at %s, within the window", at)
		}
	}
}

// TestFollowOnsHaveTheirStart: whatever ends or changes something — a
// business deregistration, a divorce, the end of a contract or a lease, the
// transfer of a property, the termination or transfer of insurance — comes
// after the event that began it, for the same person, and ends it once.
func TestFollowOnsHaveTheirStart(t *testing.T) {
	type key struct {
		subject citizenid.ID
		id      string
	}
	open := map[key]bool{} // businesses, contracts, leases, properties
	spouse := map[citizenid.ID]citizenid.ID{}
	insured := map[citizenid.ID]bool{}
	follows := map[schemas.Type]int{}
	orphan := func(ev schemas.Event, what string) {
		t.Helper()
		if follows[ev.Type] >= 0 {
			t.Errorf("%s %s at %s: %s", ev.Type, ev.ID, ev.Time.Format(time.DateOnly), what)
		}
		follows[ev.Type] = -1_000_000 // report one of each type
	}
	end := func(ev schemas.Event, id string) {
		t.Helper()
		k := key{ev.Subject, id}
		if !open[k] {
			orphan(ev, "not begun before, or ended already")
		}
		delete(open, k)
		follows[ev.Type]++
	}
	for _, ev := range testPopulation(t) {
		switch d := ev.Payload.(type) {
		case *schemas.BusinessRegisteredData:
			open[key{ev.Subject, d.BusinessID}] = true
		case *schemas.BusinessDeregisteredData:
			end(ev, d.BusinessID)
		case *schemas.ContractStartedData:
			open[key{ev.Subject, d.ContractID}] = true
		case *schemas.ContractEndedData:
			end(ev, d.ContractID)
		case *schemas.RentalRegisteredData:
			open[key{ev.Subject, d.LeaseID}] = true
		case *schemas.RentalEndedData:
			end(ev, d.LeaseID)
		case *schemas.PropertyRegisteredData:
			open[key{ev.Subject, d.PropertyID}] = true
		case *schemas.PropertyTransferredData:
			end(ev, d.PropertyID)
		case *schemas.MarriageRegisteredData:
			if spouse[ev.Subject] != "" {
				orphan(ev, "married while married")
			}
			spouse[ev.Subject] = d.SpouseID
		case *schemas.MarriageDivorcedData:
			if spouse[ev.Subject] != d.SpouseID {
				orphan(ev, "divorce without the marriage")
			}
			delete(spouse, ev.Subject)
			follows[ev.Type]++
		case *schemas.InsuranceEnrolledData:
			insured[ev.Subject] = true
		case *schemas.InsuranceTerminatedData, *schemas.InsuranceTransferredData:
			if !insured[ev.Subject] {
				orphan(ev, "never enrolled before")
			}
			follows[ev.Type]++
		}
	}
	for _, typ := range []schemas.Type{schemas.BusinessDeregistered, schemas.MarriageDivorced, schemas.ContractEnded,
		schemas.RentalEnded, schemas.PropertyTransferred, schemas.InsuranceTerminated, schemas.InsuranceTransferred} {
		if n := follows[typ]; n >= 0 && n < 5 {
			t.Errorf("only %d %s events checked", n, typ)
		}
	}
}

// TestBirthsOverLongWindow: a window longer than two years has births of
// boys and girls in every one of its years, at a steady rate, and the
// babies are registered.
func TestBirthsOverLongWindow(t *testing.T) {
	start := time.Date(2023, 1, 1, 0, 0, 0, 0, china)
	cfg := Config{Persons: 100000, Seed: 3, Months: 36, LateRate: -1, Start: start}
	g, err := newGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type yearSex struct{ year, sex int }
	births := map[yearSex]int{}
	for n := int64(0); n < int64(cfg.Persons); n++ {
		if b, _ := g.slots.birth(n); !b.Before(start) && b.Before(g.end) {
			births[yearSex{b.Year(), int(n % 2)}]++
		}
	}
	for y := 2023; y <= 2025; y++ {
		for sex := range 2 {
			if n, first := births[yearSex{y, sex}], births[yearSex{2023, sex}]; n == 0 || n < first*9/10 {
				t.Fatalf("births by year and sex (1 for boys) of a 36-month window: %v", births)
			}
		}
	}
	cfg.Persons = 3000
	registered := map[int]int{}
	if err := Generate(context.Background(), cfg, func(ev schemas.Event) error {
		if d, ok := ev.Payload.(*schemas.HukouRegisteredData); ok && d.Reason == "birth" && !birthOf(ev.Subject).Before(start) {
			registered[birthOf(ev.Subject).Year()]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if registered[2025] < registered[2023]/2 || registered[2025] == 0 {
		t.Errorf("babies registered by year of birth: %v", registered)
	}
}

// TestResidentPensionFromSixteen: nobody joins the residents' pension
// before the age of 16.
func TestResidentPensionFromSixteen(t *testing.T) {
	n := 0
	for _, ev := range testPopulation(t) {
		d, ok := ev.Payload.(*schemas.InsuranceEnrolledData)
		if !ok || d.Scheme != "resident" || !slices.Contains(d.Insurances, "pension") {
			continue
		}
		n++
		start, err := time.ParseInLocation(time.DateOnly, d.Start, china)
		if err != nil {
			t.Fatal(err)
		}
		if birthOf(ev.Subject).AddDate(16, 0, 0).After(start) {
			t.Fatalf("%s: born %s, in the residents' pension from %s", ev.ID, birthOf(ev.Subject).Format(time.DateOnly), d.Start)
		}
	}
	if n < 100 {
		t.Fatalf("only %d resident pension enrolments", n)
	}
}

// TestContributionHistory: the contract running when the window opens
// comes with its monthly contributions from the later of its start and
// the enrolment, up to three years before the window, month after month.
func TestContributionHistory(t *testing.T) {
	type person struct {
		contractStart, enrolled time.Time
		ended                   bool
		months                  map[string]bool
	}
	persons := map[citizenid.ID]*person{}
	get := func(id citizenid.ID) *person {
		p := persons[id]
		if p == nil {
			p = &person{months: map[string]bool{}}
			persons[id] = p
		}
		return p
	}
	date := func(s string) time.Time {
		d, err := time.ParseInLocation(time.DateOnly, s, china)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, ev := range testPopulation(t) {
		switch d := ev.Payload.(type) {
		case *schemas.ContractStartedData:
			if p := get(ev.Subject); p.contractStart.IsZero() && ev.Time.Before(defaultStart) {
				p.contractStart = date(d.Start)
			}
		case *schemas.ContractEndedData:
			if ev.Time.Before(defaultStart) {
				get(ev.Subject).ended = true
			}
		case *schemas.InsuranceEnrolledData:
			if p := get(ev.Subject); d.Scheme == "employee" && p.enrolled.IsZero() {
				p.enrolled = date(d.Start)
			}
		case *schemas.ContributionRecordedData:
			get(ev.Subject).months[d.Month] = true
		}
	}
	checked, before := 0, 0
	for id, p := range persons {
		if p.contractStart.IsZero() || p.enrolled.IsZero() || p.ended {
			continue
		}
		from := maxTime(p.contractStart, maxTime(p.enrolled, defaultStart.AddDate(0, -backMonths, 0)))
		if !from.Before(defaultStart.AddDate(0, -1, 0)) {
			continue
		}
		for month := range p.months {
			if month < from.Format("2006-01") {
				t.Fatalf("%s: a contribution for %s, before the contract (%s), the enrolment (%s) or three years before the window",
					id, month, p.contractStart.Format(time.DateOnly), p.enrolled.Format(time.DateOnly))
			}
		}
		// Every month after the first, to the window's start.
		for m := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, china).AddDate(0, 1, 0); m.Before(defaultStart); m = m.AddDate(0, 1, 0) {
			if !p.months[m.Format("2006-01")] {
				t.Fatalf("%s: employed and insured since %s, no contribution for %s", id, from.Format(time.DateOnly), m.Format("2006-01"))
			}
			before++
		}
		checked++
	}
	if checked < 100 || before < checked*6 {
		t.Errorf("%d persons employed when the window opens, %d months of contributions before it", checked, before)
	}
}

// TestNoCivilianEventsInService: while their hukou is cancelled for
// military service, persons start no leases, contracts, businesses or
// purchases, pay no residents' insurance and do not move.
func TestNoCivilianEventsInService(t *testing.T) {
	serving := map[citizenid.ID]bool{}
	soldiers := 0
	for _, ev := range testPopulation(t) {
		switch d := ev.Payload.(type) {
		case *schemas.HukouCancelledData:
			if d.Reason == "military" {
				serving[ev.Subject] = true
				soldiers++
			}
		case *schemas.HukouRegisteredData:
			delete(serving, ev.Subject)
		case *schemas.RentalRegisteredData, *schemas.ContractStartedData, *schemas.BusinessRegisteredData,
			*schemas.PropertyRegisteredData, *schemas.ContributionRecordedData, *schemas.InsuranceEnrolledData,
			*schemas.HukouMigratedData:
			if serving[ev.Subject] {
				t.Errorf("%s %s while serving in the army", ev.Type, ev.ID)
			}
		}
	}
	if soldiers == 0 && !testing.Short() {
		t.Error("no one enlisted")
	}
}
