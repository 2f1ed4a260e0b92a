package merge

import (
	"slices"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

// Timeline point kinds.
const (
	pointRegistered = "r"
	pointMigrated   = "m"
	pointCancelled  = "c"
	pointDied       = "d"
	pointPermit     = "p" // a residence permit issued: A is the city code, U its valid_until
	pointRevoked    = "x" // a residence permit revoked: A is the city code
	pointValue      = "v" // a value written to an identity register: A is the value
)

// point is one event of a person's registration or permit timeline. The
// timelines are grow-only sets ordered by stamp: unlike the registers,
// which keep only the latest value, statistics as of a past date need
// every step, and a late event must slot in where it belongs.
type point struct {
	At   Stamp  `json:"at"`
	Kind string `json:"k"`
	Code string `json:"a,omitempty"`
	// Until is an issued permit's last valid day (valid_until).
	Until string `json:"u,omitempty"`
	// Addr is an issued permit's address_code, whose city is the
	// permit's (a province's or a municipality's city_code names none) and
	// whose unit of residence its holder's hukou lies outside ("" in
	// points stored before: permitCity, permitAddress).
	Addr string `json:"ad,omitempty"`
	// Reason is a cancellation's reason.
	Reason string `json:"r,omitempty"`
	// Died is a death certificate's date_of_death: each death on the
	// timeline keeps its own, which the death register, holding the
	// latest certificate only, cannot once the person has died again.
	Died string `json:"d,omitempty"`
}

// addPoint inserts p in stamp order unless a point with its stamp is there.
func addPoint(ps []point, p point) []point {
	i, found := findPoint(ps, p.At)
	if found {
		return ps
	}
	return slices.Insert(ps, i, p)
}

// findPoint is where a point stamped at is, or would be inserted, in ps.
func findPoint(ps []point, at Stamp) (int, bool) {
	return slices.BinarySearchFunc(ps, at, func(q point, at Stamp) int {
		switch {
		case q.At == at:
			return 0
		case at.After(q.At):
			return -1
		}
		return 1
	})
}

// track records the timeline step an event makes, if any.
func (s *State) track(ev *schemas.Event, at Stamp) {
	var p point
	switch d := ev.Payload.(type) {
	case *schemas.HukouRegisteredData:
		s.keepCancellationReason()
		p = point{At: at, Kind: pointRegistered, Code: d.AddressCode}
	case *schemas.HukouMigratedData:
		p = point{At: at, Kind: pointMigrated, Code: d.ToAddressCode}
	case *schemas.HukouCancelledData:
		s.keepCancellationReason()
		p = point{At: at, Kind: pointCancelled, Reason: d.Reason}
	case *schemas.DeathCertifiedData:
		s.keepDeathDate()
		p = point{At: at, Kind: pointDied, Died: d.DateOfDeath}
	case *schemas.ResidencePermitIssuedData:
		s.keepPermitIssue(d.CityCode)
		s.PermitLine = addPoint(s.PermitLine, point{At: at, Kind: pointPermit, Code: d.CityCode, Until: d.ValidUntil, Addr: d.AddressCode})
		return
	case *schemas.ResidencePermitRevokedData:
		s.keepPermitIssue(d.CityCode)
		s.PermitLine = addPoint(s.PermitLine, point{At: at, Kind: pointRevoked, Code: d.CityCode})
		return
	default:
		return
	}
	s.HukouLine = addPoint(s.HukouLine, p)
}

// Registrations returns the spans of days in which the person counts in
// the registered population, each at its 12-digit hukou address: from a
// registration, moving on a migration's effective date (from it, for a
// person whose registration predates the hub and whose first hukou event
// is a migration: the record takes that hukou as registered, as
// knownToPublicSecurity does), ending on death or
// cancellation; a registration after a cancellation or a death restores
// the count, as it makes the person active again (Status). Days are
// China Standard Time dates of the events' effective times, except
// death, which ends the count on the certified date of death
// (deathDayAt): a certificate is issued days after the death, and a
// person who died on 30 December is not alive on the year-end reference
// day. A span's To is "" while it lasts. Steps on one day leave only that
// day's final state.
func (s *State) Registrations() []hub.Interval {
	var steps []step
	addr, registered, cancelled, dead := "", false, false, false
	for i, p := range s.HukouLine {
		switch p.Kind {
		case pointRegistered:
			addr, registered, cancelled, dead = p.Code, true, false, false
		case pointMigrated:
			addr = p.Code
			if !cancelled && !dead {
				registered = true
			}
		case pointCancelled:
			cancelled = true
		case pointDied:
			if !dead {
				steps = endBy(steps, s.deathDayAt(i))
			}
			dead = true
		}
		code := ""
		if registered && !cancelled && !dead {
			code = addr
		}
		steps = append(steps, step{day(p.At.T), code})
	}
	return intervals(steps)
}

// deathAddress is the hukou address of the death in force, "" for none
// (no death, or no address known): the address as of the death in the
// hub's order of changes (Stamp: time, then source and event id), that of
// the latest registration or migration not after the death's stamp, so
// that neither a late move before the death nor a move after it arriving
// first takes the death elsewhere. With none before it (the registration
// not known yet), it is the address of the earliest migration known
// after it, the nearest to the death. The location register counts as
// one such step: a state stored before the timeline has its address only
// there. It depends on the steps known, not on the order they arrived in.
func (s *State) deathAddress() string {
	death, dead := s.deathInForce()
	if !dead {
		return ""
	}
	var before, after Stamp
	addrBefore, addrAfter := "", ""
	see := func(at Stamp, code string) {
		switch {
		case code == "":
		case at.After(death):
			if addrAfter == "" || after.After(at) {
				after, addrAfter = at, code
			}
		case addrBefore == "" || at.After(before):
			before, addrBefore = at, code
		}
	}
	if l, ok := s.Location.get(); ok {
		see(s.Location.At, l.Address)
	}
	for _, p := range s.HukouLine {
		if p.Kind == pointRegistered || p.Kind == pointMigrated {
			see(p.At, p.Code)
		}
	}
	if addrBefore != "" {
		return addrBefore
	}
	return addrAfter
}

// deathDayAt is the day from which the death certified at HukouLine[i],
// the first certificate since the registration before it, ends the
// person's timelines: the certified date of death of this death's latest
// certificate (so a correction counts), the certificates of one death
// being those up to the next registration, which restores the hukou; but
// no later than the day the first certificate took effect, from which
// death was on record (that day when the date is unusable). Each death
// keeps its own date, so a later death, after a restoration, leaves an
// earlier one's end where it was. A date of death before the registration
// stamped before the certificate ends the count there too: the
// certificate keeps the person deceased (Status), so that registration,
// of someone already dead, counts for nothing.
func (s *State) deathDayAt(i int) string {
	d := day(s.HukouLine[i].At.T)
	latest := i
	for j := i + 1; j < len(s.HukouLine) && s.HukouLine[j].Kind != pointRegistered; j++ {
		if s.HukouLine[j].Kind == pointDied {
			latest = j
		}
	}
	if c := s.certifiedDate(s.HukouLine[latest]); c < d {
		if _, err := time.Parse(time.DateOnly, c); err == nil {
			d = c
		}
	}
	return d
}

// certifiedDate is the date of death of certificate point p. States
// stored before points carried it have it only in the death register,
// when p is the latest certificate; "" otherwise, and such a death ends
// on its first certificate's day, as it did when they were stored.
func (s *State) certifiedDate(p point) string {
	if p.Died != "" {
		return p.Died
	}
	if c, ok := s.Death.get(); ok && s.Death.At.Src == p.At.Src && s.Death.At.ID == p.At.ID {
		return c.Date
	}
	return ""
}

// keepDeathDate writes the death register's date of death into its
// certificate's point, if that point was stored before points carried
// it: a later certificate is about to replace the register, and the
// earlier death must keep its date.
func (s *State) keepDeathDate() {
	c, ok := s.Death.get()
	if !ok {
		return
	}
	for i := range s.HukouLine {
		if p := &s.HukouLine[i]; p.Kind == pointDied && p.Died == "" && p.At.Src == s.Death.At.Src && p.At.ID == s.Death.At.ID {
			p.Died = c.Date
		}
	}
}

// keepCancellationReason writes the lifecycle register's cancellation
// reason into the cancellation's point, if that point was stored before
// points carried it (cancellationReason): a registration or another
// cancellation is about to replace the register, and a cancellation for
// death or emigration must go on ending the permits it ended.
func (s *State) keepCancellationReason() {
	v, ok := s.Lifecycle.get()
	reason, cancelled := strings.CutPrefix(v, "cancelled:")
	if !ok || !cancelled {
		return
	}
	if i, found := findPoint(s.HukouLine, s.Lifecycle.At); found && s.HukouLine[i].Kind == pointCancelled && s.HukouLine[i].Reason == "" {
		s.HukouLine[i].Reason = reason
	}
}

// keepPermitIssue writes the valid_until and address of city's permit
// register into its issue's point, if that point was stored before points
// carried them (permitUntil, permitAddress): an issue or revocation is
// about to replace the register, and the permit must go on lapsing when
// it did, and ending when its holder settles where it was for.
func (s *State) keepPermitIssue(city string) {
	r := s.Permits[city]
	if r == nil || r.V == nil {
		return
	}
	i, found := findPoint(s.PermitLine, r.At)
	if !found || s.PermitLine[i].Kind != pointPermit {
		return
	}
	if p := &s.PermitLine[i]; p.Until == "" {
		p.Until = r.V.ValidUntil
	}
	if p := &s.PermitLine[i]; p.Addr == "" {
		p.Addr = r.V.Address
	}
}

// endBy cuts steps (in day order) at day d: the steps of d and later give
// way to one step counting nowhere from d, as a death certified later
// than the date of death does. With d "" the steps are returned as they
// are.
func endBy(steps []step, d string) []step {
	if d == "" {
		return steps
	}
	i := 0
	for i < len(steps) && steps[i].day < d {
		i++
	}
	return append(steps[:i:i], step{d, ""})
}

// PermitSpans returns the spans of days in which the person holds a residence
// permit, per city: from an issue's day until the day after its
// valid_until, carried on by a renewal (a later issue in the city) made by
// then and resumed by one made later. A revocation ends the permit, and so
// do death, as for the registration, and a cancellation of
// the hukou that permitEndingCancellations names. Neither lets a permit
// issued later be held: a deceased person holds none, and one whose
// hukou was cancelled for death or emigration holds none until a
// registration restores the hukou (a cancellation for death may be all
// the hub hears of a death, so it bars later issues as a certificate
// does). Days are China Standard Time dates of the events' effective
// times, death's the certified date of death (deathDayAt); steps on one day
// leave only that day's final state, as in Registrations.
//
// A permit is the city's, whichever of its codes the department wrote:
// city_code accepts a county (230102) as well as the city (230100), so
// the timeline is keyed by the 4-digit city (region.PermitCity) and every span
// carries the city written in six digits, as the counters and the API
// read it. A revocation written 230102 thus ends a permit issued as
// 230100. The points keep the codes as written, so stored states need no
// migration.
//
// A person lives in one place: a permit issued in another city ends the
// permit held in the previous one on the new permit's issue day, whether
// or not the old one is ever revoked, so that a holder who moves is
// counted in one city (and once in a province) rather than in both until
// the old permit lapses.
func (s *State) PermitSpans() []hub.Interval {
	if len(s.PermitLine) == 0 {
		return nil
	}
	w := s.walkPermits(true)
	w.expireBy("9999-12-31") // the validity ends still ahead
	cities := make([]string, 0, len(w.byCity))
	for c := range w.byCity {
		cities = append(cities, c)
	}
	slices.Sort(cities)
	var out []hub.Interval
	for _, c := range cities {
		out = append(out, intervals(w.byCity[c])...)
	}
	return out
}

// permitWalk is a replay of the permit timeline, interleaved with the
// registration timeline's deaths and cancellations, by the rules
// PermitSpans states. It remembers how far it walked, so that a walk can
// go on over points added after its last one (resume).
type permitWalk struct {
	// byCity holds the steps walked by region.PermitCity, for the spans;
	// nil in the golden record's walk, which reads only held.
	byCity map[string][]step
	// held holds, by region.PermitCity, the permits still held after the
	// steps walked, each with the issue that holds it and the first day
	// it no longer covers ("" for none).
	held map[string]heldPermit
	// expire is whether valid_until ends a permit as later days pass.
	expire bool
	// barred is a death or a hukou cancelled for death or emigration: the
	// person can hold no permit until the hukou is restored or they
	// register again, so an issue in between is not held; a cancellation
	// for death may be all the hub hears of a death. dead is a certified
	// death not yet followed by a registration.
	dead, barred bool
	// home is the hukou address after the registration points walked:
	// nobody holds a permit for the unit of residence they are
	// registered in (region.ResidenceUnit).
	home string
	// hukou and permits count the points of HukouLine and PermitLine
	// walked.
	hukou, permits int
}

type heldPermit struct {
	issue point
	end   string
}

func (w *permitWalk) end(city, d string) {
	w.step(city, step{d, ""})
	delete(w.held, city)
}

// step records a step of city's span, if w keeps spans.
func (w *permitWalk) step(city string, st step) {
	if w.byCity != nil {
		w.byCity[city] = append(w.byCity[city], st)
	}
}

// settle moves the walk's hukou to address on day d, which ends a permit
// held for address's unit of residence: the permit is for living away
// from one's hukou (seed 000 clause 二(二), seed 003 clause 十五), and who
// settles where they live no longer does. A villager of 依兰县 keeps a
// permit for Harbin's districts.
func (s *State) settle(w *permitWalk, address, d string) {
	w.home = address
	for city, h := range w.held {
		if s.atHome(w, h.issue) {
			w.end(city, d)
		}
	}
}

// atHome reports whether permit issue p is for the unit of residence the
// walk's hukou lies in. An issue stored before points carried their
// address, and no longer its city's latest, is not.
func (s *State) atHome(w *permitWalk, p point) bool {
	addr := s.permitAddress(p)
	return w.home != "" && addr != "" && region.ResidenceUnit(w.home) == region.ResidenceUnit(addr)
}

// expireBy ends the permits whose validity ran out by day d.
func (w *permitWalk) expireBy(d string) {
	for city, h := range w.held {
		if h.end != "" && h.end <= d {
			w.end(city, h.end)
		}
	}
}

// walkPermits replays the timelines. With expire false, a permit's
// valid_until does not end it as later days pass (a permit issued already
// expired is still not held): that is the walk the golden record reads,
// which does not depend on the day it is read, and keeps no spans.
func (s *State) walkPermits(expire bool) *permitWalk {
	w := &permitWalk{held: map[string]heldPermit{}, expire: expire}
	if expire {
		w.byCity = map[string][]step{}
	}
	s.walkOn(w)
	return w
}

// walkOn walks the points of both timelines that w has not walked yet.
// Going on with a walk gives what walking again from the start would only
// when the points added since it stopped all come after those it walked,
// and nothing else it read changed (resume checks that).
func (s *State) walkOn(w *permitWalk) {
	for w.hukou < len(s.HukouLine) || w.permits < len(s.PermitLine) {
		if w.permits == len(s.PermitLine) || w.hukou < len(s.HukouLine) && s.PermitLine[w.permits].At.After(s.HukouLine[w.hukou].At) {
			s.walkHukou(w)
			w.hukou++
			continue
		}
		s.walkPermit(w, s.PermitLine[w.permits])
		w.permits++
	}
}

// walkHukou walks the registration timeline's next point.
func (s *State) walkHukou(w *permitWalk) {
	p := s.HukouLine[w.hukou]
	d := day(p.At.T)
	if w.expire {
		w.expireBy(d)
	}
	if p.Kind == pointCancelled {
		w.home = "" // registered nowhere: a permit anywhere is held
	}
	switch {
	case p.Kind == pointRegistered:
		w.dead, w.barred = false, false
		s.settle(w, p.Code, d)
	case p.Kind == pointMigrated:
		s.settle(w, p.Code, d)
	case p.Kind == pointDied && !w.dead:
		// The permits end on the date of death, also those issued
		// between it and the certificate.
		if w.byCity != nil {
			dd := s.deathDayAt(w.hukou)
			for city := range w.byCity {
				w.byCity[city] = endBy(w.byCity[city], dd)
			}
		}
		clear(w.held)
		w.dead, w.barred = true, true
	case p.Kind == pointCancelled && permitEndingCancellations[s.cancellationReason(p)]:
		for city := range w.held {
			w.end(city, d)
		}
		w.barred = true
	}
}

// walkPermit walks permit point p, the permit timeline's next.
func (s *State) walkPermit(w *permitWalk, p point) {
	d := day(p.At.T)
	city := s.permitCity(p) // as the spans carry it, and the statistics API maps to the city (tableCode in hub/api)
	if w.expire {
		w.expireBy(d)
	}
	if p.Kind == pointRevoked {
		for held := range w.held {
			if held != city && revokes(p.Code, held) {
				w.end(held, d)
			}
		}
	}
	if p.Kind != pointPermit || w.dead || w.barred {
		w.end(city, d)
		return
	}
	// A later issue under the same city_code supersedes the earlier, as
	// the register keeps it, even when it is not held itself: a province's
	// code names permits of its every city.
	for other, h := range w.held {
		if other != city && h.issue.Code == p.Code {
			w.end(other, d)
		}
	}
	if s.atHome(w, p) {
		w.end(city, d) // issued where the hukou is
		return
	}
	e := dayAfter(s.permitUntil(p))
	if e != "" && e <= d {
		w.end(city, d) // issued already expired
		return
	}
	for other := range w.held {
		if other != city {
			w.end(other, d) // moved: the new city's permit replaces it
		}
	}
	w.step(city, step{d, city})
	w.held[city] = heldPermit{issue: p, end: e}
}

// permitCity is the city of permit point p, by which the walk holds it:
// an issue's address's (permitAddress), a revocation's city_code's, as
// is an issue's whose address is not known.
func (s *State) permitCity(p point) string {
	if p.Kind == pointPermit {
		if addr := s.permitAddress(p); addr != "" {
			return region.PermitCity(addr)
		}
	}
	return region.PermitCity(p.Code)
}

// permitAddress is the address_code of permit issue p. States stored
// before points carried it have it only in the city's permit register,
// when p is the city's latest issue; "" otherwise.
func (s *State) permitAddress(p point) string {
	if p.Addr != "" {
		return p.Addr
	}
	if v := s.storedIssue(p); v != nil {
		return v.Address
	}
	return ""
}

// storedIssue is the permit register of p's city_code when p is its
// latest issue, nil otherwise: where a state stored before points carried
// an issue's valid_until and address keeps them.
func (s *State) storedIssue(p point) *permit {
	if r := s.Permits[p.Code]; r != nil && r.V != nil && r.At.Src == p.At.Src && r.At.ID == p.At.ID {
		return r.V
	}
	return nil
}

// revokes reports whether a revocation written under city_code code ends
// the permit held in city (a permitWalk.held key): a code of the city, or
// of its province or municipality, any of which a department may write
// for the permit's address (region.InPermitCity); a person holds one
// permit at a time. A permit stored under a province's code before issue
// points carried their city is ended by any code of the province.
func revokes(code, city string) bool {
	return region.InPermitCity(city, code) || region.InPermitCity(code, city)
}

// resumable reports whether a walk of the timelines as they are can go
// on over the point permit event ev is about to add (resume), as far as
// the state before ev tells. A permit point stored before points carried
// valid_until reads it from its city's register (permitUntil) while it
// is that register's latest issue: ev, writing the register, changes
// what such a point meant, and only walking again from the start says
// how.
func (s *State) resumable(ev *schemas.Event) bool {
	var code string
	switch d := ev.Payload.(type) {
	case *schemas.ResidencePermitIssuedData:
		code = d.CityCode
	case *schemas.ResidencePermitRevokedData:
		code = d.CityCode
	default:
		return false
	}
	reg := s.Permits[code]
	if reg == nil || reg.V == nil || reg.V.ValidUntil == "" {
		return true
	}
	i, found := findPoint(s.PermitLine, reg.At)
	return !found || s.PermitLine[i].Until != ""
}

// resume goes on with w, a walk of the timelines as they were before
// permit event ev was applied (resumable), over the point ev added, and
// reports whether that gives what walking again from the start would:
// when that point comes after every point of both timelines. A permit
// renewed again and again, or a department's runaway export, adds its
// points in that order, and each then costs one step rather than the
// whole timeline.
func (s *State) resume(w *permitWalk, ev *schemas.Event) bool {
	if w.hukou != len(s.HukouLine) || w.permits+1 != len(s.PermitLine) {
		return false // a repeat adds no point
	}
	p := s.PermitLine[w.permits]
	if p.At.Src != ev.Source || p.At.ID != ev.ID {
		return false // ev's point is not the last
	}
	if n := len(s.HukouLine); n > 0 && !p.At.After(s.HukouLine[n-1].At) {
		return false
	}
	s.walkOn(w)
	return true
}

// currentPermits returns the residence permits the golden record lists:
// those PermitSpans has not ended by the person's latest known step, so
// that a permit superseded by one issued in another city, revoked, or
// ended by death or by the hukou's cancellation for emigration is no longer
// listed. Each is given as its latest issue wrote it, with the stamp of
// that issue. A valid_until passing is not applied: the record does not
// depend on the day it is read, and shows valid_until for the reader to
// judge.
func (s *State) currentPermits() []currentPermit {
	if len(s.PermitLine) == 0 {
		// A state stored before the permit timeline existed: its
		// registers are all there is.
		var out []currentPermit
		for city, reg := range s.Permits {
			if p, ok := reg.get(); ok {
				out = append(out, currentPermit{city, p, reg.At})
			}
		}
		return out
	}
	return s.heldPermits(s.walkPermits(false))
}

// heldPermits lists the permits the golden record's walk w (walkPermits
// with expire false) holds, as currentPermits gives them.
func (s *State) heldPermits(w *permitWalk) []currentPermit {
	var out []currentPermit
	for _, h := range w.held {
		if reg := s.Permits[h.issue.Code]; reg != nil && reg.V != nil && reg.At == h.issue.At {
			out = append(out, currentPermit{h.issue.Code, *reg.V, reg.At})
		}
	}
	return out
}

type currentPermit struct {
	code string // as the issue wrote it
	p    permit
	at   Stamp
}

// permitEndingCancellations are the reasons for cancelling a hukou that
// also end the person's residence permits. A residence permit (居住证) is
// held by a citizen living away from their hukou place in China (seed 000
// clause 二(二), seed 003 clause 十五): it ends with death and with settling
// abroad. Enlistment does not end it: seeds 000, 001, 003 and 004 make
// military service a duty of permit holders, which seed 003 lets them do
// where they live. A duplicate
// hukou's cancellation leaves the person's other registration and their
// permits, and an unspecified ("other") reason is not taken to end them;
// such permits end when revoked or at their valid_until.
var permitEndingCancellations = map[string]bool{"death": true, "emigration": true}

// cancellationReason is the reason of cancellation point p. States stored
// before points carried it have it only in the lifecycle register, when p
// is the latest registration or cancellation.
func (s *State) cancellationReason(p point) string {
	if p.Reason != "" {
		return p.Reason
	}
	if v, ok := s.Lifecycle.get(); ok && s.Lifecycle.At.Src == p.At.Src && s.Lifecycle.At.ID == p.At.ID {
		return strings.TrimPrefix(v, "cancelled:")
	}
	return ""
}

// permitUntil is the valid_until of permit point p. States stored before
// points carried it have it only in the city's permit register, when p is
// the city's latest issue.
func (s *State) permitUntil(p point) string {
	if p.Until != "" {
		return p.Until
	}
	if v := s.storedIssue(p); v != nil {
		return v.ValidUntil
	}
	return ""
}

// dayAfter returns the day after a YYYY-MM-DD date, "" for none: also
// for 9999-12-31, the long-term (长期) validity departments write, whose
// day after has a five-digit year that days, compared as text, would
// place before every other.
func dayAfter(date string) string {
	if date == "" {
		return "" // most permits: no need to build a parse error
	}
	t, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return ""
	}
	next := t.AddDate(0, 0, 1)
	if next.Year() > 9999 {
		return ""
	}
	return next.Format(time.DateOnly)
}

// step says where the person counts ("" nowhere) from a day on.
type step struct{ day, code string }

// intervals turns steps in stamp order into spans. Stamps order by time,
// so days never decrease; steps of one day collapse into the last.
func intervals(steps []step) []hub.Interval {
	var out []hub.Interval
	cur, from := "", ""
	for i, st := range steps {
		if i+1 < len(steps) && steps[i+1].day == st.day {
			continue // the day's final step decides
		}
		if st.code == cur {
			continue
		}
		if cur != "" && from < st.day {
			out = append(out, hub.Interval{Code: cur, From: from, To: st.day})
		}
		cur, from = st.code, st.day
	}
	if cur != "" {
		out = append(out, hub.Interval{Code: cur, From: from})
	}
	return out
}

// TimelineLen counts the registration and permit timeline steps.
func (s *State) TimelineLen() (registrations, permits int) {
	return len(s.HukouLine), len(s.PermitLine)
}
