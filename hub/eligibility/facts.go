package eligibility

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
)

// china is China Standard Time: data dates and "as of" days are calendar
// days there.
var china = schemas.CST()

// dayOf returns the CST calendar day of t as a UTC midnight, the form
// every date in this package takes.
func dayOf(t time.Time) time.Time {
	y, m, d := t.In(china).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// endOfDay is the last instant of a day (a UTC midnight, as dayOf gives
// it) in China Standard Time, so that every change of that day counts.
func endOfDay(day time.Time) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, china).Add(-time.Nanosecond)
}

// EndOfToday is the last instant of now's day in China: the as_of of a
// decision for today, in which every change effective today counts, also
// one a department stamped a little ahead of now.
func EndOfToday(now time.Time) time.Time { return endOfDay(dayOf(now)) }

// parseDay reads YYYY-MM-DD; ok is false for anything else.
func parseDay(s string) (time.Time, bool) {
	t, err := time.Parse(time.DateOnly, s)
	return t, err == nil
}

func fmtDay(t time.Time) string { return t.Format(time.DateOnly) }

// addMonths adds n calendar months, clamping to the end of a shorter
// month: 2024-08-31 + 6 months is 2025-02-28, not 2025-03-03.
func addMonths(d time.Time, n int) time.Time {
	y, m, day := d.Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	if day > last {
		day = last
	}
	return time.Date(first.Year(), first.Month(), day, 0, 0, 0, 0, time.UTC)
}

// monthsBetween counts whole months from a to b (0 when b is before a).
func monthsBetween(a, b time.Time) int {
	if b.Before(a) {
		return 0
	}
	n := (b.Year()-a.Year())*12 + int(b.Month()-a.Month())
	for n > 0 && addMonths(a, n).After(b) {
		n--
	}
	return n
}

// noBreak is runsOf's latest for spans that must follow one another
// without a day's break: the day after end.
func noBreak(end time.Time) time.Time { return end.AddDate(0, 0, 1) }

// evidence points at the event a fact comes from.
type evidence struct {
	source  schemas.Source
	eventID string
}

// span is a time during which something held: [from, to] in days, to
// inclusive; open is true while it lasts (to is then unused).
type span struct {
	key     string // lease id, contract id, property id
	address string // address or region code
	from    time.Time
	to      time.Time
	open    bool
	ev      evidence // the event that started it (and agreed its end, if any)
	// endEv is the event that ended it (contract_ended, rental_ended,
	// property_transferred, business_deregistered), zero while the end is
	// the one the start agreed or there is none: an appeal about the day
	// it ended starts from that record, not from the start's.
	endEv evidence
}

// hukouStep is the hukou's address from a day on.
type hukouStep struct {
	from    time.Time
	address string
}

// coversDay reports whether the span holds on day d.
func (s span) coversDay(d time.Time) bool {
	return !d.Before(s.from) && (s.open || !d.After(s.to))
}

// contribution is one month of one insurance, with every region it was
// paid in: a person who changes jobs mid-month, or whose old employer's
// last payment is recorded late, has the month paid in two regions, and
// each of them may be the place a local count is made in.
type contribution struct {
	month string // YYYY-MM
	// paid holds one payment per region the month counts in, after the
	// transfers, those paid there before those carried there (byPreference).
	paid []payment
}

// payment is a month of one insurance as paid in one region.
type payment struct {
	region string // where the month counts: where it was paid, or where a transfer carried it
	// carriedFrom is the region the month was paid in when a transfer
	// (转移接续) carried it to region, "" otherwise.
	carriedFrom string
	// scheme is the social-insurance scheme it was paid under: that of
	// its insurance's enrolment in its region (or its city's code) with
	// the latest start by its month (schemeOf), "" when none is on record.
	scheme string
	ev     evidence
}

// transfer is a completed transfer of the insurance account (转移接续):
// the months paid in from up to the month it took effect count in to.
type transfer struct {
	month    string // YYYY-MM of the transfer's effective day
	from, to string
}

type graduation struct {
	level, institution string
	date               time.Time
	ev                 evidence
}

type enrolment struct {
	institution, level, region string
	start                      time.Time
	ev                         evidence
}

