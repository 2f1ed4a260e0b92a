package synth

import (
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/region"
)

// person is what everyone may know of person n without generating their
// life course: identity, household, registered home, the pair's marriage,
// and the dates that end their life in the region (death, emigration). A
// spouse's life course reads it.
type person struct {
	n         int64
	id        citizenid.ID
	birth     time.Time // midnight, China Standard Time
	seq       int       // the ID's sequence digits
	male      bool
	born      bool // born before the window's end
	reg       registration
	settled   time.Time // regSettled: when, before the window
	atHome    float64   // drawn once: whether an unmarried adult still lives with the parents
	home      *county   // county of the household registered in when the window opens (at birth for the newborn)
	addr      string    // registration address: the household's
	name      string
	ethnicity string
	household string
	relation  string    // to the head of household: 户主, 配偶, 子 or 女
	first     entry     // the first registration, in the county of the ID; the same as the above but for a wife who joined the husband's household later
	m         marriage  // of the pair 2k, 2k+1 (the partner may be outside the population)
	death     time.Time // within the window, or zero
	emigrated time.Time // within the window, or zero
}

// entry is a place on the hukou register: a household, its county and
// address, and the relation to its head.
type entry struct {
	county    *county
	addr      string
	household string
	relation  string
}

// registration is how a person came to be on the hukou register.
type registration uint8

const (
	regBirth        registration = iota // at birth
	regSettled                          // settled as an adult, before the window
	regUnregistered                     // without hukou (黑户) until registered in the window
	regLateSettled                      // settles in the window
)

// registeredBefore reports whether the person is on the register when the
// window opens (the newborn are not, but are registered at birth).
func (r registration) registeredBefore() bool { return r == regBirth || r == regSettled }

// stop is when the person stops producing life events: death, emigration
// or the window's end.
func (p *person) stop(end time.Time) time.Time {
	s := end
	if !p.death.IsZero() && p.death.Before(s) {
		s = p.death
	}
	if !p.emigrated.IsZero() && p.emigrated.Before(s) {
		s = p.emigrated
	}
	return s
}

// ageAt is the age in (fractional) years at t.
func (p *person) ageAt(t time.Time) float64 { return t.Sub(p.birth).Hours() / hoursPerYear }

const hoursPerYear = 24 * 365.25

// maxYears caps a span of years: a waiting time drawn longer than that
// means no event in any window. time.Duration holds only about 292 years,
// and converting a larger float is undefined (it differs by platform).
const maxYears = 200

func years(y float64) time.Duration {
	if !(y < maxYears) { // NaN too
		y = maxYears
	} else if y < -maxYears {
		y = -maxYears
	}
	return time.Duration(y * hoursPerYear * float64(time.Hour))
}

// Households. A household is registered at the address of its head (户主)
// and named after the head's county and person index: "H" + county code +
// nine digits. A couple married when the window opens (both registered by
// then) is one household, the husband its head and the wife his spouse
// (配偶). A person registered at birth (or a minor without hukou yet) who
// is unmarried when the window opens, a minor or an adult still living
// with the parents (homeRate), is a child (子, 女) in the household of
// their parents, if the parents are found (see parents); so is a baby born
// in the window, from birth. Everyone else heads a household of their own.
// The parents are found among the pairs before the child's, so they are
// in every population that the child is in, and nothing is held:
// membership is derived from indexes.
//
// That is the household when the window opens. The first registration
// (person.first), in the county of the ID, is the same but for a wife
// married before the window: she was registered in a household of her own
// (at birth or at a settlement before the wedding) and moved into the
// husband's after the wedding (see lifeCourse.joinAt); only a wife who
// settled after the wedding, and after the husband's registration, was
// registered into his household as his spouse.

// parentSearch is how many earlier pairs are searched for a child's
// parents, of which one in parentPick is considered (drawn by a hash of
// the pair and the child): taking the nearest of all would give the few
// couples followed by a long run of unsuitable ones many children.
const (
	parentSearch = 2000
	parentPick   = 16
)

func householdID(c *county, head int64) string {
	return "H" + c.code + pad(strconv.FormatInt(head, 10), 9)
}

// homeRate is the share of unmarried persons of age a still registered in
// their parents' household.
func homeRate(a float64) float64 {
	switch {
	case a < 18:
		return 1
	case a < 30:
		return 0.8
	case a < 40:
		return 0.4
	}
	return 0.15
}

