package synth

import (
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/region"
)

// person is what everyone may know of person n without generating their
// life course: identity, registered home, and the dates that end their
// life in the region (death, emigration). A spouse's life course reads it.
type person struct {
	n         int64
	id        citizenid.ID
	birth     time.Time // midnight, China Standard Time
	male      bool
	born      bool // born before the window's end
	home      *county
	addr      string // registration address
	name      string
	ethnicity string
	household string
	death     time.Time // within the window, or zero
	emigrated time.Time // within the window, or zero
}

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

func years(y float64) time.Duration { return time.Duration(y * hoursPerYear * float64(time.Hour)) }

// profile derives person n from its own random stream.
func (g *generator) profile(n int64) *person {
	r := newRand(g.cfg.Seed, n, streamProfile)
	birth, seq := g.slots.birth(n)
	p := &person{n: n, birth: birth, male: n%2 == 1}
	p.born = !birth.AddDate(0, 0, 1).After(g.end)
	p.home = g.rg.pick(r.Float64())
	if n%2 == 1 {
		// Most potential couples live in one city.
		if u := r.Float64(); u < 0.8 {
			wife := g.rg.pick(newRand(g.cfg.Seed, n-1, streamProfile).Float64())
			p.home = g.rg.pickInCity(u/0.8, wife.city)
		}
	}
	p.id = makeID(p.home.code, birth, seq)
	p.addr = address(r, p.home.code)
	p.name = randomName(r, p.male)
	p.ethnicity = pickWeighted(r, ethnicities(p.home.code[:2]))
	// Persons 2k and 2k+1 of one county share a household.
	p.household = "H" + p.home.code + pad(strconv.FormatInt(n/2, 10), 9)

	// Death: a Gompertz hazard (about 1.5 per thousand a year at 40, 9 at
	// 60, 55 at 80), plus infant mortality; a crude rate near China's 7‰.
	from := g.start
	if birth.After(from) {
		from = birth.AddDate(0, 0, 45) // after the newborn's registration
	}
	span := g.end.Sub(from)
	uDeath, uEmig := r.Float64(), r.Float64()
	tDeath, tEmig := r.Float64(), r.Float64()
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
	if !wife.born || !husband.born {
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
		a := wife.ageAt(from)
		var h float64
		switch {
		case a < 20:
		case a < 25:
			h = 0.07
		case a < 30:
			h = 0.14
		case a < 35:
			h = 0.09
		case a < 45:
			h = 0.03
		default:
			h = 0.005
		}
		if h == 0 {
			return m
		}
		wed := atHour(from.Add(years(uWed/h)), 10)
		if !wed.Before(limit) {
			return m
		}
		m.wed = wed
		if wife.home.code != husband.home.code && uMove < 0.3 {
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