// facts is what the history says as of one instant.
type facts struct {
	asOf time.Time // the evaluation day (CST)

	hukou   string // 12-digit address, "" when none
	hukouEv evidence
	// hukouSteps are the hukou's addresses over time, in order, each from
	// a day on ("" when cancelled); the first, from the zero day, is the
	// address a first migration moved it from.
	hukouSteps []hukouStep
	household  string // household id of the registration, "" when unknown
	// relation is what the registration of the day says of the person's
	// relation to the head of the household (hukou.registered's
	// relation: 户主, 配偶, 子, a GB/T 4761 code, 集体户成员…), "" when it
	// says nothing or a migration into another household followed it.
	relation string
	// leftBy is, when the hukou of the day is the address the history's
	// first migration moved it from (hukouBefore), that migration: the
	// only record naming it. hukouEv is then zero.
	leftBy    *hub.Change
	married   bool
	spouse    citizenid.ID
	maritalEv evidence
	// maritalStatus is the marital status code (codes.Marital*) of the
	// day, "" when neither the history nor the record says.
	maritalStatus string
	// divorcedFrom and divorcedOn are, while the person is divorced, the
	// former spouse the divorce in force names ("" when it names none,
	// or when only the record says so) and its day (zero when unknown).
	divorcedFrom citizenid.ID
	divorcedOn   time.Time
	// divorces holds each person a divorce in the history names (whether
	// or not it ended the marriage of its day), with the day of the last
	// divorce from them, while no later marriage to them follows it;
	// marriedOn the day of the last marriage to each spouse a marriage
	// names. Both are nil while the history holds none.
	divorces   map[citizenid.ID]time.Time
	marriedOn  map[citizenid.ID]time.Time
	contracts  []span
	rentals    []span
	properties []span
	// insurance per kind, sorted by month, one entry per month (each
	// with the regions it was paid in).
	insurance  map[string][]contribution
	terminated map[string]time.Time // last termination end per kind
	grads      []graduation
	// studyEnds are the graduations registered by the as-of instant,
	// those dated after its day included: what ends an enrolment's span.
	studyEnds  []graduation
	enrols     []enrolment
	businesses []span
}

