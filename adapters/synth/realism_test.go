package synth

import (
	"strconv"
	"testing"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Rates of the synthetic population against China's statistics: tests
// assert plausible ranges, not exact figures.

// TestChildrenBornAfterParentsWed: a child registered as 子 or 女 into a
// married head's household was born on or after the parents' wedding, for
// children born before the window as for babies born in it. The birth
// date is the ID's (the deliberate clerical errors of a few registered
// birth dates, a year off at most, are another test's), so none may be
// born before the wedding.
func TestChildrenBornAfterParentsWed(t *testing.T) {
	head := map[string]citizenid.ID{} // household -> its 户主
	wed := map[citizenid.ID]string{}  // a husband's first wedding day
	type kid struct {
		id        citizenid.ID
		household string
		birth     string
	}
	var kids []kid
	for _, ev := range testPopulation(t) {
		switch d := ev.Payload.(type) {
		case *schemas.HukouRegisteredData:
			switch d.Relation {
			case "户主":
				head[d.HouseholdID] = ev.Subject
			case "子", "女":
				// The ID's birth date: a few registrations carry a
				// clerical error in theirs, deliberately (id_mismatch).
				kids = append(kids, kid{ev.Subject, d.HouseholdID, birthOf(ev.Subject).Format("2006-01-02")})
			}
		case *schemas.MarriageRegisteredData:
			if _, ok := wed[ev.Subject]; !ok {
				wed[ev.Subject] = ev.Time.In(china).Format("2006-01-02")
			}
		}
	}
	bad, n := 0, 0
	for _, k := range kids {
		w, ok := wed[head[k.household]]
		if !ok {
			continue
		}
		n++
		if k.birth < w {
			if bad < 3 {
				t.Errorf("%s (born %s) is a child of %s's household, who married on %s", k.id, k.birth, head[k.household], w)
			}
			bad++
		}
	}
	if n < 300 {
		t.Fatalf("only %d children of married heads to check", n)
	}
	if bad > 0 {
		t.Errorf("%d of %d children registered into a married head's household were born before the wedding", bad, n)
	}
}

// TestSexRatio: China's sex ratio is about 105 men per 100 women (2020
// census: 105.07), about 110 at birth (111.3); the IDs' 17th digit agrees
// with the registered gender.
func TestSexRatio(t *testing.T) {
	men, women := 0, 0
	for _, ev := range testPopulation(t) {
		d, ok := ev.Payload.(*schemas.HukouRegisteredData)
		if !ok || d.Reason == "restored" {
			continue
		}
		if d.Gender != ev.Subject.Gender() {
			t.Fatalf("%s: registered with gender %s", ev.ID, d.Gender)
		}
		if d.Gender == "1" {
			men++
		} else {
			women++
		}
	}
	if r := 100 * float64(men) / float64(women); r < 102 || r > 108 {
		t.Errorf("sex ratio %.1f men per 100 women (%d, %d), want about 105", r, men, women)
	}

	// At birth: the babies of the window, over the first round of slots.
	g, err := newGenerator(Config{Persons: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	boys, girls := 0, 0
	for n := int64(0); n < 2*g.slots.total; n++ {
		if b, seq := g.slots.birth(n); !b.Before(g.start) {
			if seq%2 == 1 {
				boys++
			} else {
				girls++
			}
		}
	}
	if r := 100 * float64(boys) / float64(girls); r < 106 || r > 114 {
		t.Errorf("sex ratio at birth %.1f boys per 100 girls (%d, %d), want about 110", r, boys, girls)
	}
}

// TestMarriageRate: China registered 5.4 marriages per 1,000 people in
// 2023 and 4.3 in 2024 (couples, not persons); the window's marriages per
// 1,000 persons living when it opens, per year, are in that range.
func TestMarriageRate(t *testing.T) {
	events := testPopulation(t)
	persons := map[citizenid.ID]bool{}
	halves := 0
	for _, ev := range events {
		if birthOf(ev.Subject).Before(defaultStart) {
			persons[ev.Subject] = true
		}
		if ev.Type == schemas.MarriageRegistered && !ev.Time.Before(defaultStart) {
			halves++
		}
	}
	years := 2.0 // the default window
	if rate := float64(halves) / 2 / float64(len(persons)) / years * 1000; rate < 4.0 || rate > 6.0 {
		t.Errorf("%.2f marriages per 1,000 persons a year (%d spouses' events, %d persons), want 4.3 to 5.4", rate, halves, len(persons))
	}
}

// TestHeadsStayWithHousehold: when the window ends, a household whose
// members are on the register still has its head (户主) among them, unless
// the head died or emigrated (the register keeps a dead head's household
// until a 户主变更, which the catalogue has no event for): a head does not
// move his hukou away and leave his wife and children in a headless
// household.
func TestHeadsStayWithHousehold(t *testing.T) {
	type state struct {
		household string
		present   bool
	}
	now := map[int]*state{} // person index -> where registered now
	for _, ev := range testPopulation(t) {
		n := personOf(t, ev.ID)
		s := now[n]
		if s == nil {
			s = &state{}
			now[n] = s
		}
		switch d := ev.Payload.(type) {
		case *schemas.HukouRegisteredData:
			s.household, s.present = d.HouseholdID, true
		case *schemas.HukouMigratedData:
			s.household = d.HouseholdID
		case *schemas.HukouCancelledData:
			s.present = false
		}
	}
	members := map[string]int{}
	for _, s := range now {
		if s.present {
			members[s.household]++
		}
	}
	away, households := 0, 0
	for h, k := range members {
		if h[0] != 'H' {
			continue // a collective household (a college's) has no 户主 in the population
		}
		n, err := strconv.Atoi(h[7:]) // "H" + county + the head's index
		if err != nil {
			t.Fatalf("household %q", h)
		}
		head, ok := now[n]
		if !ok || !head.present {
			continue // outside the population, dead or emigrated
		}
		households++
		if head.household != h {
			if away < 3 {
				t.Errorf("household %s: %d members, its head %d moved to %s", h, k, n, head.household)
			}
			away++
		}
	}
	if away > 0 {
		t.Errorf("%d of %d households lost their head to a migration", away, households)
	}
}
