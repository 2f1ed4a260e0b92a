package synth

import (
	"slices"
	"time"

	"github.com/pophub/pophub/schemas"
)

// migrations: hukou moves for study, work (to the city of a job held for a
// while), a purchased home, marriage (the wife into the husband's
// household: before the window for a couple married by then, within six
// months of the wedding; in the window for half the newly-wed) and,
// rarely, other reasons; each from the current address, starting from
// the first registration's. Who moves for work, a home or other reasons
// starts a household of their own in the new county.
//
// The head of a household with others in it does not move his hukou: the
// husband of a couple when the window opens, whose household holds his
// wife and any children (they are only ever registered with a couple's
// husband, see parents). Moving alone would leave them in a household
// without its head, which the register does not do; moving them with him
// would make every member's life course derive his. He keeps his hukou
// where it is and, working in another city, gets a residence permit there
// (see permits), as most such families do.
func (lc *lifeCourse) migrations(m marriage, spouse *person) {
	p, g := lc.p, lc.g
	moves := append([]move(nil), lc.studyMoves...)
	switch {
	case !m.familyMove.IsZero() && p.male:
		// His wife moves into his household in the window: he keeps it
		// where it is, so that it is still his when she comes.
		moves = nil
	case p.male && spouse != nil && g.coupleAtStart(m, spouse, p):
		moves = nil
	case !m.familyMove.IsZero() && spouse != nil:
		moves = append(moves, move{at: m.familyMove, to: spouse.home, reason: "family", household: spouse.household, addr: spouse.addr})
	default:
		for _, sp := range lc.spells {
			if sp.county.city == p.home.city {
				continue
			}
			t := lc.after(maxTime(g.start, sp.start.AddDate(0, 6, 0)), 0.1)
			if (sp.end.IsZero() || t.Before(sp.end)) && t.Before(lc.stop) {
				reason := "employment"
				if lc.degree && lc.chance(0.5) {
					reason = "talent"
				}
				moves = append(moves, move{at: lc.on(t, 10), to: sp.county, reason: reason})
			}
		}
		for _, pr := range lc.owned {
			if pr.bought.After(g.start) && pr.county != p.home.code && lc.chance(0.35) {
				moves = append(moves, move{at: lc.on(pr.bought.AddDate(0, 1+lc.r.IntN(5), 0), 10), to: g.rg.byCode[pr.county], reason: "housing"})
			}
		}
		if t := lc.after(g.start, 0.002); p.ageAt(g.start) >= 18 {
			reason := "other"
			if lc.chance(0.4) {
				reason = "business"
			}
			moves = append(moves, move{at: lc.on(t, 10), to: g.rg.pickOtherCity(lc.r.Float64(), p.home.city), reason: reason})
		}
	}
	if p.joins() && spouse != nil {
		moves = append(moves, move{at: lc.joinAt(m, spouse), to: p.home, reason: "family", household: p.household, addr: p.addr})
	}
	slices.SortFunc(moves, func(a, b move) int { return a.at.Compare(b.at) })
	cur, curCounty, curHousehold := p.first.addr, p.first.county, p.first.household
	for _, mv := range moves {
		if !mv.at.Before(lc.stop) || mv.at.Before(lc.regAt) || lc.inService(mv.at) || mv.to == nil {
			continue
		}
		// Into a household (the husband's, a college's): unless already
		// there. Otherwise: to another county.
		if mv.household != "" && mv.household == curHousehold || mv.household == "" && mv.to.code == curCounty.code {
			continue
		}
		to := mv.addr
		if to == "" {
			to = address(lc.r, mv.to.code)
		}
		hh := mv.household
		if hh == "" {
			hh = householdID(mv.to, p.n)
		}
		if !lc.alive(mv.at, schemas.HukouMigrated, &schemas.HukouMigratedData{FromAddressCode: cur, ToAddressCode: to, Reason: mv.reason, HouseholdID: hh}) {
			continue
		}
		mv.addr = to
		lc.moves = append(lc.moves, mv)
		cur, curCounty, curHousehold = to, mv.to, hh
	}
}

