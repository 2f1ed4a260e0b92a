package synth

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/pophub/pophub/schemas"
)

// lifeCourse generates the events of one person. Rates are yearly hazards
// drawn as exponential waiting times; they are rough figures for urban
// north-east China, chosen so that a few thousand people show every kind of
// event in two years.
type lifeCourse struct {
	g    *generator
	p    *person
	r    *rand.Rand
	evs  []schemas.Event
	stop time.Time // death, emigration or the window's end

	// Filled in as the course is generated.
	regAt      time.Time
	school     []stage // the education path
	workFrom   time.Time
	degree     bool // graduated from a bachelor's programme or higher
	spells     []spell
	insured    bool         // enrolled in the employee scheme
	military   [2]time.Time // enlistment and discharge
	owned      []property
	moves      []move
	studyMoves []move
}

type move struct {
	at        time.Time
	to        *county
	reason    string
	household string
	addr      string
}

// add appends an event if it takes effect before the window's end and
// after the birth, and reports whether it did: what follows from an event
// (a divorce from a marriage, a deregistration from a registration) is
// only added if the event was.
func (lc *lifeCourse) add(t time.Time, typ schemas.Type, data schemas.Data) bool {
	if !t.Before(lc.g.end) || t.Before(lc.p.birth) {
		return false
	}
	lc.evs = append(lc.evs, schemas.Event{SpecVersion: schemas.SpecVersion, Source: schemas.SourceOf(typ), Type: typ,
		Subject: lc.p.id, Time: t, DataContentType: "application/json", Payload: data})
	return true
}

// alive appends an event that only a living, resident person causes, and
// reports whether it did.
func (lc *lifeCourse) alive(t time.Time, typ schemas.Type, data schemas.Data) bool {
	return t.Before(lc.stop) && lc.add(t, typ, data)
}

func (lc *lifeCourse) chance(p float64) bool { return lc.r.Float64() < p }

// after is an exponential waiting time at rate per year from t.
func (lc *lifeCourse) after(t time.Time, rate float64) time.Time {
	if rate <= 0 {
		return lc.g.end.AddDate(100, 0, 0)
	}
	return t.Add(years(lc.r.ExpFloat64() / rate))
}

// between draws a time in [a, b), to the minute.
func (lc *lifeCourse) between(a, b time.Time) time.Time {
	if !b.After(a) {
		return a
	}
	return truncMinute(a.Add(time.Duration(lc.r.Int64N(int64(b.Sub(a))))))
}

// on is day d at hour h with random minutes.
func (lc *lifeCourse) on(d time.Time, h int) time.Time {
	d = d.In(china)
	return time.Date(d.Year(), d.Month(), d.Day(), h, lc.r.IntN(60), 0, 0, china)
}

func day(t time.Time) string { return t.In(china).Format(time.DateOnly) }

// generate runs the whole life course and returns the events in time order
// with their ids.
func (lc *lifeCourse) generate(m marriage, spouse *person) []schemas.Event {
	lc.stop = lc.p.stop(lc.g.end)
	lc.registration()
	lc.education()
	lc.militaryService()
	lc.work()
	lc.housing()
	lc.business()
	lc.migrations(m, spouse)
	lc.permits()
	lc.marriage(m, spouse)
	lc.identity()
	lc.endOfLife()

	slices.SortStableFunc(lc.evs, func(a, b schemas.Event) int { return a.Time.Compare(b.Time) })
	seq := 0
	for i := range lc.evs {
		ev := &lc.evs[i]
		seq++
		ev.ID = lc.g.eventID(ev.Source, lc.p.n, seq)
		b, err := json.Marshal(ev.Payload)
		if err != nil {
			panic("synth: encoding event data: " + err.Error()) // plain structs of strings and numbers
		}
		ev.Data = b
	}
	return lc.evs
}

// registration: every person's first hukou.registered, into the
// household of their first registration (see person.go): at birth in the
// county of the ID, as a child of the parents' household or heading one
// of their own. Most at birth; some settled later (before or during the
// window); a few were never registered until the window (people without
// hukou, 黑户) and show up in other departments' records first; a few are
// registered with a birth date that disagrees with their ID number.
func (lc *lifeCourse) registration() {
	p, g := lc.p, lc.g
	a := p.ageAt(g.start)
	reason := "birth"
	switch p.reg {
	case regUnregistered:
		lc.regAt, reason = lc.between(g.start, lc.stop), "other"
	case regLateSettled:
		lc.regAt, reason = lc.between(g.start, lc.stop), "settlement"
	case regSettled:
		lc.regAt, reason = p.settled, "settlement"
	default:
		if !p.birth.Before(g.start) { // born in the window
			lc.regAt = lc.on(p.birth.AddDate(0, 0, 3+lc.r.IntN(38)), 9)
			if !lc.regAt.Before(g.end) {
				lc.regAt = p.birth.Add(12 * time.Hour)
			}
		} else {
			lc.regAt = lc.on(p.birth.AddDate(0, 0, 1+lc.r.IntN(30)), 10)
		}
	}
	birth := day(p.birth)
	if a >= 1 && lc.chance(0.003) { // a clerical error: id_mismatch until corrected
		birth = day(p.birth.AddDate(0, 0, []int{-1, 1, 10, -31, 365, -365}[lc.r.IntN(6)]))
		if lc.chance(0.6) && lc.regAt.Before(lc.stop) {
			from := g.start
			if lc.regAt.After(from) {
				from = lc.regAt.Add(24 * time.Hour)
			}
			lc.alive(lc.between(from, lc.stop), schemas.IdentityCorrected, &schemas.IdentityCorrectedData{BirthDate: day(p.birth)})
		}
	}
	gender := "2"
	if p.male {
		gender = "1"
	}
	lc.add(lc.regAt, schemas.HukouRegistered, &schemas.HukouRegisteredData{Name: p.name, Gender: gender, BirthDate: birth,
		Ethnicity: p.ethnicity, AddressCode: p.first.addr, HouseholdID: p.first.household, Relation: p.first.relation, Reason: reason})
}