// gather folds the history up to asOf (inclusive) into facts. Changes are
// applied in order of their effective time, so late-arriving corrections
// of older facts count where they belong; changes after asOf are ignored,
// except that the first hukou (marital) event says what held before it
// when none came by asOf (hukouBefore, maritalBefore): a marriage
// registered later does not count, and the record as it is today stands
// only when the history holds no such event at all. Undecodable data is
// skipped: the hub validated it on the way in.
func gather(rec *hub.Record, history []hub.Change, asOf time.Time) *facts {
	f := &facts{asOf: dayOf(asOf), insurance: map[string][]contribution{}, terminated: map[string]time.Time{}}
	order := make([]*hub.Change, 0, len(history))
	for i := range history {
		if !history[i].Time.After(asOf) {
			order = append(order, &history[i])
		}
	}
	sortAsTheRecord(order)

	contracts := map[string]int{}
	leases := map[string]int{}
	props := map[string]int{}
	biz := map[string]int{}
	// months holds, per kind, month and region paid in, the latest record:
	// a second record of a month in one region corrects the first, one in
	// another region is a second payment.
	months := map[string]map[string]map[string]payment{}
	var transfers []transfer
	var enrolments []enrolled // social_insurance.enrolled, in the order of their times
	// gradAt and enrolAt hold where in f.grads and f.enrols each
	// department record's version is (see latestVersion).
	gradAt, enrolAt := map[string]int{}, map[string]int{}
	sawHukou, sawMarital := false, false
	// latestSpouse is the spouse of the latest marriage so far, also once
	// divorced: a divorce naming anyone else does not count.
	var latestSpouse citizenid.ID
	sawMarriage := false
	for _, c := range order {
		ev := evidence{c.Source, c.EventID}
		day := dayOf(c.Time)
		switch c.Type {
		case schemas.HukouRegistered:
			var d schemas.HukouRegisteredData
			if json.Unmarshal(c.Data, &d) == nil {
				f.hukou, f.hukouEv, f.household, f.relation, sawHukou = d.AddressCode, ev, d.HouseholdID, d.Relation, true
				f.hukouSteps = append(f.hukouSteps, hukouStep{day, d.AddressCode})
			}
		case schemas.HukouMigrated:
			var d schemas.HukouMigratedData
			if json.Unmarshal(c.Data, &d) == nil {
				if len(f.hukouSteps) == 0 {
					f.hukouSteps = append(f.hukouSteps, hukouStep{address: d.FromAddressCode})
				}
				f.hukouSteps = append(f.hukouSteps, hukouStep{day, d.ToAddressCode})
				f.hukou, f.hukouEv, sawHukou = d.ToAddressCode, ev, true
				if d.HouseholdID != "" && d.HouseholdID != f.household {
					f.household, f.relation = d.HouseholdID, ""
				}
			}
		case schemas.HukouCancelled:
			f.hukou, f.hukouEv, sawHukou = "", ev, true
			f.hukouSteps = append(f.hukouSteps, hukouStep{from: day})
		case schemas.MarriageRegistered:
			var d schemas.MarriageRegisteredData
			if json.Unmarshal(c.Data, &d) == nil {
				f.married, f.spouse, f.maritalEv, sawMarital = true, d.SpouseID, ev, true
				f.maritalStatus = codes.MaritalMarried
				f.divorcedFrom, f.divorcedOn = "", time.Time{}
				latestSpouse, sawMarriage = d.SpouseID, true
				if d.SpouseID != "" {
					if f.marriedOn == nil {
						f.marriedOn = map[citizenid.ID]time.Time{}
					}
					f.marriedOn[d.SpouseID] = day
					delete(f.divorces, d.SpouseID)
				}
			}
		case schemas.MarriageDivorced:
			// As in the golden record (hub/merge, State.maritalNow), a
			// divorce ends only the latest marriage, and only when it
			// names that spouse; with no marriage known it stands.
			// Any divorce still shows the person is no longer married to
			// whom it names (divorces).
			var d schemas.MarriageDivorcedData
			if json.Unmarshal(c.Data, &d) != nil {
				break
			}
			if d.SpouseID != "" {
				if f.divorces == nil {
					f.divorces = map[citizenid.ID]time.Time{}
				}
				f.divorces[d.SpouseID] = day
			}
			if !sawMarriage || d.SpouseID == latestSpouse {
				f.married, f.spouse, f.maritalEv, sawMarital = false, "", ev, true
				f.maritalStatus = codes.MaritalDivorced
				f.divorcedFrom, f.divorcedOn = d.SpouseID, day
			}
		case schemas.ContractStarted:
			var d schemas.ContractStartedData
			if json.Unmarshal(c.Data, &d) == nil {
				f.contracts = upsertSpan(f.contracts, contracts, d.ContractID, d.WorkRegion, d.Start, d.End, ev)
			}
		case schemas.ContractEnded:
			var d schemas.ContractEndedData
			if json.Unmarshal(c.Data, &d) == nil {
				endSpan(f.contracts, contracts, d.ContractID, d.End, ev)
			}
		case schemas.RentalRegistered:
			var d schemas.RentalRegisteredData
			if json.Unmarshal(c.Data, &d) == nil {
				f.rentals = upsertSpan(f.rentals, leases, d.LeaseID, d.AddressCode, d.Start, d.End, ev)
			}
		case schemas.RentalEnded:
			var d schemas.RentalEndedData
			if json.Unmarshal(c.Data, &d) == nil {
				endSpan(f.rentals, leases, d.LeaseID, d.End, ev)
			}
		case schemas.PropertyRegistered:
			var d schemas.PropertyRegisteredData
			if json.Unmarshal(c.Data, &d) == nil {
				f.properties = upsertSpan(f.properties, props, d.PropertyID, d.AddressCode, fmtDay(day), "", ev)
			}
		case schemas.PropertyTransferred:
			var d schemas.PropertyTransferredData
			if json.Unmarshal(c.Data, &d) == nil {
				endSpan(f.properties, props, d.PropertyID, fmtDay(day), ev)
			}
		case schemas.BusinessRegistered:
			var d schemas.BusinessRegisteredData
			if json.Unmarshal(c.Data, &d) == nil {
				f.businesses = upsertSpan(f.businesses, biz, d.BusinessID, d.Region, fmtDay(day), "", ev)
			}
		case schemas.BusinessDeregistered:
			var d schemas.BusinessDeregisteredData
			if json.Unmarshal(c.Data, &d) == nil {
				endSpan(f.businesses, biz, d.BusinessID, fmtDay(day), ev)
			}
		case schemas.InsuranceEnrolled:
			var d schemas.InsuranceEnrolledData
			if json.Unmarshal(c.Data, &d) == nil && len(d.Start) >= 7 {
				enrolments = append(enrolments, enrolled{region: d.Region, insurances: d.Insurances, from: d.Start[:7], scheme: d.Scheme})
			}
		case schemas.ContributionRecorded:
			var d schemas.ContributionRecordedData
			if json.Unmarshal(c.Data, &d) == nil && d.Month <= f.asOf.Format("2006-01") {
				for _, k := range d.Insurances {
					if months[k] == nil {
						months[k] = map[string]map[string]payment{}
					}
					if months[k][d.Month] == nil {
						months[k][d.Month] = map[string]payment{}
					}
					months[k][d.Month][d.Region] = payment{region: d.Region, ev: ev}
				}
			}
		case schemas.InsuranceTransferred:
			var d schemas.InsuranceTransferredData
			if json.Unmarshal(c.Data, &d) == nil && d.FromRegion != d.ToRegion {
				transfers = append(transfers, transfer{month: day.Format("2006-01"), from: d.FromRegion, to: d.ToRegion})
			}
		case schemas.InsuranceTerminated:
			var d schemas.InsuranceTerminatedData
			if json.Unmarshal(c.Data, &d) == nil {
				if end, ok := parseDay(d.End); ok {
					for _, k := range d.Insurances {
						f.terminated[k] = end
					}
				}
			}
		case schemas.EducationGraduated:
			var d schemas.EducationGraduatedData
			if json.Unmarshal(c.Data, &d) == nil {
				if t, ok := parseDay(d.Date); ok {
					f.grads = latestVersion(f.grads, gradAt, c, graduation{level: d.Level, institution: d.Institution, date: t, ev: ev})
				}
			}
		case schemas.EducationEnrolled:
			var d schemas.EducationEnrolledData
			if json.Unmarshal(c.Data, &d) == nil {
				if t, ok := parseDay(d.Start); ok {
					f.enrols = latestVersion(f.enrols, enrolAt, c, enrolment{institution: d.Institution, level: d.Level, region: d.Region, start: t, ev: ev})
				}
			}
		}
	}
	// A diploma counts from its date (a school may register its graduates
	// ahead), once the version in force says so; a study ends on it, which
	// is known as soon as it is registered.
	f.studyEnds = slices.Clone(f.grads)
	f.grads = slices.DeleteFunc(f.grads, func(g graduation) bool { return g.date.After(f.asOf) })
	for k, m := range months {
		list := make([]contribution, 0, len(m))
		for month, byRegion := range m {
			for region, p := range byRegion {
				p.scheme = schemeOf(enrolments, k, region, month)
				byRegion[region] = p
			}
			list = append(list, contribution{month: month, paid: carryAll(month, byRegion, transfers)})
		}
		sort.Slice(list, func(i, j int) bool { return list[i].month < list[j].month })
		f.insurance[k] = list
	}
	if !sawHukou {
		f.hukouBefore(rec, history)
	}
	if !sawMarital {
		f.maritalBefore(rec, history)
	}
	return f
}