// joinAt is when a wife married before the window moves her hukou into
// the husband's household: 15 days to six months after the wedding, or
// after her or his later registration, and before the window opens.
func (lc *lifeCourse) joinAt(m marriage, husband *person) time.Time {
	from := maxTime(m.wed, maxTime(lc.regAt, husband.registeredBy()))
	if t := lc.on(from.AddDate(0, 0, 15+lc.r.IntN(166)), 9); t.Before(lc.g.start) {
		return t
	}
	return lc.between(from.Add(time.Hour), lc.g.start)
}

// hukouCityAt is the city of the registered address at t.
func (lc *lifeCourse) hukouCityAt(t time.Time) string {
	city := lc.p.first.county.city
	for _, mv := range lc.moves {
		if mv.at.After(t) {
			break
		}
		city = mv.to.city
	}
	return city
}

// permits: residence permits (居住证) for people working in a city other
// than their hukou's, revoked when they leave or move their hukou there.
func (lc *lifeCourse) permits() {
	g := lc.g
	for i, sp := range lc.spells {
		t := lc.on(sp.start.AddDate(0, 0, 20+lc.r.IntN(70)), 10)
		if (!sp.end.IsZero() && !t.Before(sp.end)) || lc.hukouCityAt(t) == sp.county.city || !lc.chance(0.7) {
			continue
		}
		if sp.renewal {
			continue // the permit of the previous contract continues
		}
		data := &schemas.ResidencePermitIssuedData{CityCode: cityCode(sp.county), AddressCode: address(lc.r, sp.county.code), Basis: "employment"}
		if lc.chance(0.5) {
			data.ValidUntil = day(t.AddDate(2, 0, 0))
		}
		lc.alive(t, schemas.ResidencePermitIssued, data)
		// Revoked when the hukou moves into that city, or (sometimes) when
		// the job there ends.
		revoke := time.Time{}
		for _, mv := range lc.moves {
			if mv.at.After(t) && mv.to.city == sp.county.city {
				revoke = lc.on(mv.at.AddDate(0, 0, 10+lc.r.IntN(30)), 11)
				break
			}
		}
		if revoke.IsZero() && !sp.end.IsZero() && (i+1 == len(lc.spells) || lc.spells[i+1].county.city != sp.county.city) && lc.chance(0.5) {
			revoke = lc.on(sp.end.AddDate(0, 1+lc.r.IntN(3), 0), 11)
		}
		if !revoke.IsZero() {
			lc.alive(revoke, schemas.ResidencePermitRevoked, &schemas.ResidencePermitRevokedData{CityCode: cityCode(sp.county)})
		}
	}
	// Students in another city's college without moving their hukou, and
	// owners of a home in another city.
	for _, s := range lc.school {
		c := g.rg.byCode[s.county]
		if s.college && c != nil && !s.enrol.Before(g.start) && lc.hukouCityAt(s.enrol.AddDate(0, 1, 0)) != c.city && lc.chance(0.2) {
			lc.alive(lc.on(s.enrol.AddDate(0, 1, 0), 10), schemas.ResidencePermitIssued, &schemas.ResidencePermitIssuedData{
				CityCode: cityCode(c), AddressCode: address(lc.r, c.code), Basis: "study", ValidUntil: day(s.grad)})
		}
	}
	for _, pr := range lc.owned {
		c := g.rg.byCode[pr.county]
		if c != nil && pr.bought.After(g.start) && lc.hukouCityAt(pr.bought.AddDate(0, 2, 0)) != c.city && lc.chance(0.5) {
			lc.alive(lc.on(pr.bought.AddDate(0, 2, 0), 10), schemas.ResidencePermitIssued, &schemas.ResidencePermitIssuedData{
				CityCode: cityCode(c), AddressCode: address(lc.r, c.code), Basis: "housing"})
		}
	}
}
