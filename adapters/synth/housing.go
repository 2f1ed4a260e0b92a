package synth

import (
	"strconv"
	"time"

	"github.com/pophub/pophub/schemas"
)

type property struct {
	id     string
	county string
	bought time.Time
	sold   bool
}

// housing: properties owned (before and during the window) and sold,
// leases registered, renewed and ended.
func (lc *lifeCourse) housing() {
	p, g := lc.p, lc.g
	a := p.ageAt(g.start)
	propNo, leaseNo := 0, 0
	buy := func(t time.Time, c string, acquired string) {
		propNo++
		prop := property{id: "FC" + c + "-" + strconv.FormatInt(p.n, 10) + "-" + strconv.Itoa(propNo), county: c, bought: t}
		area := float64(450+lc.r.IntN(1200)) / 10
		if lc.alive(t, schemas.PropertyRegistered, &schemas.PropertyRegisteredData{PropertyID: prop.id, AddressCode: address(lc.r, c),
			Acquired: acquired, AreaM2: &area}) {
			lc.owned = append(lc.owned, prop)
		}
	}
	acquiredKind := func() string {
		switch u := lc.r.Float64(); {
		case u < 0.8:
			return "purchase"
		case u < 0.88:
			return "inheritance"
		case u < 0.95:
			return "gift"
		default:
			return "self_built"
		}
	}
	if a >= 25 && lc.chance(min(0.6, 0.1+0.02*(a-25))) {
		t := lc.on(lc.between(g.start.Add(-years(min(a-23, 25))), g.start), 10)
		buy(t, lc.homeOrWork(t).code, acquiredKind())
	}
	// Purchases during the window.
	if t := lc.after(g.start, 0.02); a >= 22 && a < 60 && t.Before(lc.stop) && !lc.inService(t) {
		buy(lc.on(t, 10), lc.homeOrWork(t).code, "purchase")
	}
	// Sales.
	for i := range lc.owned {
		pr := &lc.owned[i]
		from := maxTime(g.start, pr.bought.AddDate(0, 1, 0))
		if t := lc.after(from, 0.025); t.Before(lc.stop) {
			pr.sold = lc.alive(lc.on(t, 15), schemas.PropertyTransferred, &schemas.PropertyTransferredData{PropertyID: pr.id})
		}
	}

	// Leases: one-year terms, renewed or ended.
	if a < 18 {
		return
	}
	var leaseStart time.Time
	renting := len(lc.owned) == 0 && a >= 20 && a < 45 && lc.chance(0.3)
	if renting {
		leaseStart = lc.on(g.start.AddDate(0, -lc.r.IntN(12), -1-lc.r.IntN(28)), 10)
	} else if len(lc.owned) == 0 && a < 45 {
		leaseStart = lc.on(lc.after(g.start, 0.08), 10)
	} else {
		return
	}
	addr := ""
	for leaseStart.Before(lc.stop) {
		if lc.inService(leaseStart) { // no lease while serving in the army
			leaseStart, addr = lc.on(lc.military[1].AddDate(0, 0, 10+lc.r.IntN(60)), 10), ""
			continue
		}
		leaseNo++
		id := "ZL" + strconv.FormatInt(p.n, 10) + "-" + strconv.Itoa(leaseNo)
		if addr == "" {
			addr = address(lc.r, lc.homeOrWork(leaseStart).code)
		}
		data := &schemas.RentalRegisteredData{LeaseID: id, AddressCode: addr, Start: day(leaseStart)}
		end := leaseStart.AddDate(1, 0, -1)
		open := lc.chance(0.2)
		if open {
			end = lc.after(leaseStart, 0.4)
		} else {
			data.End = day(end)
		}
		if !lc.alive(leaseStart, schemas.RentalRegistered, data) {
			return
		}
		// A purchase ends the lease early.
		for _, pr := range lc.owned {
			if pr.bought.After(leaseStart) && pr.bought.Before(end) {
				end, open = pr.bought.AddDate(0, 0, lc.r.IntN(60)), true
			}
		}
		if !end.Before(lc.stop) {
			return
		}
		if !open && lc.chance(0.6) {
			leaseStart = lc.on(end.AddDate(0, 0, 1), 10) // renewed: a new lease
			continue
		}
		lc.alive(lc.on(end, 16), schemas.RentalEnded, &schemas.RentalEndedData{LeaseID: id, End: day(end)})
		addr = ""
		if len(lc.owned) > 0 && !lc.owned[len(lc.owned)-1].bought.After(end) {
			return
		}
		leaseStart = lc.on(lc.after(end, 0.5), 10)
	}
}

// homeOrWork is the county of the job held at t, or the home county.
func (lc *lifeCourse) homeOrWork(t time.Time) *county {
	for i := len(lc.spells) - 1; i >= 0; i-- {
		if sp := lc.spells[i]; !t.Before(sp.start) && (sp.end.IsZero() || t.Before(sp.end)) {
			return sp.county
		}
	}
	return lc.p.home
}

// business: individual businesses (个体工商户) registered and deregistered
// with the tax bureau.
func (lc *lifeCourse) business() {
	p, g := lc.p, lc.g
	a := p.ageAt(g.start)
	if a < 22 || a >= 65 {
		return
	}
	no := 0
	open := func(t time.Time) {
		no++
		id := uscc("92", p.home.code, p.n*4+int64(no%4))
		name := ""
		if lc.chance(0.8) {
			name = p.name[:3] + "记" + shopKinds[lc.r.IntN(len(shopKinds))]
		}
		if !lc.alive(t, schemas.BusinessRegistered, &schemas.BusinessRegisteredData{BusinessID: id, Region: p.home.code, Name: name}) {
			return
		}
		from := maxTime(g.start, t.AddDate(0, 3, 0))
		if end := lc.after(from, 0.08); end.Before(lc.stop) {
			lc.alive(lc.on(end, 14), schemas.BusinessDeregistered, &schemas.BusinessDeregisteredData{BusinessID: id})
		} else if !lc.p.death.IsZero() && lc.chance(0.5) {
			lc.add(lc.on(lc.p.death.AddDate(0, 1+lc.r.IntN(6), 0), 14), schemas.BusinessDeregistered, &schemas.BusinessDeregisteredData{BusinessID: id})
		}
	}
	if a >= 25 && lc.chance(0.06) {
		open(lc.on(lc.between(g.start.Add(-years(min(a-22, 20))), g.start), 10))
	}
	if t := lc.after(g.start, 0.012); a < 60 && t.Before(lc.stop) {
		open(lc.on(t, 10))
	}
}