// core derives what the pairing and the household search read of person
// n: birth, sex, registration, death and emigration.
func (g *generator) core(n int64) *person {
	r := newRand(g.cfg.Seed, n, streamProfile)
	birth, seq := g.slots.birth(n)
	p := &person{n: n, birth: birth, seq: seq, male: seq%2 == 1} // most slots are a woman 2k and a man 2k+1
	p.born = !birth.AddDate(0, 0, 1).After(g.end)
	uDeath, uEmig, tDeath, tEmig, uKind := r.Float64(), r.Float64(), r.Float64(), r.Float64(), r.Float64()
	p.atHome = r.Float64()
	uSettled := r.Float64()

	// Registration: most at birth; some settled later (before or during
	// the window); a few were never registered until the window (people
	// without hukou, 黑户) and show up in other departments' records first.
	switch a := p.ageAt(g.start); {
	case !birth.Before(g.start):
	case uKind < 0.004 && a >= 1:
		p.reg = regUnregistered
	case uKind < 0.02 && a >= 18 && a < 45:
		p.reg = regLateSettled
	case uKind < 0.12 && a >= 19:
		// Settled from 18 on, within 22 years.
		p.reg = regSettled
		p.settled = atHour(birth.Add(years(18+uSettled*min(a-18, 22))), 10)
		if !p.settled.Before(g.start) {
			p.settled = atHour(g.start.AddDate(0, 0, -1), 10)
		}
	}

	// Death: a Gompertz hazard (about 1.5 per thousand a year at 40, 9 at
	// 60, 55 at 80), plus infant mortality; a crude rate near China's 7‰.
	from := g.start
	if birth.After(from) {
		from = birth.AddDate(0, 0, 45) // after the newborn's registration
	}
	span := g.end.Sub(from)
	if span > 0 && p.born {
		a := p.ageAt(from)
		h := 4.1e-5 * math.Exp(0.09*a)
		if a < 1 {
			h += 0.004
		}
		if 1-math.Exp(-min(h, 0.6)*span.Hours()/hoursPerYear) > uDeath {
			p.death = truncMinute(from.Add(time.Duration(tDeath * float64(span))))
		}
		// Emigration of working-age adults: hukou.cancelled (emigration).
		if a >= 20 && a < 60 && 1-math.Exp(-0.003*span.Hours()/hoursPerYear) > uEmig {
			if t := truncMinute(from.Add(time.Duration(tEmig * float64(span)))); p.death.IsZero() || t.Before(p.death) {
				p.emigrated = t
			}
		}
	}
	return p
}

// place draws person p's own county, address, name and ethnicity, which a
// spouse or child replaces with the household head's.
func (g *generator) place(p *person) {
	r := newRand(g.cfg.Seed, p.n, streamPlace)
	p.home = g.rg.pick(r.Float64())
	if p.n%2 == 1 {
		// Most potential couples live in one city.
		if u := r.Float64(); u < 0.8 {
			wife := g.rg.pick(newRand(g.cfg.Seed, p.n-1, streamPlace).Float64())
			p.home = g.rg.pickInCity(u/0.8, wife.city)
		}
	}
	p.addr = address(r, p.home.code)
	p.name = randomName(r, p.male)
	p.ethnicity = pickWeighted(r, ethnicities(p.home.code[:2]))
}

// profile derives person n: core, pair, household and place.
func (g *generator) profile(n int64) *person {
	p := g.core(n)
	g.place(p)
	// The partner of the last of an odd number of persons is outside the
	// population but paired all the same, so that person n is the same
	// person whatever the population's size.
	var partner *person
	if p.born {
		partner = g.core(n ^ 1)
		if p.male {
			p.m = g.pair(n/2, partner, p)
		} else {
			p.m = g.pair(n/2, p, partner)
		}
	}
	switch {
	case !p.born:
	case partner != nil && g.coupleAtStart(p.m, p, partner):
		if !p.male {
			// She joins the husband's household after the wedding, from a
			// household of her own; or she settled into it as his spouse.
			if p.reg == regBirth || !p.settled.After(p.m.wed) || partner.reg == regSettled && !p.settled.After(partner.settled) {
				p.first = entry{county: p.home, addr: p.addr, household: householdID(p.home, n), relation: "户主"}
			}
			g.place(partner)
			p.home, p.addr = partner.home, partner.addr
			p.household, p.relation = householdID(partner.home, partner.n), "配偶"
		}
	case (p.reg == regBirth || p.reg == regUnregistered && p.ageAt(g.start) < 18) &&
		(p.m.wed.IsZero() || !p.m.wed.Before(g.start)) && p.atHome < homeRate(p.ageAt(g.start)):
		if f := g.parents(p); f != nil {
			p.home, p.addr, p.ethnicity = f.home, f.addr, f.ethnicity
			p.name = surname(f.name) + p.name[len(surname(p.name)):]
			p.household, p.relation = householdID(f.home, f.n), "子"
			if !p.male {
				p.relation = "女"
			}
		}
	}
	if p.household == "" {
		p.household, p.relation = householdID(p.home, n), "户主"
	}
	if p.first.household == "" {
		p.first = entry{county: p.home, addr: p.addr, household: p.household, relation: p.relation}
	}
	// The county of the ID is where the person was first registered.
	p.id = makeID(p.first.county.code, p.birth, p.seq)
	return p
}