// identity: name changes (改名) at a low rate.
func (lc *lifeCourse) identity() {
	from := lc.g.start
	if lc.regAt.After(from) {
		from = lc.regAt.Add(24 * time.Hour)
	}
	if t := lc.after(from, 0.004); t.Before(lc.stop) && !lc.inService(t) {
		lc.alive(lc.on(t, 10), schemas.IdentityCorrected, &schemas.IdentityCorrectedData{Name: randomName(lc.r, lc.p.male)})
	}
}

// militaryService: a few young men enlist in September; their hukou is
// cancelled (military) and restored on discharge two years later, into
// their household. While serving they have no civilian life events.
func (lc *lifeCourse) militaryService() {
	p, g := lc.p, lc.g
	if !p.male {
		return
	}
	for y := g.start.Year(); y <= g.end.Year(); y++ {
		t := time.Date(y, time.September, 10, 9, 0, 0, 0, china)
		a := p.ageAt(t)
		if t.Before(g.start) || !t.Before(lc.stop) || a < 18 || a >= 22 || t.Before(lc.workFrom) || lc.regAt.After(t) {
			continue
		}
		if lc.chance(0.03) {
			if lc.alive(lc.on(t, 9), schemas.HukouCancelled, &schemas.HukouCancelledData{Reason: "military"}) {
				lc.military = [2]time.Time{t, t.AddDate(2, 0, -5)}
				lc.alive(lc.on(lc.military[1], 10), schemas.HukouRegistered, lc.reRegistration())
			}
			return
		}
	}
}

func (lc *lifeCourse) reRegistration() *schemas.HukouRegisteredData {
	gender := "2"
	if lc.p.male {
		gender = "1"
	}
	return &schemas.HukouRegisteredData{Name: lc.p.name, Gender: gender, BirthDate: day(lc.p.birth), Ethnicity: lc.p.ethnicity,
		AddressCode: lc.p.addr, HouseholdID: lc.p.household, Relation: lc.p.relation, Reason: "restored"}
}

func (lc *lifeCourse) inService(t time.Time) bool {
	return !lc.military[0].IsZero() && !t.Before(lc.military[0]) && t.Before(lc.military[1])
}

// marriage emits this person's half of the pair's marriage and divorce.
func (lc *lifeCourse) marriage(m marriage, spouse *person) {
	if spouse == nil || m.wed.IsZero() {
		return
	}
	if lc.add(m.wed, schemas.MarriageRegistered, &schemas.MarriageRegisteredData{SpouseID: spouse.id}) && !m.divorced.IsZero() {
		lc.add(m.divorced, schemas.MarriageDivorced, &schemas.MarriageDivorcedData{SpouseID: spouse.id})
	}
}

// endOfLife: the death certificate (health), the hukou cancellation that
// usually but not always follows (应销未销 when it does not), the
// employer's and insurer's paperwork; or an emigration.
func (lc *lifeCourse) endOfLife() {
	p := lc.p
	if !p.emigrated.IsZero() && (p.death.IsZero() || p.emigrated.Before(p.death)) {
		lc.add(p.emigrated, schemas.HukouCancelled, &schemas.HukouCancelledData{Reason: "emigration"})
		return
	}
	if p.death.IsZero() {
		return
	}
	place := p.home.code
	if len(lc.moves) > 0 {
		place = lc.moves[len(lc.moves)-1].to.code
	}
	cert := "D" + place + strconv.Itoa(p.death.Year()) + pad(strconv.FormatInt(p.n, 10), 9)
	lc.add(p.death.Add(time.Duration(2+lc.r.IntN(10))*time.Hour), schemas.DeathCertified,
		&schemas.DeathCertifiedData{DateOfDeath: day(p.death), CertificateNo: cert, PlaceCode: place})
	if lc.chance(0.85) && !lc.regAt.After(p.death) {
		lc.add(lc.on(p.death.AddDate(0, 0, 3+lc.r.IntN(57)), 10), schemas.HukouCancelled, &schemas.HukouCancelledData{Reason: "death"})
	}
	if n := len(lc.spells); n > 0 && lc.spells[n-1].end.IsZero() && lc.chance(0.85) {
		t := lc.on(p.death.AddDate(0, 0, 3+lc.r.IntN(17)), 16)
		lc.add(t, schemas.ContractEnded, &schemas.ContractEndedData{ContractID: lc.spells[n-1].contract, End: day(p.death)})
		if lc.chance(0.8) && lc.insured {
			lc.add(lc.on(t.AddDate(0, 0, 10+lc.r.IntN(30)), 10), schemas.InsuranceTerminated, &schemas.InsuranceTerminatedData{
				Insurances: lc.spells[n-1].insurances, Region: lc.spells[n-1].county.code, End: day(p.death)})
		}
	}
	for _, pr := range lc.owned {
		if lc.chance(0.25) && !pr.sold { // inherited
			lc.add(lc.on(p.death.AddDate(0, 2+lc.r.IntN(10), 0), 15), schemas.PropertyTransferred, &schemas.PropertyTransferredData{PropertyID: pr.id})
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