// latestVersion appends v, what change c says, to list, or replaces with
// it the version of the same department record (merge.RecordKey) that
// list holds at at[key]: changes come in stamp order, so a correction
// replaces what it corrects, as in the golden record.
func latestVersion[T any](list []T, at map[string]int, c *hub.Change, v T) []T {
	if key, ok := merge.RecordKey(stampOf(c)); ok {
		if i, seen := at[key]; seen {
			list[i] = v
			return list
		}
		at[key] = len(list)
	}
	return append(list, v)
}

// firstOf is the earliest change (in stamp order) of the whole history
// whose type is in types, nil when there is none.
func firstOf(history []hub.Change, types ...schemas.Type) *hub.Change {
	var first *hub.Change
	for i := range history {
		c := &history[i]
		if slices.Contains(types, c.Type) && (first == nil || stampBefore(c, first)) {
			first = c
		}
	}
	return first
}

// hukouBefore sets the hukou of a day before the history's first hukou
// event. A record handed in without any (its history predates the hub)
// still says where the person is registered. Otherwise the first event
// says what held before it: nothing before a registration, the address
// moved from before a migration; before a cancellation the person was
// registered somewhere the history does not say, so the record stands.
func (f *facts) hukouBefore(rec *hub.Record, history []hub.Change) {
	first := firstOf(history, schemas.HukouRegistered, schemas.HukouMigrated, schemas.HukouCancelled)
	if first != nil && first.Type == schemas.HukouRegistered {
		return
	}
	if first != nil && first.Type == schemas.HukouMigrated {
		var d schemas.HukouMigratedData
		if json.Unmarshal(first.Data, &d) == nil && d.FromAddressCode != "" {
			f.hukou, f.leftBy = d.FromAddressCode, first
			if rec.Hukou != nil && rec.Hukou.AddressCode == d.FromAddressCode {
				f.household = rec.Hukou.HouseholdID
			}
			return
		}
	}
	if rec.Hukou != nil {
		f.hukou, f.household = rec.Hukou.AddressCode, rec.Hukou.HouseholdID
	}
}