// joins reports whether the person moves into the household they are in
// when the window opens after their first registration: a wife married
// before the window, into the husband's.
func (p *person) joins() bool { return p.first.household != p.household }

// registeredBy is a time by which a person on the register when the
// window opens was registered: the settlement, or 32 days after the birth
// (see lifeCourse.registration).
func (p *person) registeredBy() time.Time {
	if p.reg == regSettled {
		return p.settled
	}
	return p.birth.AddDate(0, 0, 32)
}

// coupleAtStart reports whether a pair forms one household when the window
// opens: married before it, not divorced by then, both on the register.
func (g *generator) coupleAtStart(m marriage, a, b *person) bool {
	return !m.wed.IsZero() && m.wed.Before(g.start) && (m.divorced.IsZero() || !m.divorced.Before(g.start)) &&
		a.reg.registeredBefore() && b.reg.registeredBefore()
}

// parents returns the father of child c, with his place drawn, or nil.
// The parents are an earlier pair, at most parentSearch pairs before c's,
// that is a couple when the window opens, married before the child's
// birth (for every child, not only the babies born in the window: a
// couple's household holds no child born before the wedding) and not
// divorced by then, the husband on the
// register since his birth (so that his household is older than the
// child), both alive at the birth, the mother 20 to 34 and the father 20
// to 35 years old at it. Of the pairs that qualify, the nearest of those a
// hash of pair and child picks (one in parentPick), or else the nearest.
//
// The mother's ages keep the children of one couple less than 15 years
// apart, and the father's keep him less than 36 years older than them, so
// that the hub's presumptions by age gap within a household (15 years or
// more: parent and child; 36 or more: grandparent) hold. A woman's
// parents are searched among the pairs an odd number before hers, her
// potential husband's among those an even number before, so that the two
// are never brother and sister. As each child's parents are found on
// their own, the number of children per couple scatters: most couples
// with children at home have one or two, a few five or more.
func (g *generator) parents(c *person) *person {
	if f := g.searchParents(c, parentPick); f != nil {
		return f
	}
	return g.searchParents(c, 1) // near the first index, few pairs precede
}

// searchParents is parents, considering one pair in pick.
func (g *generator) searchParents(c *person, pick uint64) *person {
	k := c.n / 2
	for j := k - 1 - c.n%2; j >= 0 && j >= k-parentSearch; j -= 2 {
		if mix(uint64(c.n), uint64(j))%pick != 0 {
			continue
		}
		if wb, _ := g.slots.birth(2 * j); !parentAge(wb, c.birth, 35) {
			continue
		}
		if hb, _ := g.slots.birth(2*j + 1); !parentAge(hb, c.birth, 36) {
			continue
		}
		wife, husband := g.core(2*j), g.core(2*j+1)
		m := g.pair(j, wife, husband)
		if !g.coupleAtStart(m, wife, husband) || husband.reg != regBirth || !m.wed.Before(c.birth) ||
			!m.divorced.IsZero() && !m.divorced.After(c.birth) ||
			!wife.stop(g.end).After(c.birth) || !husband.stop(g.end).After(c.birth) {
			continue
		}
		g.place(husband)
		return husband
	}
	return nil
}

// parentAge reports whether a parent born on parent is at least 20 and
// under below years old when the child is born.
func parentAge(parent, child time.Time, below int) bool {
	return !child.Before(parent.AddDate(20, 0, 0)) && child.Before(parent.AddDate(below, 0, 0))
}

// surname is the first character of a name (every surname drawn has one).
func surname(name string) string {
	_, size := utf8.DecodeRuneInString(name)
	return name[:size]
}

// address draws a 12-digit statistical address code in a county: a real
// village or residents' committee of the region table (schemas/region).
func address(r *rand.Rand, countyCode string) string {
	list := countyAddresses()[countyCode]
	return list[r.IntN(len(list))]
}

// countyAddresses lists, per county of the built-in county list, the
// 12-digit codes the region table has under it, in code order. It reads
// the built-in table rather than the one in use, so that a seed gives the
// same persons whether or not an official table was imported (an overlay
// only replaces and adds codes, so they stay known).
var countyAddresses = sync.OnceValue(func() map[string][]string {
	out := map[string][]string{}
	tab := region.Builtin()
	for _, c := range counties() {
		for _, t := range tab.Children(c.code) {
			for _, v := range tab.Children(t.Code) {
				out[c.code] = append(out[c.code], v.Code)
			}
		}
	}
	return out
})

