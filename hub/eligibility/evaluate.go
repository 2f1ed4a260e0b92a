package eligibility

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
	"github.com/pophub/pophub/schemas/region"
)

// Subject is the person evaluated: the golden record and every applied
// change (any order; changes after the evaluation instant are ignored).
type Subject struct {
	Record  hub.Record
	History []hub.Change
}

// Decision is the answer of GET /v1/eligibility/{citizen_id}. It carries
// the full citizen ID because the caller is authorised to see it; never log
// a Decision.
type Decision struct {
	CitizenID citizenid.ID `json:"citizen_id"`
	Policy    string       `json:"policy"`
	Title     string       `json:"title"`
	// PolicyDigest names the version of the policy decided under
	// (Policy.Digest): an answer given under one text of a policy file
	// can be told from one given under an edited text, which may answer
	// otherwise for the same person, day and records.
	PolicyDigest string `json:"policy_digest"`
	AsOf         string `json:"as_of"`
	// RecordVersion is the version of the person's golden record the
	// decision was made from (hub.Record.Version): a decision of the same
	// day made again after a late event (a contribution recorded weeks
	// later, effective before that day) reads a later version. The record
	// and its history are read apart, so a change applied in between,
	// which the decision counts, is named too: it is the highest version
	// of the record and of the changes read (versionRead). Omitted when
	// the record read carries none.
	RecordVersion int64 `json:"record_version,omitempty"`
	// RelativesVersions names, for each relative the answer lists in
	// Family whose record the decision read, the version of that record
	// read (as RecordVersion is the person's, versionRead): a relative's
	// event recorded late (a spouse's migration effective before the day)
	// can change the answer while the person's own record stays as it
	// was. Only those listed are named, since the answer discloses them
	// already; a relative it does not list (a spouse whose own record
	// does not confirm the marriage, or who was deceased on the day) is
	// not, and the facts it shows of their record cite the events they
	// come from, a late one included. Omitted when there is none.
	RelativesVersions map[citizenid.ID]int64 `json:"relatives_versions,omitempty"`
	// Place is the place of the policy the person was evaluated in: the
	// one where they are eligible, or else the one where they come closest.
	Place    string `json:"place"`
	Eligible bool   `json:"eligible"`
	// Route is the way the person qualifies (or comes closest to).
	Route      string            `json:"route"`
	Conditions []ConditionResult `json:"conditions"`
	// QualifiesOn is the day the person will qualify if nothing changes:
	// running leases and contracts keep running to their registered end,
	// those registered ahead start on their registered start, a diploma
	// registered ahead counts from its date, monthly
	// contributions that were paid for this month or the last one keep
	// coming. It is "" when already eligible or not predictable: a missing
	// contract, home or diploma cannot be foreseen, and when a condition
	// stops holding (a lease at its registered end, a break between two
	// jobs) before the others are met, no day is given, even if it would
	// hold again later. Nor is a day given on which, by the history the
	// hub holds, the person has died or their hukou is cancelled, though
	// they were alive and registered on the evaluation day.
	QualifiesOn string         `json:"qualifies_on"`
	Family      []FamilyMember `json:"family"`
	// FamilyNote tells the clerk why Family presumes no relatives by age
	// where it otherwise would: the applicant's (or the spouse's)
	// household is a collective one (集体户), by its size or by the
	// applicant's registration (collectiveHousehold). "" otherwise.
	FamilyNote string `json:"family_note,omitempty"`
	// RecheckOn is the China day of the earliest change, of the person's
	// history or of the joined spouse's (the spouse of the person's
	// marriage as of the evaluation day, read with their history), that
	// the decision left out because it is dated after asOf: an event a
	// department stamped a little ahead, within the clock skew the hub
	// accepts (a copy of a marriage stamped 16:30Z is on the next China
	// day). Deciding again on that day may give another answer, with no
	// new event to prompt it, so a watcher decides the person again on
	// the earlier of this day and QualifiesOn. An eligible decision that
	// lapses by the registered ends (a contract at its agreed end) with
	// no event to say so has the day it lapses here, if earlier: a person
	// decided not eligible then is announced again when eligible again.
	// "" when neither. It is not part of the answer (not in its JSON): a
	// past evaluation leaves out every later change.
	RecheckOn string `json:"-"`
	// Cited lists, once each, the relatives not in Family whose own
	// records gave a fact the conditions show (a spouse whose marriage,
	// status or hukou a condition cites): the answer discloses something
	// of them, so the audit records them too. Not part of the answer (not
	// in its JSON).
	Cited []citizenid.ID `json:"-"`
}