// hukouFact is a fact about the hukou of the day, worded text, citing
// the event that registered it there; a hukou known only as the address
// a later migration moved it from cites that migration and says so.
func (f *facts) hukouFact(text string) Fact {
	if f.hukouEv.eventID == "" && f.leftBy != nil {
		return fact(text+" (the address moved from by the migration of "+fmtDay(dayOf(f.leftBy.Time))+")",
			evidence{f.leftBy.Source, f.leftBy.EventID})
	}
	return fact(text, f.hukouEv)
}

// maritalBefore sets the marriage of a day before the history's first
// marital event, as hukouBefore does the hukou: the record's when the
// history holds none, unmarried before a marriage, married to the former
// spouse before a divorce.
func (f *facts) maritalBefore(rec *hub.Record, history []hub.Change) {
	first := firstOf(history, schemas.MarriageRegistered, schemas.MarriageDivorced)
	switch {
	case first == nil:
		if rec.Marital != nil {
			f.maritalStatus = rec.Marital.Status
			if rec.Marital.SpouseID != "" {
				f.married, f.spouse = true, rec.Marital.SpouseID
			}
			if rec.Marital.Status == codes.MaritalDivorced {
				f.divorcedOn, _ = parseDay(rec.Marital.Since)
			}
		}
	case first.Type == schemas.MarriageRegistered:
		f.maritalStatus = codes.MaritalUnmarried
	default:
		var d schemas.MarriageDivorcedData
		if json.Unmarshal(first.Data, &d) == nil && d.SpouseID != "" {
			f.married, f.spouse, f.maritalStatus = true, d.SpouseID, codes.MaritalMarried
		}
	}
}

// carry applies the transfers, in order of their effective time, to one
// month: a transfer takes the months paid in its from region up to its own
// month to its to region, where a policy counting local months (当地参加)
// counts them, as the social insurance department does after 转移接续. A
// month recorded late still goes where its account went.
func carry(month string, p payment, transfers []transfer) payment {
	for _, t := range transfers {
		if sameAccount(p.region, t.from) && month <= t.month {
			if p.carriedFrom == "" {
				p.carriedFrom = p.region
			}
			p.region = t.to
		}
	}
	return p
}

// enrolled is a social_insurance.enrolled: its insurances' scheme in a
// region from a month on.
type enrolled struct {
	region     string
	insurances []string
	from       string // YYYY-MM of its start
	scheme     string
}