func pad(s string, n int) string {
	for len(s) < n {
		s = "0" + s
	}
	return s
}

func truncMinute(t time.Time) time.Time { return t.Truncate(time.Minute) }

// marriage is what the pair stream decides for persons 2k and 2k+1. Both
// derive it the same way, so each can emit its own half.
type marriage struct {
	wed, divorced time.Time // zero when none
	familyMove    time.Time // the wife moves her hukou into the husband's household
}

// pair decides whether wife (2k) and husband (2k+1) marry, before or
// during the window, and whether they divorce.
func (g *generator) pair(k int64, wife, husband *person) marriage {
	var m marriage
	if !wife.born || !husband.born || wife.male || !husband.male { // an unpaired man's slot
		return m
	}
	r := newRand(g.cfg.Seed, k, streamPair)
	uEver, uAge, uDiv, uDivT, uWed, uDiv2, uMove, uMoveT := r.Float64(), r.Float64(), r.Float64(), r.Float64(), r.ExpFloat64(), r.ExpFloat64(), r.Float64(), r.Float64()
	limit := wife.stop(g.end)
	if s := husband.stop(g.end); s.Before(limit) {
		limit = s
	}
	// Legal ages: 20 for women, 22 for men.
	legal := wife.birth.AddDate(20, 0, 0)
	if h := husband.birth.AddDate(22, 0, 0); h.After(legal) {
		legal = h
	}
	aw := wife.ageAt(g.start)
	marriedBefore := false
	if legal.Before(g.start) && aw > 20 {
		// The share ever married by the window's start rises with age to 90%.
		ever := 0.9 * (1 - math.Exp(-(aw-20)/5))
		if uEver < ever {
			// The wife's age at the wedding, from the same exponential.
			f := 1 - math.Exp(-(aw-20)/5)
			x := -5 * math.Log(1-uAge*f)
			wed := wife.birth.Add(years(20 + x))
			if wed.Before(legal) {
				wed = legal
			}
			if wed.Before(g.start) {
				m.wed = atHour(wed, 10)
				marriedBefore = true
				if uDiv < 0.08 && g.start.Sub(m.wed) > years(1) {
					m.divorced = atHour(m.wed.Add(years(1)+time.Duration(uDivT*float64(g.start.Sub(m.wed)-years(1)))), 14)
					return m
				}
			}
		}
	}
	if !marriedBefore {
		from := g.start
		if legal.After(from) {
			from = legal
		}
		// Yearly hazards of the unmarried by the wife's age, so that the
		// window has some 4.5 to 5 weddings per 1,000 persons a year
		// (China: 5.4 in 2023, 4.3 in 2024), first marriages standing in
		// for remarriages too, as partners are fixed.
		a := wife.ageAt(from)
		var h float64
		switch {
		case a < 20:
		case a < 25:
			h = 0.10
		case a < 30:
			h = 0.20
		case a < 35:
			h = 0.13
		case a < 45:
			h = 0.045
		default:
			h = 0.008
		}
		if h == 0 {
			return m
		}
		wed := atHour(from.Add(years(uWed/h)), 10)
		if !wed.Before(limit) {
			return m
		}
		m.wed = wed
		// Half the newly-wed wives move their hukou into the husband's
		// household, within six months; not when he is only registered
		// in the window, at a time his own life course draws (his
		// household might not exist yet).
		if uMove < 0.5 && husband.reg.registeredBefore() {
			if t := atHour(wed.Add(time.Duration(15+int(uMoveT*165))*24*time.Hour), 9); t.Before(limit) {
				m.familyMove = t
			}
		}
	}
	// Divorce during the window: about 0.7% of couples a year (some two
	// per thousand people, as in China's statistics).
	from := g.start
	if f := m.wed.AddDate(0, 6, 0); f.After(from) {
		from = f
	}
	if t := atHour(from.Add(years(uDiv2/0.007)), 14); t.Before(limit) {
		m.divorced = t
		if !m.familyMove.IsZero() && m.familyMove.After(t) {
			m.familyMove = time.Time{}
		}
	}
	return m
}

// atHour is midnight of t's day plus hour hours, keeping t's minutes so that
// two events of one day rarely share a time.
func atHour(t time.Time, hour int) time.Time {
	t = t.In(china)
	return time.Date(t.Year(), t.Month(), t.Day(), hour, t.Minute(), 0, 0, china)
}