// ConditionResult is one clause of the policy, met or not, with the facts
// used and what is missing.
type ConditionResult struct {
	ID      string `json:"id"`
	Text    string `json:"text"`
	Seed    string `json:"seed"`
	Met     bool   `json:"met"`
	Facts   []Fact `json:"facts"`
	Missing string `json:"missing,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Fact is one fact a clause used, with the event it comes from.
type Fact struct {
	Text    string         `json:"text"`
	Source  schemas.Source `json:"source,omitempty"`
	EventID string         `json:"event_id,omitempty"`
	// of is the relative whose own record the fact comes from, "" for
	// the person decided (Decision.Cited collects them).
	of citizenid.ID
}

// ofRelative marks f as a fact of the relative id's own record.
func (f Fact) ofRelative(id citizenid.ID) Fact {
	f.of = id
	return f
}

// cited lists, once each, the relatives whose own records gave a fact
// of conds and who are not in family.
func cited(conds []ConditionResult, family []FamilyMember) []citizenid.ID {
	var ids []citizenid.ID
	for _, c := range conds {
		for _, f := range c.Facts {
			if f.of == "" || slices.Contains(ids, f.of) ||
				slices.ContainsFunc(family, func(m FamilyMember) bool { return m.CitizenID == f.of }) {
				continue
			}
			ids = append(ids, f.of)
		}
	}
	return ids
}

// outcome is a condition's result in one place.
type outcome struct {
	met     bool
	facts   []Fact
	missing string
	// from is the first day the condition holds if nothing changes: the
	// evaluation day when met, zero when not foreseeable.
	from time.Time
	// until is the last day it keeps holding, zero when open-ended.
	until time.Time
}

// env is what conditions are evaluated against.
type env struct {
	f *facts
	// applicant is the person decided, whom a spouse's own marriage
	// record must name.
	applicant citizenid.ID
	place     Place
	family    []hub.Record
	// leftBy holds, for a relative whose hukou of the day is known only
	// as the address a later migration moved them from, that migration
	// (relativeAsOf).
	leftBy map[citizenid.ID]*hub.Change
	// goneBy says the person's status by the end of a day, as the
	// hub's history tells it today, when it is deceased or cancelled
	// ("" otherwise): a past decision names no day after that.
	goneBy func(day time.Time) string
}

// onDay is how a missing text names a day from which something would
// hold: as "<prefix> <day>" (", due 2026-05-31"), or, when the person is
// by then deceased or no longer registered as the hub knows today, as
// never reached.
func (e *env) onDay(prefix string, day time.Time) string {
	if e.goneBy != nil {
		if st := e.goneBy(day); st != "" {
			return ", not reached: the person's status is " + st + " by then"
		}
	}
	return prefix + " " + fmtDay(day)
}

// breakEnd is the latest day a contract (or a home) may start after one
// ending on end for the two to count as continuous: a break of up to a
// calendar month, counted from the day after end as the policies count
// months (a break from 1 February may last through the end of February,
// one from 10 April through 9 May), since changing jobs or moving house
// rarely lines up to the day. Renting at one address allows no break.
func breakEnd(end time.Time) time.Time {
	return addMonths(end.AddDate(0, 0, 1), 1)
}

// horizonMonths bounds how far QualifiesOn looks ahead for points.
const horizonMonths = 120

// Evaluate decides one person against one policy as of an instant: only
// changes with an effective time at or before asOf count, and dates are
// compared as China Standard Time days. Whether the person was alive and
// registered is decided as of asOf too (statusAsOf), not by the record's
// status today; a death certified later but dated by asOf counts. family holds what the
// caller could find of the person's relatives, each with their history: the spouse (Marital.SpouseID)
// and the members of the applicant's household (Hukou.HouseholdID), and
// optionally of the spouse's household; see FamilyMember for how they are
// matched to the policy's wording. A relative's hukou and status are taken
// as of asOf from their history too (relativeAsOf), so that a past
// decision does not change when a relative moves or dies later. Evaluate
// is pure and safe for concurrent use.
func Evaluate(p *Policy, subj Subject, relatives []Subject, asOf time.Time) Decision {
	f := gather(&subj.Record, subj.History, asOf)
	family := make([]hub.Record, len(relatives))
	var leftBy map[citizenid.ID]*hub.Change
	for i := range relatives {
		var left *hub.Change
		if family[i], left = relativeAsOf(relatives[i], asOf); left != nil {
			if leftBy == nil {
				leftBy = map[citizenid.ID]*hub.Change{}
			}
			leftBy[family[i].CitizenID] = left
		}
	}
	d := Decision{CitizenID: subj.Record.CitizenID, Policy: p.ID, Title: p.Title, PolicyDigest: p.Digest(),
		AsOf: fmtDay(f.asOf), RecordVersion: versionRead(subj), Conditions: []ConditionResult{}, Family: []FamilyMember{}}
	recheck := firstDayAfter(subj.History, asOf)
	for i := range relatives {
		if f.married && f.spouse != "" && relatives[i].Record.CitizenID == f.spouse {
			if day := firstDayAfter(relatives[i].History, asOf); !day.IsZero() && (recheck.IsZero() || day.Before(recheck)) {
				recheck = day
			}
		}
	}
	if !recheck.IsZero() {
		d.RecheckOn = fmtDay(recheck)
	}

	type placeResult struct {
		place    Place
		outs     []outcome
		route    Route
		eligible bool
		from     time.Time
		// met counts the clauses met (of the route, or of the policy in
		// the place), unmet the route's clauses not met.
		met, unmet int
	}
	var best *placeResult
	// heldUntil is the last day an eligible route keeps holding by the
	// registered ends (a contract's, a lease's), open when one holds
	// open-ended: the decision lapses the day after, with no event to say
	// so.
	var heldUntil time.Time
	heldOpen := false
	better := func(a, b *placeResult) bool {
		if b == nil || a.eligible != b.eligible {
			return b == nil || a.eligible
		}
		if !a.from.IsZero() || !b.from.IsZero() {
			if b.from.IsZero() || (!a.from.IsZero() && a.from.Before(b.from)) {
				return true
			}
			if a.from.IsZero() || b.from.Before(a.from) {
				return false
			}
		}
		// The route the person comes closest to lacks the fewest
		// clauses: a talent route lacking a diploma's recency is closer
		// than a business route lacking a licence and a home, though
		// the business route's residence clause is met.
		if a.unmet != b.unmet {
			return a.unmet < b.unmet
		}
		return a.met > b.met
	}
	index := make(map[string]int, len(p.Clauses))
	for i, cl := range p.Clauses {
		index[cl.ID] = i
	}
	goneBy := func(day time.Time) string {
		if st, _ := statusAsOf(&subj.Record, subj.History, endOfDay(day)); st == hub.StatusDeceased || st == hub.StatusCancelled {
			return st
		}
		return ""
	}
	for _, pl := range p.Places {
		e := &env{f: f, applicant: subj.Record.CitizenID, place: pl, family: family, leftBy: leftBy, goneBy: goneBy}
		r := &placeResult{place: pl, outs: make([]outcome, len(p.Clauses))}
		for i := range p.Clauses {
			r.outs[i] = e.eval(&p.Clauses[i].Condition)
			if r.outs[i].met {
				r.met++
			}
		}
		var bestRoute *placeResult
		for _, rt := range p.routes() {
			parts := make([]outcome, len(rt.Clauses))
			for i, id := range rt.Clauses {
				parts[i] = r.outs[index[id]]
			}
			all := allOf(parts, f.asOf)
			if all.met {
				heldOpen = heldOpen || all.until.IsZero()
				if all.until.After(heldUntil) {
					heldUntil = all.until
				}
			}
			cand := &placeResult{route: rt, eligible: all.met, from: all.from}
			for _, o := range parts {
				if o.met {
					cand.met++
				}
			}
			cand.unmet = len(parts) - cand.met
			if better(cand, bestRoute) {
				bestRoute = cand
			}
		}
		r.route, r.eligible, r.from, r.unmet = bestRoute.route, bestRoute.eligible, bestRoute.from, bestRoute.unmet
		if better(r, best) {
			best = r
		}
	}
	d.Place, d.Route, d.Eligible = best.place.Name, best.route.ID, best.eligible
	for i, cl := range p.Clauses {
		o := best.outs[i]
		cr := ConditionResult{ID: cl.ID, Text: cl.Text, Seed: p.seedRef(&cl), Met: o.met, Facts: o.facts, Missing: o.missing, Note: cl.Note}
		if cr.Facts == nil {
			cr.Facts = []Fact{}
		}
		d.Conditions = append(d.Conditions, cr)
	}
	if !d.Eligible && !best.from.IsZero() {
		d.QualifiesOn = fmtDay(best.from)
	}
	if d.Eligible && !heldOpen && !heldUntil.IsZero() {
		if lapse := heldUntil.AddDate(0, 0, 1); recheck.IsZero() || lapse.Before(recheck) {
			d.RecheckOn = fmtDay(lapse)
		}
	}
	if st, restsOn := statusAsOf(&subj.Record, subj.History, asOf); st == hub.StatusDeceased || st == hub.StatusCancelled {
		d.Eligible, d.QualifiesOn = false, ""
		d.Conditions = append(d.Conditions, ConditionResult{ID: "status", Text: "the person is alive and registered",
			Seed: "—", Facts: statusFacts(&subj.Record, st, restsOn),
			Missing: "the person's status on " + d.AsOf + " is " + st})
		d.Cited = cited(d.Conditions, d.Family)
		return d
	}
	// A past asOf decides with the status of then, but the history may
	// already hold the death (or cancellation) that ends the prediction:
	// no day is given on which the person will by then, as the hub knows
	// today, be dead or no longer registered.
	if d.QualifiesOn != "" {
		if st, _ := statusAsOf(&subj.Record, subj.History, endOfDay(best.from)); st == hub.StatusDeceased || st == hub.StatusCancelled {
			d.QualifiesOn = ""
		}
	}
	d.Family, d.FamilyNote = familyOf(p, &subj.Record, f, family)
	d.RelativesVersions = listedVersions(d.Family, relatives)
	d.Cited = cited(d.Conditions, d.Family)
	return d
}

// listedVersions is Decision.RelativesVersions: for each member of family
// whose record is among relatives (a spouse listed for a clerk to confirm
// may have none held here), the version of it read; nil when none.
func listedVersions(family []FamilyMember, relatives []Subject) map[citizenid.ID]int64 {
	var out map[citizenid.ID]int64
	for _, m := range family {
		for i := range relatives {
			if relatives[i].Record.CitizenID != m.CitizenID {
				continue
			}
			if v := versionRead(relatives[i]); v > 0 {
				if out == nil {
					out = map[citizenid.ID]int64{}
				}
				out[m.CitizenID] = v
			}
			break
		}
	}
	return out
}

// versionRead is the version of s's record a decision read: the
// record's, or that of a later change its history holds. Deciding reads
// the record and then the history, in two reads a change may be applied
// between; the decision counts it (gather folds the history), so the
// version it names must be one at which the record shows it.
func versionRead(s Subject) int64 {
	v := s.Record.Version
	for _, c := range s.History {
		v = max(v, c.Version)
	}
	return v
}

// statusFacts are the facts of a refusal because the person was deceased
// or their hukou cancelled on the day decided: the status, citing the
// event it rests on (restsOn, as statusAsOf finds it), and what that
// event says (the date of death on the certificate, the reason of the
// cancellation), so that an appeal ("he was alive that day", "the
// cancellation was reversed") starts from the record the refusal rested
// on. When the record's own status stands (no history of it), its
// provenance names the event.
func statusFacts(rec *hub.Record, st string, restsOn *hub.Change) []Fact {
	if restsOn == nil {
		ev := evidence{}
		if p, ok := rec.Provenance[string(schemas.SecStatus)]; ok {
			ev = evidence{p.Source, p.EventID}
		}
		return []Fact{fact("status "+st, ev)}
	}
	ev := evidence{restsOn.Source, restsOn.EventID}
	text := "status " + st
	switch restsOn.Type {
	case schemas.DeathCertified:
		var dd schemas.DeathCertifiedData
		if json.Unmarshal(restsOn.Data, &dd) == nil && dd.DateOfDeath != "" {
			text += ": death certified " + fmtDay(dayOf(restsOn.Time)) + ", date of death " + dd.DateOfDeath
		} else {
			text += ": death certified " + fmtDay(dayOf(restsOn.Time))
		}
	case schemas.HukouCancelled:
		var cd schemas.HukouCancelledData
		text += ": hukou cancelled " + fmtDay(dayOf(restsOn.Time))
		if json.Unmarshal(restsOn.Data, &cd) == nil && cd.Reason != "" {
			text += " (" + cd.Reason + ")"
		}
	}
	return []Fact{fact(text, ev)}
}

// firstDayAfter is the China day of the earliest change of history dated
// after asOf, zero when there is none.
func firstDayAfter(history []hub.Change, asOf time.Time) time.Time {
	var first time.Time
	for i := range history {
		if t := history[i].Time; t.After(asOf) && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	if first.IsZero() {
		return first
	}
	return dayOf(first)
}

func (p *Policy) seedRef(cl *Clause) string {
	s := p.Seed
	if cl.Seed != nil {
		s = *cl.Seed
	}
	return fmt.Sprintf("%s %s (%s)", s.Doc, cl.Ref, s.File)
}

// eval evaluates one condition in the env's place.
func (e *env) eval(c *Condition) outcome {
	switch c.Kind {
	case KindHukouElsewhere:
		return e.hukouElsewhere(c.RuralToUrban, c.ToSpouse, c.HomeWaived)
	case KindHukouIn:
		return e.hukouIn(c.Codes)
	case KindContract:
		return e.contract(*c.MinMonths)
	case KindEmployed:
		return e.employed(*c.MinMonths)
	case KindRental:
		return e.rental(*c.MinMonths, c.Town)
	case KindOwnsHome:
		return e.ownsHome(c.Town)
	case KindLiving:
		return e.living(*c.MinMonths, c.WorkAndStudy)
	case KindInsurance:
		return e.insurance(c)
	case KindDiploma:
		return e.diploma(c.Levels, c.WithinYears)
	case KindBusiness:
		return e.business()
	case KindFamilyReunion:
		return e.familyReunion()
	case KindStudying:
		return e.studying()
	case KindPoints:
		return e.points(c.Points)
	case KindAnyOf:
		parts := make([]outcome, len(c.Of))
		for i := range c.Of {
			parts[i] = e.eval(&c.Of[i])
		}
		return anyOf(parts)
	case KindAllOf:
		parts := make([]outcome, len(c.Of))
		for i := range c.Of {
			parts[i] = e.eval(&c.Of[i])
		}
		return allOf(parts, e.f.asOf)
	}
	return outcome{missing: "unknown condition " + c.Kind}
}

// allOf holds when every part holds; it will hold from the latest day a
// part will, unless a part stops holding before that.
func allOf(parts []outcome, asOf time.Time) outcome {
	o := outcome{met: true, from: asOf}
	var missing []string
	for _, p := range parts {
		o.facts = append(o.facts, p.facts...)
		if !p.met {
			o.met = false
			if p.missing != "" {
				missing = append(missing, p.missing)
			}
		}
		if p.from.IsZero() || o.from.IsZero() {
			o.from = time.Time{}
		} else if p.from.After(o.from) {
			o.from = p.from
		}
		if !p.until.IsZero() && (o.until.IsZero() || p.until.Before(o.until)) {
			o.until = p.until
		}
	}
	if !o.from.IsZero() && !o.until.IsZero() && o.from.After(o.until) {
		o.from = time.Time{}
	}
	o.missing = strings.Join(missing, "; ")
	return o
}

// anyOf holds when one part holds; if none does, it will hold from the
// earliest day one will. Either way it keeps holding for as long as the
// parts, one taking over from another without a day's break, keep it
// holding: allOf needs that last day to see a prediction run past it.
func anyOf(parts []outcome) outcome {
	var o outcome
	var missing []string
	for _, p := range parts {
		o.facts = append(o.facts, p.facts...)
		if p.met {
			o.met, o.from = true, p.from
			continue
		}
		if p.missing != "" {
			missing = append(missing, p.missing)
		}
		if !o.met && !p.from.IsZero() && (o.from.IsZero() || p.from.Before(o.from)) {
			o.from = p.from
		}
	}
	if !o.met {
		o.missing = strings.Join(missing, ", or ")
	}
	if !o.from.IsZero() {
		o.until = heldUntil(parts, o.from)
	}
	return o
}

// heldUntil is the last day of the stretch from day on that the parts
// cover between them without a break, each from its from to its until;
// zero when the stretch is open-ended.
func heldUntil(parts []outcome, day time.Time) time.Time {
	last := day.AddDate(0, 0, -1)
	for extended := true; extended; {
		extended = false
		for _, p := range parts {
			if p.from.IsZero() || p.from.After(last.AddDate(0, 0, 1)) {
				continue
			}
			if p.until.IsZero() {
				return time.Time{}
			}
			if p.until.After(last) {
				last, extended = p.until, true
			}
		}
	}
	return last
}

func (e *env) met(facts ...Fact) outcome {
	return outcome{met: true, facts: facts, from: e.f.asOf}
}

func fact(text string, ev evidence) Fact {
	return Fact{Text: text, Source: ev.source, EventID: ev.eventID}
}

// hukouElsewhere holds when the hukou lies outside the place, or, with
// ruralToUrban, at a rural address of the place while the person lives at
// an urban one there: the settlement seeds are written for people moving
// from the countryside into towns (赤政发〔2016〕50号 二（一）1, 吉市政发〔2015〕5号
// （十一）, 黑政发〔2014〕25号 一（一）), and a villager of a county or district
// moving into its town settles in the same place. Classes come from the
// region table in use (schemas/region), an official NBS table when one is
// installed; an address it does not know is taken as neither rural nor
// urban, so it never makes the condition hold. With toSpouse, a villager
// joining a spouse registered at an urban address of the place moves to
// that address (投靠, 二（一）1（1）: "不受…住房面积等其他条件限制"), the spouse's
// registration taken as of the evaluation day, as familyReunion takes it.
func (e *env) hukouElsewhere(ruralToUrban, toSpouse, homeWaived bool) outcome {
	f := e.f
	if f.hukou == "" {
		// Unknown is not elsewhere: the registration may simply not have
		// arrived yet (events come late), and a person registered here
		// would be told they qualify as an outsider. A person without any
		// hukou first needs one registered.
		return outcome{missing: "a hukou registration on record (public security has registered none)"}
	}
	if !e.place.contains(f.hukou) {
		return e.met(f.hukouFact("hukou registered at " + f.hukou))
	}
	class := urbanRural(f.hukou)
	fa := f.hukouFact("hukou registered at " + f.hukou)
	if class != "" {
		fa = f.hukouFact(fmt.Sprintf("hukou registered at %s (%s)", f.hukou, class))
	}
	if !ruralToUrban || class != "rural" {
		return outcome{facts: []Fact{fa}, missing: "the hukou is already registered in " + e.place.Name}
	}
	if homeWaived {
		// A graduate settles in a town without a home of their own: a
		// town's collective household registers them.
		return e.met(f.hukouFact(fmt.Sprintf("hukou registered at %s (%s), which may move to a town without a home of the person's own", f.hukou, class)))
	}
	home := e.townHome()
	o := home
	to := "a home (rented or owned) at an urban address in " + e.place.Name
	if toSpouse {
		// Either keeps the condition holding: the spouse's registration
		// holds on with no end known, past a lease's.
		spouse := outcome{}
		if facts, _, ok := e.spouseInTown(); ok {
			spouse = e.met(append(facts, e.coupleHome())...)
		}
		o = anyOf([]outcome{home, spouse})
		to += ", or a spouse registered at one,"
	}
	o.facts = append([]Fact{fa}, o.facts...)
	if !o.met {
		o.missing = to + " to move to from the rural hukou" + home.missing
	}
	return o
}

// urbanRural is the region table's class of a 12-digit address: "urban",
// "rural", or "" when the table does not know it.
func urbanRural(address string) string {
	d, ok := region.Lookup(address)
	if !ok {
		return ""
	}
	return d.UrbanRural
}

// townHome holds while a registered lease or an owned home at an urban
// address of the place is in force; homes that follow each other without
// a day's break keep it holding, and one registered ahead predicts when it
// will. A missing text it returns is only the tail about homes registered
// ahead.
func (e *env) townHome() outcome {
	var homes []span
	for _, list := range [][]span{e.f.rentals, e.f.properties} {
		for _, s := range list {
			if e.place.contains(s.address) && urbanRural(s.address) == "urban" {
				homes = append(homes, s)
			}
		}
	}
	runs := runsOf(homes, noBreak, func(span) bool { return true })
	asOf := e.f.asOf
	if now, ok := current(runs, asOf); ok {
		o := outcome{met: true, from: asOf, until: now.coveredUntil(asOf)}
		for _, s := range now.spans {
			if s.coversDay(asOf) && !s.from.After(asOf) {
				o.facts = append(o.facts, e.spanFacts(s, "home", " (urban)")...)
			}
		}
		return o
	}
	var o outcome
	var next *run
	for i := range runs {
		if day, ok := runs[i].firstDayFrom(asOf); ok && (next == nil || day.Before(o.from)) {
			next, o.from = &runs[i], day
		}
	}
	if next != nil {
		o.until = next.coveredUntil(o.from)
		o.facts = append(o.facts, e.aheadFacts(next, "home")...)
		o.missing = "; one registered ahead" + e.onDay(" starts", o.from)
	}
	return o
}

func (e *env) hukouIn(cs []string) outcome {
	f := e.f
	in := Place{Codes: cs}
	if f.hukou != "" && in.contains(f.hukou) {
		return e.met(f.hukouFact("hukou registered at " + f.hukou))
	}
	o := outcome{missing: "a hukou registered in " + strings.Join(cs, ", ")}
	if f.hukou != "" {
		o.facts = []Fact{f.hukouFact("hukou registered at " + f.hukou)}
	}
	return o
}

// describe words a span as a fact, marking one registered ahead (starting
// after the evaluation day): it explains a prediction, never a met
// condition.
func (e *env) describe(s span, what string) string {
	end := "open-ended"
	if !s.open {
		end = "until " + fmtDay(s.to)
	}
	return e.describeEnd(s, what, " "+end)
}

// describeEnd is describe with the words of the span's end given.
func (e *env) describeEnd(s span, what, end string) string {
	text := fmt.Sprintf("%s %s in %s from %s%s", what, s.key, e.place.where(s.address), fmtDay(s.from), end)
	if s.from.After(e.f.asOf) {
		text += " (registered ahead)"
	}
	return text
}

// spanFacts are the facts of a span, worded by describe (with tail
// after it), citing the event that started it; a span ended by an event
// of its own (a contract ended early, a lease given up, a property sold)
// is two facts, its start citing the start's event and its end citing
// the event that set that day, so that each day can be traced to the
// record it comes from.
func (e *env) spanFacts(s span, what, tail string) []Fact {
	if s.open || s.endEv.eventID == "" {
		return []Fact{fact(e.describe(s, what)+tail, s.ev)}
	}
	return []Fact{
		fact(e.describeEnd(s, what, "")+tail, s.ev),
		fact(fmt.Sprintf("%s %s ended: in force until %s", what, s.key, fmtDay(s.to)), s.endEv),
	}
}

// aheadFacts lists the spans of a run registered ahead.
func (e *env) aheadFacts(r *run, what string) []Fact {
	var out []Fact
	for _, s := range r.spans {
		if s.from.After(e.f.asOf) {
			out = append(out, e.spanFacts(s, what, "")...)
		}
	}
	return out
}

// contract reads "签订N个月以上劳动合同" as the agreed term of a contract in
// force: from its start to its agreed end (inclusive), or open-ended. Long
// contracts that follow each other without a day's break keep it holding,
// and one registered ahead predicts when it will, without counting today.
func (e *env) contract(minMonths int) outcome {
	var o outcome
	asOf := e.f.asOf
	for _, s := range e.f.contracts {
		if e.place.contains(s.address) && s.coversDay(asOf) {
			o.facts = append(o.facts, e.spanFacts(s, "labour contract", "")...)
		}
	}
	long := func(s span) bool {
		return e.place.contains(s.address) && (s.open || !addMonths(s.from, minMonths).After(s.to.AddDate(0, 0, 1)))
	}
	runs := runsOf(e.f.contracts, noBreak, long)
	if now, ok := current(runs, asOf); ok {
		o.met, o.from = true, asOf
		if !now.open {
			o.until = now.end
		}
		o.facts = append(o.facts, e.aheadFacts(now, "labour contract")...)
		return o
	}
	if len(o.facts) == 0 {
		o.missing = "a labour contract in force in " + e.place.Name
	} else {
		o.missing = fmt.Sprintf("a labour contract with a term of at least %d months in %s", minMonths, e.place.Name)
	}
	var next *run
	for i := range runs {
		if day, ok := runs[i].firstDayFrom(asOf); ok && (next == nil || day.Before(o.from)) {
			next, o.from = &runs[i], day
		}
	}
	if next == nil {
		return o
	}
	if !next.open {
		o.until = next.end
	}
	o.facts = append(o.facts, e.aheadFacts(next, "labour contract")...)
	o.missing += "; one registered ahead" + e.onDay(" starts", o.from)
	return o
}

// duration evaluates "held for at least minMonths" over runs of spans. It
// is met when the run in force today (judged by spans that have started)
// has lasted minMonths, its days counted inclusive as a contract's agreed
// term is (contract): a lease from 1 January has lasted half a year on 30
// June, the day before addMonths(start, minMonths) (heldFor). Otherwise it will hold on the first day a run,
// spans registered ahead included, has lasted minMonths and is in force:
// a renewal registered before the lease ends keeps the count going. It
// keeps holding until the run's first break (between two jobs, say),
// when nothing is in force.
func (e *env) duration(runs []run, minMonths int, what, none string) outcome {
	var o outcome
	asOf := e.f.asOf
	now, inForce := current(runs, asOf)
	if inForce {
		for _, s := range now.spans {
			o.facts = append(o.facts, e.spanFacts(s, what, "")...)
		}
		tomorrow := asOf.AddDate(0, 0, 1)
		o.facts = append(o.facts, Fact{Text: fmt.Sprintf("%d months since %s", monthsBetween(now.start, tomorrow), fmtDay(now.start))})
		o.until = now.coveredUntil(asOf)
		due := heldFor(now.start, minMonths)
		if !due.After(asOf) {
			o.met, o.from = true, asOf
			return o
		}
		short := monthsShort(tomorrow, addMonths(now.start, minMonths))
		o.missing = fmt.Sprintf("%s of %s in %s%s", plural(short, "more month"), what, e.place.Name, e.onDay(", due", due))
	} else {
		o.missing = none
	}
	var next *run
	for i := range runs {
		r := &runs[i]
		due := heldFor(r.start, minMonths)
		if due.Before(asOf) {
			due = asOf
		}
		if day, ok := r.firstDayFrom(due); ok && (next == nil || day.Before(o.from)) {
			next, o.from = r, day
		}
	}
	if next == nil {
		return o
	}
	o.until = next.coveredUntil(o.from)
	if next != now {
		for _, s := range next.spans {
			o.facts = append(o.facts, e.spanFacts(s, what, "")...)
		}
		o.missing += "; with what is registered ahead" + e.onDay(", met from", o.from)
	}
	return o
}

// heldFor is the first day on which something held since start, every
// day counted, has been held for n months: the last day of the nth month,
// the day before addMonths(start, n).
func heldFor(start time.Time, n int) time.Time {
	return addMonths(start, n).AddDate(0, 0, -1)
}

// monthsShort counts the months still to go from asOf to due, rounding up.
func monthsShort(asOf, due time.Time) int {
	n := monthsBetween(asOf, due)
	if addMonths(asOf, n).Before(due) {
		n++
	}
	return n
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// employmentRuns joins the contracts in the place across short breaks.
func (e *env) employmentRuns() []run {
	return runsOf(e.f.contracts, breakEnd, func(s span) bool { return e.place.contains(s.address) })
}

func (e *env) employed(minMonths int) outcome {
	return e.duration(e.employmentRuns(), minMonths, "employment", "a labour contract in force in "+e.place.Name)
}

// rentalRuns joins the leases at each address in the place (with town,
// each urban address) that follow each other without a day's break;
// every address has its own runs.
func (e *env) rentalRuns(town bool) []run {
	var all []run
	seen := map[string]bool{}
	for _, s := range e.f.rentals {
		if seen[s.address] || !e.place.contains(s.address) || town && urbanRural(s.address) != "urban" {
			continue
		}
		seen[s.address] = true
		addr := s.address
		all = append(all, runsOf(e.f.rentals, noBreak, func(x span) bool { return x.address == addr })...)
	}
	return all
}

func (e *env) rental(minMonths int, town bool) outcome {
	if !town {
		return e.duration(e.rentalRuns(false), minMonths, "renting at one address", "a registered rental in force in "+e.place.Name)
	}
	o := e.duration(e.rentalRuns(true), minMonths, "renting at one address in a town",
		"a registered rental in force at a town (urban) address in "+e.place.Name)
	if !o.met {
		var notTown []span
		for _, s := range e.f.rentals {
			if e.place.contains(s.address) && s.coversDay(e.f.asOf) && urbanRural(s.address) != "urban" {
				notTown = append(notTown, s)
			}
		}
		o.facts, o.missing = append(o.facts, e.notTownFacts(notTown, "lease")...), o.missing+e.notTownTail(notTown, "the lease")
	}
	return o
}

// notTownFacts words homes in the place that a town-only condition does
// not count: at an address the region table classes rural, or one it
// does not know.
func (e *env) notTownFacts(homes []span, what string) []Fact {
	var out []Fact
	for _, s := range homes {
		out = append(out, fact(fmt.Sprintf("%s %s at %s: %s", what, s.key, s.address, villageWord(s.address)), s.ev))
	}
	return out
}

// notTownTail is the missing text's tail naming those homes.
func (e *env) notTownTail(homes []span, what string) string {
	if len(homes) == 0 {
		return ""
	}
	var parts []string
	for _, s := range homes {
		parts = append(parts, s.address+" "+villageWord(s.address))
	}
	return fmt.Sprintf(" (%s at %s)", what, strings.Join(parts, ", "))
}

// villageWord says why an address is not a town's by the region table.
func villageWord(address string) string {
	if urbanRural(address) == "rural" {
		return "lies in a village, rural by the region table"
	}
	return "not classed by the region table: whether it lies in a town is for a clerk to confirm"
}

// livingSpans lists what shows the person living in the place: rented and
// owned homes, and, with workAndStudy, labour contracts and enrolments
// (from the start to the graduation from that school, or open while
// studying), which show it for a worker in the employer's dormitory or a
// student in the school's.
func (e *env) livingSpans(workAndStudy bool) []span {
	var all []span
	lists := [][]span{e.f.rentals, e.f.properties}
	if workAndStudy {
		lists = append(lists, e.f.contracts, e.studySpans())
	}
	for _, list := range lists {
		for _, s := range list {
			if !e.place.contains(s.address) {
				continue
			}
			if workAndStudy {
				// A residence permit's half year is lived away from
				// the hukou (seed 000 二（二）: 离开常住户口所在地……居住
				// 半年以上): days registered in the place do not count.
				all = append(all, cutOut(s, e.hukouHere())...)
				continue
			}
			all = append(all, s)
		}
	}
	return all
}

// hukouHere lists the stretches of days on which the hukou lay in the
// place, once it has left: while it is still there, hukou_elsewhere
// decides, and living is shown as it is.
func (e *env) hukouHere() []span {
	if e.f.hukou != "" && e.place.contains(e.f.hukou) {
		return nil
	}
	var out []span
	steps := e.f.hukouSteps
	for i, st := range steps {
		if st.address == "" || !e.place.contains(st.address) {
			continue
		}
		here := span{from: st.from, open: true}
		if i+1 < len(steps) {
			here.to, here.open = steps[i+1].from.AddDate(0, 0, -1), false
		}
		out = append(out, here)
	}
	return out
}

// cutOut is s without the days of the stretches cuts: the pieces of it
// before, between and after them.
func cutOut(s span, cuts []span) []span {
	pieces := []span{s}
	for _, c := range cuts {
		var next []span
		for _, p := range pieces {
			if p.from.Before(c.from) { // the piece before c
				q := p
				if end := c.from.AddDate(0, 0, -1); q.open || q.to.After(end) {
					q.to, q.open = end, false
				}
				next = append(next, q)
			}
			if c.open {
				continue
			}
			if start := c.to.AddDate(0, 0, 1); p.open || !p.to.Before(start) { // the piece after c
				q := p
				if q.from.Before(start) {
					q.from = start
				}
				next = append(next, q)
			}
		}
		pieces = next
	}
	return pieces
}

// studySpans turns enrolments into spans ending on the day of the first
// graduation from the same school on or after the start, one registered
// ahead of its day included: the prediction must not count on a study
// that a registered graduation ends.
func (e *env) studySpans() []span {
	out := make([]span, 0, len(e.f.enrols))
	for _, en := range e.f.enrols {
		s := span{key: en.institution, address: en.region, from: en.start, open: true, ev: en.ev}
		for _, g := range e.f.studyEnds {
			if g.institution == en.institution && !g.date.Before(en.start) && (s.open || g.date.Before(s.to)) {
				s.to, s.open = g.date, false
			}
		}
		out = append(out, s)
	}
	return out
}

// livingRuns joins what shows the person living in the place across
// short breaks.
func (e *env) livingRuns(workAndStudy bool) []run {
	return runsOf(e.livingSpans(workAndStudy), breakEnd, func(span) bool { return true })
}

func (e *env) living(minMonths int, workAndStudy bool) outcome {
	if workAndStudy {
		return e.duration(e.livingRuns(true), minMonths, "living (home, job or school)",
			"a registered home (rented or owned), a labour contract or an enrolment at a school in "+e.place.Name)
	}
	return e.duration(e.livingRuns(false), minMonths, "living", "a registered home (rented or owned) in "+e.place.Name)
}

// ownsHome holds while the person owns a home in the place; with town,
// at an address the region table classes urban: a home in a village, or
// at an address the table does not know, is named in the missing text.
func (e *env) ownsHome(town bool) outcome {
	var notTown []span
	for _, s := range e.f.properties {
		if !e.place.contains(s.address) || !s.coversDay(e.f.asOf) {
			continue
		}
		if town && urbanRural(s.address) != "urban" {
			notTown = append(notTown, s)
			continue
		}
		text := fmt.Sprintf("owns property %s at %s since %s", s.key, s.address, fmtDay(s.from))
		if town {
			text += " (urban)"
		}
		return e.met(fact(text, s.ev))
	}
	if !town {
		return outcome{missing: "a home owned in " + e.place.Name}
	}
	return outcome{facts: e.notTownFacts(notTown, "owns property"),
		missing: "a home owned at a town (urban) address in " + e.place.Name + e.notTownTail(notTown, "the home owned")}
}

// insuranceLine is the contributions to one insurance kind, or to several
// at the same time, as counted.
type insuranceLine struct {
	count   int
	last    string // last month counted, "" if none
	running bool
	ev      evidence
	first   string
	// carried counts the months counted in the place that were paid
	// elsewhere and carried here by a transfer.
	carried int
	// cityWide counts the months counted in the place by a
	// prefecture-level code (Place.contains), cityCodes lists those codes.
	cityWide  int
	cityCodes []string
	// months are the months counted, in order, each with the payments it
	// counts by: an appeal over a month recorded late must find that
	// month's record in the answer (monthFacts), not only the last one's.
	months []lineMonth
}

// lineMonth is one month of an insuranceLine: the payment counted for
// each of the line's kinds.
type lineMonth struct {
	month string
	paid  []payment
}

// line counts the months contributed to every one of kinds (one kind, or
// several at the same time), local to the place when asked and only the
// last unbroken run when continuous, and whether they are still being
// paid: a month counted for this month or the last one, and none of the
// kinds terminated since.
func (e *env) line(kinds []string, local, continuous bool, schemes []string) insuranceLine {
	var l insuranceLine
	// others holds, for each further kind, the months it was contributed
	// and the payment each counts by.
	others := make([]map[string]payment, 0, len(kinds)-1)
	for _, k := range kinds[1:] {
		months := map[string]payment{}
		for _, c := range e.f.insurance[k] {
			if p, ok := e.counted(c, local, schemes); ok {
				months[c.month] = p
			}
		}
		others = append(others, months)
	}
	paidByOthers := func(month string) bool {
		for _, months := range others {
			if _, ok := months[month]; !ok {
				return false
			}
		}
		return true
	}
	prev := ""
	for _, c := range e.f.insurance[kinds[0]] {
		p, ok := e.counted(c, local, schemes)
		if !ok || !paidByOthers(c.month) {
			continue
		}
		if continuous && prev != "" && c.month != nextMonth(prev) {
			l.count, l.carried, l.cityWide, l.cityCodes = 0, 0, 0, nil
			l.first, l.months = "", nil
		}
		m := lineMonth{month: c.month, paid: []payment{p}}
		for _, months := range others {
			m.paid = append(m.paid, months[c.month])
		}
		l.months = append(l.months, m)
		if l.first == "" {
			l.first = c.month
		}
		l.count++
		if local && p.carriedFrom != "" {
			l.carried++
		}
		if local && e.place.byPrefecture(p.region) {
			l.cityWide++
			if !slices.Contains(l.cityCodes, p.region) {
				l.cityCodes = append(l.cityCodes, p.region)
			}
		}
		l.last, l.ev, prev = c.month, p.ev, c.month
	}
	if l.last == "" {
		return l
	}
	thisMonth := e.f.asOf.Format("2006-01")
	lastMonth := addMonths(time.Date(e.f.asOf.Year(), e.f.asOf.Month(), 1, 0, 0, 0, 0, time.UTC), -1).Format("2006-01")
	l.running = l.last >= lastMonth && l.last <= thisMonth
	for _, k := range kinds {
		if end, ok := e.f.terminated[k]; ok && end.Format("2006-01") >= l.last {
			l.running = false
		}
	}
	return l
}

// counted is the payment by which a month counts: locally, one in the
// place (a month paid in two regions counts where either lies), and
// anywhere, the month once whatever the regions. Payments come in
// byPreference order, so one paid in the place goes before one a transfer
// carried there; and one recorded in a district of the place goes before
// one recorded only at its city's prefecture-level code.
func (e *env) counted(c contribution, local bool, schemes []string) (payment, bool) {
	// Paid under a scheme the condition takes, or under none on record.
	paidUnder := func(p payment) bool {
		return len(schemes) == 0 || p.scheme == "" || slices.Contains(schemes, p.scheme)
	}
	if !local {
		for _, p := range c.paid {
			if paidUnder(p) {
				return p, true
			}
		}
		return payment{}, false
	}
	var cityWide *payment
	for i, p := range c.paid {
		switch {
		case !paidUnder(p):
		case !e.place.contains(p.region):
		case !e.place.byPrefecture(p.region):
			return p, true
		case cityWide == nil:
			cityWide = &c.paid[i]
		}
	}
	if cityWide != nil {
		return *cityWide, true
	}
	return payment{}, false
}

// monthFacts cite the record of each month the line counts, one fact
// per month and record (several kinds counted together are usually one
// record): the count's summary cites only the last month's, and an
// appeal over a month recorded late, after an earlier decision, must
// find that month's record in the answer.
func (e *env) monthFacts(name string, l insuranceLine) []Fact {
	out := make([]Fact, 0, len(l.months))
	for _, m := range l.months {
		var seen []evidence
		for _, p := range m.paid {
			if slices.Contains(seen, p.ev) {
				continue
			}
			seen = append(seen, p.ev)
			text := fmt.Sprintf("%s for %s recorded in %s", name, m.month, p.region)
			if p.carriedFrom != "" {
				text = fmt.Sprintf("%s for %s paid in %s, carried to %s by a transfer", name, m.month, p.carriedFrom, p.region)
			}
			out = append(out, fact(text, p.ev))
		}
	}
	return out
}

// gapsTail words the months missing between the first and the last
// month a line counts, "" when there are none: a refusal for "1 more
// month" shows which month the records lack.
func gapsTail(l insuranceLine) string {
	var gaps []string
	for i := 1; i < len(l.months); i++ {
		from, to := nextMonth(l.months[i-1].month), l.months[i].month
		if from == to || from == "" {
			continue
		}
		last := monthStart(to).AddDate(0, -1, 0).Format("2006-01")
		if from == last {
			gaps = append(gaps, from)
		} else {
			gaps = append(gaps, from+" … "+last)
		}
	}
	if len(gaps) == 0 {
		return ""
	}
	return ", none counted for " + strings.Join(gaps, ", ")
}

// cityWideTail words the months of a line counted in the place by a
// prefecture-level code, "" when there are none.
func (e *env) cityWideTail(l insuranceLine) string {
	if l.cityWide == 0 {
		return ""
	}
	return fmt.Sprintf(", %d of them recorded at %s (prefecture-level, no district named: counted in %s)",
		l.cityWide, strings.Join(l.cityCodes, ", "), e.place.Name)
}

func nextMonth(m string) string {
	t, err := time.Parse("2006-01", m)
	if err != nil {
		return ""
	}
	return t.AddDate(0, 1, 0).Format("2006-01")
}

// insuranceOf is what facts call the insurance counted under schemes:
// " insurance", or " insurance (employee scheme)".
func insuranceOf(schemes []string) string {
	if len(schemes) == 0 {
		return " insurance"
	}
	return " insurance (" + joinAnd(schemes) + " scheme)"
}

// monthStart parses YYYY-MM as its first day.
func monthStart(m string) time.Time {
	t, _ := time.Parse("2006-01", m)
	return t
}

func (e *env) insurance(c *Condition) outcome {
	local := c.Local == nil || *c.Local
	o := outcome{met: true, from: e.f.asOf}
	where := ""
	if local {
		where = " in " + e.place.Name
	}
	// Each kind is counted on its own, or, together, only the months in
	// which every kind was contributed; the kinds' own counts still show.
	type counted struct {
		kinds       []string
		name        string
		explainOnly bool // a kind's own count, shown beside the count made together
	}
	var lines []counted
	insurance := insuranceOf(c.Schemes)
	for _, k := range c.Kinds {
		lines = append(lines, counted{kinds: []string{k}, name: k + insurance, explainOnly: c.Together})
	}
	if c.Together {
		lines = append(lines, counted{kinds: c.Kinds, name: joinAnd(c.Kinds) + insurance + " at the same time"})
	}
	var missing []string
	for _, cl := range lines {
		l := e.line(cl.kinds, local, c.Continuous, c.Schemes)
		text := fmt.Sprintf("%s: %s%s", cl.name, plural(l.count, "month"), where)
		if l.count > 0 {
			text += fmt.Sprintf(" (%s … %s%s)", l.first, l.last, gapsTail(l))
		}
		if l.carried > 0 {
			text += fmt.Sprintf(", %d of them carried here by a transfer (转移接续)", l.carried)
		}
		text += e.cityWideTail(l)
		if c.Continuous {
			text += ", unbroken"
		}
		o.facts = append(o.facts, fact(text, l.ev))
		if !cl.explainOnly {
			o.facts = append(o.facts, e.monthFacts(cl.name, l)...)
		}
		need := *c.MinMonths - l.count
		if need <= 0 || cl.explainOnly {
			continue
		}
		o.met = false
		missing = append(missing, fmt.Sprintf("%s of %s%s", plural(need, "more month"), cl.name, where))
		if !l.running || o.from.IsZero() {
			o.from = time.Time{}
			continue
		}
		// The month that completes the count is counted from its first
		// day, but not before tomorrow: today's data is all there is.
		due := addMonths(monthStart(l.last), need)
		if tomorrow := e.f.asOf.AddDate(0, 0, 1); due.Before(tomorrow) {
			due = tomorrow
		}
		if due.After(o.from) {
			o.from = due
		}
	}
	if !o.met {
		o.missing = strings.Join(missing, "; ")
	}
	return o
}

// joinAnd lists words as "a, b and c".
func joinAnd(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

func (e *env) diploma(levels []string, withinYears int) outcome {
	var o outcome
	var stale []string
	for _, g := range e.f.grads {
		if !slices.Contains(levels, g.level) {
			continue
		}
		text := fmt.Sprintf("graduated %s (%s) from %s on %s", codes.Education[g.level], g.level, g.institution, fmtDay(g.date))
		o.facts = append(o.facts, fact(text, g.ev))
		if withinYears > 0 {
			// 未满N年: before the Nth anniversary, counted in months as
			// every duration here is, so a 29 February graduate's falls
			// on 28 February.
			expiry := addMonths(g.date, 12*withinYears)
			if !e.f.asOf.Before(expiry) {
				stale = append(stale, fmtDay(g.date))
				continue
			}
			until := expiry.AddDate(0, 0, -1)
			if !o.met || until.After(o.until) {
				o.until = until
			}
		} else {
			o.until = time.Time{}
		}
		o.met, o.from = true, e.f.asOf
	}
	if !o.met {
		names := make([]string, len(levels))
		for i, l := range levels {
			names[i] = codes.Education[l]
		}
		o.missing = "a diploma: " + strings.Join(names, "/")
		if withinYears > 0 {
			o.missing += fmt.Sprintf(", graduated less than %d years ago", withinYears)
		}
		if len(stale) > 0 {
			o.missing += fmt.Sprintf(" (graduated %s: %d years or more ago)", strings.Join(stale, ", "), withinYears)
		}
		// A school may register its graduates ahead of the day: the
		// diploma counts from its date, which is foreseen.
		var ahead *graduation
		for i, g := range e.f.studyEnds {
			if slices.Contains(levels, g.level) && g.date.After(e.f.asOf) && (ahead == nil || g.date.Before(ahead.date)) {
				ahead = &e.f.studyEnds[i]
			}
		}
		if ahead != nil {
			o.facts = append(o.facts, fact(fmt.Sprintf("graduates %s (%s) from %s on %s (registered ahead)",
				codes.Education[ahead.level], ahead.level, ahead.institution, fmtDay(ahead.date)), ahead.ev))
			o.from = ahead.date
			if withinYears > 0 {
				o.until = addMonths(ahead.date, 12*withinYears).AddDate(0, 0, -1)
			}
			o.missing += "; one registered ahead" + e.onDay(" counts from", ahead.date)
		}
	}
	return o
}

func (e *env) business() outcome {
	for _, s := range e.f.businesses {
		if e.place.contains(s.address) && s.coversDay(e.f.asOf) {
			return e.met(fact(fmt.Sprintf("business %s registered in %s (licence and tax registration) since %s", s.key, e.place.where(s.address), fmtDay(s.from)), s.ev))
		}
	}
	return outcome{missing: "a business licence with tax registration in " + e.place.Name}
}

// familyReunion holds when the spouse is registered at an urban address
// of the place: the seed admits joining a person of 市辖区、旗县区政府驻地镇及其他
// 建制镇区户籍 (赤政发〔2016〕50号 二（一）1（1）), so a spouse registered in a
// village is no one to join; the class is the region table's. Parents
// and children cannot be established from the records, which carry no
// parent links; a clerk checks those on the household register. The home
// the couple lives in is not decided: the seed's 住所 is one the person
// actually lives in, a home whose use its owner grants included, and the
// records do not show which home that is (nor is the spouse's housing
// read or watched), so a met outcome names it as a fact to confirm.
func (e *env) familyReunion() outcome {
	facts, missing, ok := e.spouseInTown()
	if !ok {
		return outcome{facts: facts, missing: missing}
	}
	return e.met(append(facts, e.coupleHome())...)
}

// spouseInTown reports whether the spouse, as of the evaluation day (the
// marriage from the person's history, the spouse's marriage, hukou and
// status from theirs), is alive, married to the person by their own
// record too, and registered at an urban address of the place, with the
// facts that say so; when not, missing says what keeps the spouse from
// counting. The marriage register sends one event per spouse, so the
// person's own record alone does not make a spouse: the other's may name
// someone else or a divorce the person's copy of which never arrived.
func (e *env) spouseInTown() (facts []Fact, missing string, ok bool) {
	f := e.f
	if !f.married || f.spouse == "" {
		return nil, "a spouse (or, checked by a clerk, a parent or child) registered at an urban address in " + e.place.Name, false
	}
	married := fact("married (spouse on record)", f.maritalEv)
	for i := range e.family {
		r := &e.family[i]
		if r.CitizenID != f.spouse {
			continue
		}
		// The spouse's record is here: say what keeps it from counting.
		shows, confirmed := marriageOnOwnRecord(r, e.applicant)
		switch {
		case r.Status == hub.StatusDeceased:
			return []Fact{married, fact("the spouse is deceased", provenance(r, schemas.SecStatus)).ofRelative(r.CitizenID)},
				"a spouse alive and registered at an urban address in " + e.place.Name + " (the spouse is deceased)", false
		case r.Status == hub.StatusCancelled:
			return []Fact{married, fact("the spouse's hukou is cancelled", provenance(r, schemas.SecStatus)).ofRelative(r.CitizenID)},
				"a spouse registered at an urban address in " + e.place.Name + " (the spouse's hukou is cancelled)", false
		case !confirmed:
			return []Fact{married, fact("the spouse's own marriage record "+shows, provenance(r, schemas.SecMarital)).ofRelative(r.CitizenID)},
				"the spouse's own marriage record does not show the marriage to the applicant (it " + shows +
					"); confirm with the marriage register", false
		case r.Hukou == nil:
			return []Fact{married, fact("the spouse has no hukou registered", evidence{}).ofRelative(r.CitizenID)},
				"a spouse registered at an urban address in " + e.place.Name + " (the spouse has no hukou registered)", false
		case r.Status != hub.StatusActive:
			continue
		}
		addr := r.Hukou.AddressCode
		class := urbanRural(addr)
		text := "spouse's hukou registered at " + addr
		if class != "" {
			text += " (" + class + ")"
		}
		if left := e.leftBy[r.CitizenID]; left != nil {
			text += " (the address moved from by the migration of " + fmtDay(dayOf(left.Time)) + ")"
		}
		fa := fact(text, provenance(r, schemas.SecHukou)).ofRelative(r.CitizenID)
		if e.place.contains(addr) && class == "urban" {
			return []Fact{married, fa}, "", true
		}
		return []Fact{married, fa}, "a spouse registered at an urban address in " + e.place.Name, false
	}
	return []Fact{married}, "the spouse's record (not found) showing a hukou at an urban address in " + e.place.Name, false
}

// coupleHome is the home a spouse joined at a town address lives in with
// the partner: the records do not show which it is, so a clerk confirms it.
func (e *env) coupleHome() Fact {
	return Fact{Text: "living together in a home at a town address in " + e.place.Name +
		" (owned or rented by either spouse, or whose use its owner grants): to confirm on its title or lease"}
}

func provenance(r *hub.Record, sec schemas.Section) evidence {
	p, ok := r.Provenance[string(sec)]
	if !ok {
		return evidence{}
	}
	return evidence{p.Source, p.EventID}
}

func (e *env) studying() outcome {
	f := e.f
	for _, en := range f.enrols {
		if !e.place.contains(en.region) || en.start.After(f.asOf) {
			continue
		}
		done := false
		for _, g := range f.grads {
			if g.institution == en.institution && !g.date.Before(en.start) {
				done = true
			}
		}
		if !done {
			return e.met(fact(fmt.Sprintf("enrolled at %s (%s) in %s since %s", en.institution, codes.Education[en.level], e.place.where(en.region), fmtDay(en.start)), en.ev))
		}
	}
	return outcome{missing: "an enrolment at a school in " + e.place.Name}
}

// measure is a points item's measure on days at or after the evaluation
// day, assuming what runs keeps running: value is the months (or, for a
// home, 1) that evaluating on day d would count, and next is the first day
// after d on which the item's score may change, zero when it never does.
// Between one such day and the next the score holds, so they are the only
// days a points total needs looking at.
type measure struct {
	value func(d time.Time) int
	next  func(d time.Time) time.Time
}

// constant is a measure that never changes.
func constant(v int) measure {
	return measure{value: func(time.Time) int { return v }, next: func(time.Time) time.Time { return time.Time{} }}
}

// nextScoring is the first number of months above v at which the item's
// score changes, or 0 when its maximum is reached by then.
func (it *PointsItem) nextScoring(v int) int {
	n := (v/it.PerMonths + 1) * it.PerMonths
	if full := (it.Max + it.Points - 1) / it.Points * it.PerMonths; n > full {
		return 0
	}
	return n
}

// runMeasure measures, on each day, the run that is in force on that day
// (current's pick: the longest, judged by spans that have started by
// then, those registered ahead included once they start): its months
// since its start, every day counted as duration counts them, that day
// included, so a lease from 1 January scores its first year on 31
// December, the day a rental condition of 12 months holds (heldFor). On a
// day no span covers (a break, after a registered end, before the first
// start) it is nothing, as evaluating on that day would find. A newer run taking over from one that ends is followed, so
// moving house or changing jobs counts from the new start. The facts are
// those of the run in force on the evaluation day, or else of the first
// to come into force.
func (e *env) runMeasure(it *PointsItem, runs []run, what string) (measure, []Fact) {
	asOf := e.f.asOf
	shown, ok := current(runs, asOf)
	if !ok {
		begins := asOf
		for i := range runs {
			if day, found := runs[i].firstDayFrom(asOf); found && (shown == nil || day.Before(begins)) {
				shown, begins = &runs[i], day
			}
		}
	}
	var fs []Fact
	if shown != nil {
		for _, s := range shown.spans {
			fs = append(fs, e.spanFacts(s, what, "")...)
		}
	}
	value := func(d time.Time) int {
		r, ok := current(runs, d)
		if !ok {
			return 0
		}
		return monthsBetween(r.start, d.AddDate(0, 0, 1))
	}
	// The score changes only when a span starts or ends, or when a run
	// that still runs reaches a number of months that scores more: on the
	// last day of that month, counted as value counts.
	next := func(d time.Time) time.Time {
		var first time.Time
		consider := func(day time.Time) {
			if day.After(d) && (first.IsZero() || day.Before(first)) {
				first = day
			}
		}
		for i := range runs {
			r := &runs[i]
			for _, s := range r.spans {
				consider(s.from)
				if !s.open {
					consider(s.to.AddDate(0, 0, 1))
				}
			}
			if n := it.nextScoring(monthsBetween(r.start, d.AddDate(0, 0, 1))); n > 0 {
				if day := heldFor(r.start, n); r.open || !day.After(r.end) {
					consider(day)
				}
			}
		}
		return first
	}
	return measure{value: value, next: next}, fs
}

func (e *env) measureOf(it *PointsItem) (measure, []Fact) {
	switch it.Measure {
	case MeasureEmployedMonths:
		return e.runMeasure(it, e.employmentRuns(), "labour contract")
	case MeasureRentalMonths:
		return e.runMeasure(it, e.rentalRuns(false), "lease")
	case MeasureLivingMonths:
		return e.runMeasure(it, e.livingRuns(false), "home")
	case MeasureOwnsHome:
		o := e.ownsHome(false)
		v := 0
		if o.met {
			v = 1
		}
		return constant(v), o.facts
	case MeasureInsuranceMonths:
		return e.insuranceMeasure(it)
	}
	return constant(0), nil
}

// insuranceMeasure counts the months of contributions of the kind with
// the fewest, in the place unless the item says local: false; contributions
// still being paid count on, a month from its first day (but not before
// tomorrow).
func (e *env) insuranceMeasure(it *PointsItem) (measure, []Fact) {
	asOf := e.f.asOf
	local := it.Local == nil || *it.Local
	where := "anywhere"
	if local {
		where = "in " + e.place.Name
	}
	lines := make([]insuranceLine, len(it.Kinds))
	var fs []Fact
	running := false
	insurance := insuranceOf(it.Schemes)
	for i, k := range it.Kinds {
		lines[i] = e.line([]string{k}, local, false, it.Schemes)
		running = running || lines[i].running
		fs = append(fs, fact(fmt.Sprintf("%s%s: %s %s%s", k, insurance, plural(lines[i].count, "month"), where, e.cityWideTail(lines[i])), lines[i].ev))
		fs = append(fs, e.monthFacts(k+insurance, lines[i])...)
	}
	value := func(d time.Time) int {
		least := -1
		for _, l := range lines {
			n := l.count
			if l.running && d.After(asOf) {
				n += monthsBetween(monthStart(l.last), monthStart(d.Format("2006-01")))
			}
			if least < 0 || n < least {
				least = n
			}
		}
		return max(least, 0)
	}
	// The count grows by at most a month on the first of each month (and
	// tomorrow, for this month when only last month's is in).
	next := func(d time.Time) time.Time {
		if !running {
			return time.Time{}
		}
		if !d.After(asOf) {
			return asOf.AddDate(0, 0, 1)
		}
		v := value(d)
		n := it.nextScoring(v)
		if n == 0 {
			return time.Time{}
		}
		return addMonths(monthStart(d.Format("2006-01")), n-v)
	}
	return measure{value: value, next: next}, fs
}

func (it *PointsItem) score(v int) int {
	if it.Measure == MeasureOwnsHome {
		return v * it.Points
	}
	return min(it.Max, v/it.PerMonths*it.Points)
}

// scores are the points each item of a table scores on one day, and
// whether it counts: an item of a group counts only when it scores the
// most of its group's items (the first listed of those scoring the same).
func (p *Points) scores(ms []measure, d time.Time) (pts []int, counts []bool) {
	pts, counts = make([]int, len(p.Items)), make([]bool, len(p.Items))
	best := map[string]int{} // group: index of its best item so far
	for i := range p.Items {
		it := &p.Items[i]
		pts[i] = it.score(ms[i].value(d))
		if it.Group == "" {
			counts[i] = true
			continue
		}
		if b, ok := best[it.Group]; !ok || pts[i] > pts[b] {
			best[it.Group] = i
		}
	}
	for _, i := range best {
		counts[i] = true
	}
	return pts, counts
}

// total is the table's points on day d: every item's, and of a group only
// its best item's.
func (p *Points) total(ms []measure, d time.Time) int {
	pts, counts := p.scores(ms, d)
	sum := 0
	for i := range pts {
		if counts[i] {
			sum += pts[i]
		}
	}
	return sum
}

// groupNote says, for an item of a group, whether it counted on the
// evaluation day and, if not, which item of the group did.
func (p *Points) groupNote(i int, counts []bool) string {
	it := &p.Items[i]
	if it.Group == "" {
		return ""
	}
	if counts[i] {
		return " (counted: the best of group " + it.Group + ")"
	}
	for j := range p.Items {
		if counts[j] && p.Items[j].Group == it.Group {
			return fmt.Sprintf(" (not counted: group %s counts only its best, %s)", it.Group, p.Items[j].ID)
		}
	}
	return ""
}

func (e *env) points(p *Points) outcome {
	ms := make([]measure, len(p.Items))
	var o outcome
	total := func(d time.Time) int { return p.total(ms, d) }
	itemFacts := make([][]Fact, len(p.Items))
	for i := range p.Items {
		ms[i], itemFacts[i] = e.measureOf(&p.Items[i])
	}
	pts, counts := p.scores(ms, e.f.asOf)
	for i := range p.Items {
		it := &p.Items[i]
		unit := "months"
		if it.Measure == MeasureOwnsHome {
			unit = "(yes=1)"
		}
		o.facts = append(o.facts, Fact{Text: fmt.Sprintf("%s: %d %s → %d points%s", it.ID, ms[i].value(e.f.asOf), unit, pts[i], p.groupNote(i, counts))})
		o.facts = append(o.facts, itemFacts[i]...)
	}
	now := total(e.f.asOf)
	o.facts = append(o.facts, Fact{Text: fmt.Sprintf("%d points of %d needed", now, p.Threshold)})
	if now >= p.Threshold {
		o.met, o.from = true, e.f.asOf
		return o
	}
	o.missing = fmt.Sprintf("%d more points (%d of %d)", p.Threshold-now, now, p.Threshold)
	// The total can fall as well as rise (a lease ends, a newer one takes
	// over from its own start), so no day is skipped on which it may
	// change: the first of them that reaches the threshold is the day.
	horizon := addMonths(e.f.asOf, horizonMonths)
	for d := e.f.asOf; ; {
		var next time.Time
		for i := range ms {
			if day := ms[i].next(d); !day.IsZero() && (next.IsZero() || day.Before(next)) {
				next = day
			}
		}
		if next.IsZero() || next.After(horizon) {
			break
		}
		if total(next) >= p.Threshold {
			o.from = next
			break
		}
		d = next
	}
	return o
}