// schemeOf is the scheme insurance k was paid under in region in month:
// that of its enrolment there (or at the region's city code) with the
// latest start by the month, the later recorded of two with the same
// start; "" when none had started. A back payment (补缴) of a month under
// an earlier scheme keeps that scheme, and an enrolment recorded after its
// contributions gives them theirs.
func schemeOf(enrolments []enrolled, k, region, month string) string {
	best := -1
	for i, e := range enrolments {
		if e.from > month || !slices.Contains(e.insurances, k) {
			continue
		}
		if e.region != region && !(len(region) == 6 && e.region == region[:4]+"00") {
			continue
		}
		if best < 0 || e.from >= enrolments[best].from {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return enrolments[best].scheme
}

// sameAccount reports whether a payment recorded in region is of the
// account a transfer from from moves: the same code, or one a city-level
// bureau wrote at the city's own code (230100) for the other, in one of
// its districts or counties (230103).
func sameAccount(region, from string) bool {
	if region == from {
		return true
	}
	cityCode := func(c string) bool { return len(c) == 6 && c[4:] == "00" && c[2:4] != "00" }
	return cityCode(from) && region[:min(4, len(region))] == from[:4] ||
		cityCode(region) && from[:min(4, len(from))] == region[:4]
}

// carryAll carries each of a month's payments (keyed by the region paid
// in) and keeps one per region it then counts in: a month paid in a
// region and also carried there by a transfer is one month there, paid
// there. The payments come in byPreference order.
func carryAll(month string, byRegion map[string]payment, transfers []transfer) []payment {
	all := make([]payment, 0, len(byRegion))
	for _, p := range byRegion {
		all = append(all, carry(month, p, transfers))
	}
	slices.SortFunc(all, byPreference)
	out := all[:0]
	for _, p := range all {
		if !slices.ContainsFunc(out, func(q payment) bool { return q.region == p.region }) {
			out = append(out, p)
		}
	}
	return out
}

// byPreference orders a month's payments for counting: those paid where
// they count before those a transfer carried there, then by region and
// the region paid in, so that the payment a count picks is the same
// whatever order the records came in.
func byPreference(a, b payment) int {
	if (a.carriedFrom == "") != (b.carriedFrom == "") {
		if a.carriedFrom == "" {
			return -1
		}
		return 1
	}
	if c := strings.Compare(a.region, b.region); c != 0 {
		return c
	}
	return strings.Compare(a.carriedFrom, b.carriedFrom)
}

// sortAsTheRecord puts changes in the merge's order (time, then source,
// then event id), but for what the record decides otherwise among
// changes of one time: of a contract's or lease's starts and ends of one
// time, the record weighs the latest start against the
// latest end (merge.EndedBefore), so that one goes after every change of
// its time. An end and a start that are different department records (a
// finished contract back-filled with one filing time) leave it ended;
// two versions of one record (a row deleted and inserted again in one
// transaction) follow their versions. Which change goes last is decided
// per change, so the order is one whatever order the changes came in;
// each change's data is read once.
func sortAsTheRecord(order []*hub.Change) {
	type latest struct{ start, end *hub.Change }
	byTime := map[int64]map[string]*latest{}
	for _, c := range order {
		isStart, isEnd := startTypes[c.Type], endTypes[c.Type]
		if !isStart && !isEnd {
			continue
		}
		items := byTime[c.Time.UnixNano()]
		if items == nil {
			items = map[string]*latest{}
			byTime[c.Time.UnixNano()] = items
		}
		it := itemOf(c)
		l := items[it]
		if l == nil {
			l = &latest{}
			items[it] = l
		}
		if isStart && (l.start == nil || stampBefore(l.start, c)) {
			l.start = c
		}
		if isEnd && (l.end == nil || stampBefore(l.end, c)) {
			l.end = c
		}
	}
	last := map[*hub.Change]bool{}
	for _, items := range byTime {
		for _, l := range items {
			switch {
			case l.start == nil || l.end == nil:
			case merge.EndedBefore(stampOf(l.start), stampOf(l.end)):
				last[l.start] = true
			default:
				last[l.end] = true
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.Time.Equal(b.Time) && last[a] != last[b] {
			return last[b]
		}
		return stampBefore(a, b)
	})
}

// endTypes end what an earlier event started, startTypes start it: a
// contract, a lease. (Insurances are decided by their contributions and
// the latest termination, which the merge's order already puts last.)
var (
	endTypes   = map[schemas.Type]bool{schemas.ContractEnded: true, schemas.RentalEnded: true}
	startTypes = map[schemas.Type]bool{schemas.ContractStarted: true, schemas.RentalRegistered: true}
)

// itemOf names what a start or an end concerns: "c:" and a contract id,
// or "l:" and a lease id; "" when its data cannot be read.
func itemOf(c *hub.Change) string {
	var d struct {
		ContractID string `json:"contract_id"`
		LeaseID    string `json:"lease_id"`
	}
	if json.Unmarshal(c.Data, &d) != nil {
		return ""
	}
	if c.Type == schemas.ContractStarted || c.Type == schemas.ContractEnded {
		return "c:" + d.ContractID
	}
	return "l:" + d.LeaseID
}

// stampBefore orders changes as the merge orders events (merge.Stamp:
// effective time, then source, then event id), so that of two changes
// with the same time the one the golden record shows comes last, whatever
// order they arrived in.
func stampBefore(a, b *hub.Change) bool {
	return stampOf(b).After(stampOf(a))
}

// stampOf is the merge's stamp of a change.
func stampOf(c *hub.Change) merge.Stamp {
	return merge.Stamp{T: c.Time, Src: c.Source, ID: c.EventID}
}

// statusAsOf is the person's status (hub.Status*) as of asOf, from the
// history rather than the record's status today, so a past evaluation of
// a person who died since is decided as it stood. A death counts as the
// population counts end on it (deadAsOf): from the corrected date of
// death, even if the certificate was issued after the evaluation day, at
// the latest from the day its first certificate took effect, until a
// registration stamped after it (a restoration) is in effect. A
// cancellation counts while it is the
// latest registration or cancellation (in stamp order) in force by asOf,
// as the hub derives the status (hub/merge). When the history holds no
// death and no cancellation at all, the record's own status stands: it
// was handed in with less history than it reflects.
//
// It also returns the change the status rests on, as the record's
// provenance names it (hub/merge, statusFrom): the latest certificate of
// the death in force, else the latest cancellation for death in force,
// else the cancellation in force; nil while active, and when the record's
// own status stands.
func statusAsOf(rec *hub.Record, history []hub.Change, asOf time.Time) (string, *hub.Change) {
	seen := latestDeath(history) != nil
	var lifecycle *hub.Change // the latest registration or cancellation by asOf
	for i := range history {
		c := &history[i]
		switch c.Type {
		case schemas.HukouCancelled, schemas.HukouRegistered:
			seen = seen || c.Type == schemas.HukouCancelled
			if !c.Time.After(asOf) && (lifecycle == nil || stampBefore(lifecycle, c)) {
				lifecycle = c
			}
		}
	}
	if !seen {
		if rec.Status == "" {
			return hub.StatusActive, nil
		}
		return rec.Status, nil
	}
	if last, issued := deathAsOf(history, asOf); last != nil {
		// Evidence of that day: its latest certificate by then, else a
		// cancellation for death in force by then; only when neither
		// existed yet the later certificate whose date of death it is.
		if issued != nil {
			return hub.StatusDeceased, issued
		}
		if c := deathCancellationAsOf(history, asOf); c != nil {
			return hub.StatusDeceased, c
		}
		return hub.StatusDeceased, last
	}
	if lifecycle != nil && lifecycle.Type == schemas.HukouCancelled {
		if c := deathCancellationAsOf(history, asOf); c != nil {
			return hub.StatusDeceased, c
		}
		return hub.StatusCancelled, lifecycle
	}
	return hub.StatusActive, nil
}

// latestDeath is the latest death certificate in stamp order, nil when
// there is none.
func latestDeath(history []hub.Change) *hub.Change {
	var latest *hub.Change
	for i := range history {
		if c := &history[i]; c.Type == schemas.DeathCertified && (latest == nil || stampBefore(latest, c)) {
			latest = c
		}
	}
	return latest
}

// upsertSpan records the start of a span under key, replacing an earlier
// registration of the same key (a corrected lease).
func upsertSpan(list []span, idx map[string]int, key, where, start, end string, ev evidence) []span {
	from, ok := parseDay(start)
	if !ok {
		return list
	}
	s := span{key: key, address: where, from: from, open: true, ev: ev}
	if to, ok := parseDay(end); ok {
		s.to, s.open = to, false
	}
	if i, ok := idx[key]; ok {
		list[i] = s
		return list
	}
	idx[key] = len(list)
	return append(list, s)
}

// endSpan closes the span under key at end (inclusive), by the event ev.
func endSpan(list []span, idx map[string]int, key, end string, ev evidence) {
	i, ok := idx[key]
	to, valid := parseDay(end)
	if !ok || !valid {
		return
	}
	list[i].to, list[i].open, list[i].endEv = to, false, ev
}

// run is spans joined into one stretch: each starts at most the allowed
// gap after the days covered so far. It may hold spans registered ahead,
// starting after the evaluation day, which only predictions may use.
type run struct {
	start time.Time
	end   time.Time // last day; unused while open
	open  bool
	spans []span // in order of start
}

// runsOf joins the spans accepted by keep into runs, a span joining the
// run before it when it starts on or before latest(that run's last day)
// (or while that run is open); runs come in order of start. Spans that
// start after the evaluation day are included: a lease or contract
// registered ahead extends the run it joins.
func runsOf(spans []span, latest func(end time.Time) time.Time, keep func(span) bool) []run {
	var cand []span
	for _, s := range spans {
		if keep(s) {
			cand = append(cand, s)
		}
	}
	sort.SliceStable(cand, func(i, j int) bool { return cand[i].from.Before(cand[j].from) })
	var runs []run
	for _, s := range cand {
		if n := len(runs); n > 0 && (runs[n-1].open || !s.from.After(latest(runs[n-1].end))) {
			r := &runs[n-1]
			r.spans = append(r.spans, s)
			if s.open {
				r.open = true
			} else if s.to.After(r.end) {
				r.end = s.to
			}
			continue
		}
		runs = append(runs, run{start: s.from, end: s.to, open: s.open, spans: []span{s}})
	}
	return runs
}

// inForceOn reports whether a span of the run covers asOf. It decides a
// condition as of asOf, so only spans that have started count: one
// registered ahead never makes a person eligible before its start.
func (r *run) inForceOn(asOf time.Time) bool {
	for _, s := range r.spans {
		if !s.from.After(asOf) && s.coversDay(asOf) {
			return true
		}
	}
	return false
}

// firstDayFrom is the first day on or after d that a span of the run
// covers, spans registered ahead included; ok is false when the run has
// ended by d.
func (r *run) firstDayFrom(d time.Time) (day time.Time, ok bool) {
	for _, s := range r.spans {
		if s.coversDay(d) {
			return d, true
		}
		if s.from.After(d) && (!ok || s.from.Before(day)) {
			day, ok = s.from, true
		}
	}
	return day, ok
}

// coveredUntil is the last day of the stretch from day d on that the
// run's spans, those registered ahead included, cover without a break;
// zero when it is open-ended. A run joined across a short break stops
// being in force in the break.
func (r *run) coveredUntil(d time.Time) time.Time {
	last := d.AddDate(0, 0, -1)
	for _, s := range r.spans {
		if s.from.After(last.AddDate(0, 0, 1)) {
			break
		}
		if s.open {
			return time.Time{}
		}
		if s.to.After(last) {
			last = s.to
		}
	}
	return last
}

// current picks, among runs, the one in force on asOf with the earliest
// start (the longest), judged only by spans that have started.
func current(runs []run, asOf time.Time) (*run, bool) {
	var best *run
	for i := range runs {
		r := &runs[i]
		if r.inForceOn(asOf) && (best == nil || r.start.Before(best.start)) {
			best = r
		}
	}
	return best, best != nil
}

// deathAsOf finds a death in force as of asOf, by the merge's rule
// (hub/merge, Registrations and deathDayAt): the certificates before one
// registration (in stamp order) are one death, counting from the day its
// first certificate took effect, or from the date of death on its latest
// certificate when that is earlier (each death keeps its own date; a
// later certificate of the same death corrects it); the registration
// after them ends it once in effect by asOf. last is the latest
// certificate of a death in force, nil when none is; issued is the latest
// certificate of a death in force stamped by asOf, nil when every one came
// later (a death known that day only from a later certificate's date of
// death).
func deathAsOf(history []hub.Change, asOf time.Time) (last, issued *hub.Change) {
	type death struct{ first, last, issued *hub.Change }
	deaths := map[*hub.Change]*death{} // by the registration that ends it (nil: none)
	for i := range history {
		c := &history[i]
		if c.Type != schemas.DeathCertified {
			continue
		}
		var end *hub.Change
		for j := range history {
			if r := &history[j]; r.Type == schemas.HukouRegistered && stampBefore(c, r) && (end == nil || stampBefore(r, end)) {
				end = r
			}
		}
		d := deaths[end]
		if d == nil {
			d = &death{first: c, last: c}
			deaths[end] = d
		}
		if stampBefore(c, d.first) {
			d.first = c
		}
		if stampBefore(d.last, c) {
			d.last = c
		}
		if !c.Time.After(asOf) && (d.issued == nil || stampBefore(d.issued, c)) {
			d.issued = c
		}
	}
	for end, d := range deaths {
		if end != nil && !end.Time.After(asOf) {
			continue // restored by asOf
		}
		day := dayOf(d.first.Time)
		var dd schemas.DeathCertifiedData
		if json.Unmarshal(d.last.Data, &dd) == nil {
			if died, ok := parseDay(dd.DateOfDeath); ok && died.Before(day) {
				day = died
			}
		}
		if day.After(dayOf(asOf)) {
			continue
		}
		if last == nil || stampBefore(last, d.last) {
			last = d.last
		}
		if d.issued != nil && (issued == nil || stampBefore(issued, d.issued)) {
			issued = d.issued
		}
	}
	return last, issued
}

// deathCancellationAsOf is the latest cancellation of the hukou for death
// stamped by asOf and after the latest registration stamped by then (a
// cancellation for death stays in force until a registration stamped
// after it, whatever other cancellation follows: hub/merge,
// deathInForce), or nil.
func deathCancellationAsOf(history []hub.Change, asOf time.Time) *hub.Change {
	var reg *hub.Change
	for i := range history {
		if c := &history[i]; c.Type == schemas.HukouRegistered && !c.Time.After(asOf) && (reg == nil || stampBefore(reg, c)) {
			reg = c
		}
	}
	var latest *hub.Change
	for i := range history {
		c := &history[i]
		if c.Type != schemas.HukouCancelled || c.Time.After(asOf) || reg != nil && stampBefore(c, reg) {
			continue
		}
		var d schemas.HukouCancelledData
		if json.Unmarshal(c.Data, &d) == nil && d.Reason == "death" && (latest == nil || stampBefore(latest, c)) {
			latest = c
		}
	}
	return latest
}
