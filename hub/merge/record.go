package merge

import (
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/region"
)

// china is China Standard Time; "since" dates derived from event times are
// calendar dates there.
var china = time.FixedZone("CST", 8*3600)

func day(t time.Time) string { return t.In(china).Format(time.DateOnly) }

// Status derives the person's status: deceased while a death (certified,
// or the hukou cancelled for death) is in force (deathInForce);
// cancelled while the latest lifecycle event is another cancellation;
// otherwise active.
func (s *State) Status() string {
	status, _ := s.statusFrom()
	return status
}

// statusFrom derives the person's status (Status) and the stamp of the
// event it rests on: the death in force (deathInForce: the latest
// certificate since the hukou was last restored, else the latest
// cancellation for death since then), or the cancellation in force (the
// latest lifecycle event, whose reason stands). Active, the absence of
// an end, rests on no one event: its stamp is zero.
func (s *State) statusFrom() (string, Stamp) {
	if at, dead := s.deathInForce(); dead {
		return hub.StatusDeceased, at
	}
	if l, ok := s.Lifecycle.get(); ok && strings.HasPrefix(l, "cancelled:") {
		return hub.StatusCancelled, s.Lifecycle.At
	}
	return hub.StatusActive, Stamp{}
}

// deathInForce returns the stamp of the event a death in force comes from
// and whether there is one. Changes take effect in order of time: a death
// certified, or a hukou cancelled for death, stays until a registration
// stamped after it restores the hukou, however late either arrives and
// whatever other cancellation follows. The certificate is preferred, as
// it carries the date of death; the cancellation stands in for it.
func (s *State) deathInForce() (Stamp, bool) {
	if _, ok := s.Death.get(); ok && s.Death.At.After(s.Registered) {
		return s.Death.At, true
	}
	if at := s.deathCancelled(); !at.IsZero() && at.After(s.Registered) {
		return at, true
	}
	return Stamp{}, false
}

// deathCancelled is the stamp of the latest cancellation of the hukou for
// death, or zero. The registration timeline keeps every cancellation; a
// state stored before that timeline may have the latest one only in the
// lifecycle register.
func (s *State) deathCancelled() Stamp {
	var latest Stamp
	if l, ok := s.Lifecycle.get(); ok && l == "cancelled:death" {
		latest = s.Lifecycle.At
	}
	for _, p := range s.HukouLine {
		if p.Kind == pointCancelled && p.At.After(latest) && s.cancellationReason(p) == "death" {
			latest = p.At
		}
	}
	return latest
}

// DateOfDeath is the date of the death in force: the certified date of
// death, or the date of the cancellation for death; "" for none.
func (s *State) DateOfDeath() string {
	at, ok := s.deathInForce()
	if !ok {
		return ""
	}
	if d, ok := s.Death.get(); ok && s.Death.At == at {
		return d.Date
	}
	return day(at.T)
}

// deathAt is the stamp of the event DateOfDeath comes from; zero if none.
func (s *State) deathAt() Stamp {
	at, _ := s.deathInForce()
	return at
}

// knownToPublicSecurity reports whether public security has recorded the
// person's hukou by any of its events: a registration, a migration or a
// cancellation each show that there is a hukou, so the person is not
// unregistered and a certified death leaves that hukou to cancel.
func (s *State) knownToPublicSecurity() bool {
	return !s.Registered.IsZero() || !s.Location.At.IsZero() || !s.Lifecycle.At.IsZero()
}

// Record derives the golden record.
func (s *State) Record() hub.Record {
	r := hub.Record{
		CitizenID: s.ID,
		Version:   s.Ver,
		UpdatedAt: s.UpdatedAt,
		Status:    s.Status(),
	}
	for _, sec := range schemas.Sections {
		s.fill(&r, sec)
	}
	for _, sec := range schemas.Sections {
		if !present(&r, sec) {
			continue
		}
		if at := s.provenance(sec); !at.IsZero() {
			if r.Provenance == nil {
				r.Provenance = map[string]hub.Provenance{}
			}
			r.Provenance[string(sec)] = hub.Provenance{Source: at.Src, EventID: at.ID, Time: at.T.In(schemas.CST())} // states stored before times were kept in CST too
		}
	}
	return r
}

// provPaid is the key in State.Prov of the latest contribution's stamp:
// contributions add months to a set and keep no stamp of their own.
const provPaid schemas.Section = "contribution"

// provenance is the stamp of the event a section's current state comes
// from: the latest of the events whose data the section shows. An event
// that showed nothing (a termination of an insurance never held, an end
// of a contract never started, a revocation of a permit never held) is
// not named, nor is one the section no longer shows (a lower graduation, a
// permit another city's replaced, a property transferred); and as it is
// derived from the merged state, it does not depend on arrival order.
// Status names the event it rests on (statusFrom), none while active.
func (s *State) provenance(sec schemas.Section) Stamp {
	var latest Stamp
	see := func(at Stamp) {
		if at.After(latest) {
			latest = at
		}
	}
	seeReg := func(v bool, at Stamp) {
		if v {
			see(at)
		}
	}
	switch sec {
	case schemas.SecStatus:
		_, at := s.statusFrom()
		see(at)
	case schemas.SecIdentity:
		seeReg(s.Name.V != nil, s.Name.At)
		seeReg(s.Gender.V != nil, s.Gender.At)
		seeReg(s.BirthDate.V != nil, s.BirthDate.At)
		seeReg(s.Ethnicity.V != nil, s.Ethnicity.At)
	case schemas.SecHukou:
		seeReg(s.Location.V != nil, s.Location.At)
		seeReg(s.Household.V != nil, s.Household.At)
	case schemas.SecResidencePermits:
		for _, c := range s.currentPermits() {
			see(c.at)
		}
	case schemas.SecMarital:
		// The marriage shown, or the divorce that ended it.
		_, at, ok := s.maritalNow()
		seeReg(ok, at)
	case schemas.SecEducation:
		// The graduation kept (the highest, not the latest) and the
		// enrolments.
		_, at, ok := s.highestGraduation()
		seeReg(ok, at)
		for _, reg := range s.Enrolments {
			seeReg(reg.V != nil, reg.At)
		}
	case schemas.SecEmployment:
		for _, c := range s.Contracts {
			if c.Started.V == nil {
				continue // an end without its start is not shown
			}
			see(c.Started.At)
			// An end that repeats the end its start carried shows nothing new.
			seeReg(c.Ended.V != nil && !EndedBefore(c.Started.At, c.Ended.At) && *c.Ended.V != c.Started.V.End, c.Ended.At)
		}
	case schemas.SecSocialInsurance:
		seeReg(s.Scheme.V != nil, s.Scheme.At)
		seeReg(s.SIRegion.V != nil, s.SIRegion.At)
		for _, line := range s.Insurances {
			if line.Enrolled.V == nil && len(line.Months) == 0 {
				continue // only terminated: not shown
			}
			seeReg(line.Enrolled.V != nil, line.Enrolled.At)
			seeReg(line.Terminated.V != nil && !EndedBefore(line.Enrolled.At, line.Terminated.At), line.Terminated.At)
		}
		see(s.Prov[provPaid])
		// A state stored before provenance was derived from what a section
		// shows keeps no contribution stamp; its per-section entry named
		// the latest social-insurance event, contributions included.
		see(s.Prov[schemas.SecSocialInsurance])
	case schemas.SecHousing:
		for _, reg := range s.Owned {
			seeReg(reg.V != nil, reg.At)
		}
		for _, r := range s.Rentals {
			if r.Started.V == nil {
				continue
			}
			see(r.Started.At)
			seeReg(r.Ended.V != nil && !EndedBefore(r.Started.At, r.Ended.At) && *r.Ended.V != r.Started.V.End, r.Ended.At)
		}
	case schemas.SecTax:
		for _, reg := range s.Businesses {
			seeReg(reg.V != nil, reg.At)
		}
	}
	return latest
}

// sectionOf returns one section of a record; nil-valued when absent.
func sectionOf(r *hub.Record, sec schemas.Section) any {
	switch sec {
	case schemas.SecIdentity:
		return r.Identity
	case schemas.SecHukou:
		return r.Hukou
	case schemas.SecStatus:
		return r.Status
	case schemas.SecResidencePermits:
		return r.ResidencePermits
	case schemas.SecMarital:
		return r.Marital
	case schemas.SecEducation:
		return r.Education
	case schemas.SecEmployment:
		return r.Employment
	case schemas.SecSocialInsurance:
		return r.SocialInsurance
	case schemas.SecHousing:
		return r.Housing
	case schemas.SecTax:
		return r.Tax
	case schemas.SecAnomalies:
		return r.Anomalies
	}
	return nil
}

// present reports whether a record holds a section that carries
// provenance: a data section, or status. Anomalies are the hub's own
// findings across sections, and carry none.
func present(r *hub.Record, sec schemas.Section) bool {
	switch sec {
	case schemas.SecStatus:
		return r.Status != ""
	case schemas.SecAnomalies:
		return false
	}
	v := reflect.ValueOf(sectionOf(r, sec))
	return v.IsValid() && !v.IsNil()
}

// section derives one section alone, for change detection.
func (s *State) section(sec schemas.Section) any {
	if sec == schemas.SecStatus {
		return s.Status()
	}
	var r hub.Record
	s.fill(&r, sec)
	return sectionOf(&r, sec)
}

func val[T any](r Reg[T]) T { v, _ := r.get(); return v }

func (s *State) fill(r *hub.Record, sec schemas.Section) {
	switch sec {
	case schemas.SecIdentity:
		id := hub.Identity{Name: val(s.Name), Gender: val(s.Gender), BirthDate: val(s.BirthDate), Ethnicity: val(s.Ethnicity)}
		if id != (hub.Identity{}) {
			r.Identity = &id
		}
	case schemas.SecHukou:
		if l, ok := s.Location.get(); ok {
			r.Hukou = &hub.Hukou{AddressCode: l.Address, RegionCode: l.Address[:6], Since: day(s.Location.At.T), HouseholdID: val(s.Household)}
			// The class comes from the region table in use when the
			// record is read, so an imported official table shows at once.
			if d, ok := region.Lookup(l.Address); ok {
				r.Hukou.UrbanRural, r.Hukou.ClassCode = d.UrbanRural, d.Class
			}
		}
	case schemas.SecResidencePermits:
		r.ResidencePermits = permitViews(s.currentPermits())
	case schemas.SecMarital:
		if m, at, ok := s.maritalNow(); ok {
			r.Marital = &hub.Marital{Status: m.Status, SpouseID: m.Spouse, Since: day(at.T)}
		}
	case schemas.SecEducation:
		var e hub.Education
		if g, _, ok := s.highestGraduation(); ok {
			e = hub.Education{HighestLevel: g.Level, Institution: g.Institution, GraduatedOn: g.Date}
		}
		for id, reg := range s.Enrolments {
			if en, ok := enrolmentView(id, reg); ok {
				e.Enrolments = append(e.Enrolments, en)
			}
		}
		sort.Slice(e.Enrolments, func(i, j int) bool {
			a, b := e.Enrolments[i], e.Enrolments[j]
			if a.Start != b.Start {
				return a.Start < b.Start
			}
			return a.Institution+a.Level < b.Institution+b.Level
		})
		if e.HighestLevel != "" || len(e.Enrolments) > 0 {
			r.Education = &e
		}
	case schemas.SecEmployment:
		for id, c := range s.Contracts {
			if v, ok := contractView(id, c); ok {
				r.Employment = append(r.Employment, v)
			}
		}
		sort.Slice(r.Employment, func(i, j int) bool {
			a, b := r.Employment[i], r.Employment[j]
			if a.Start != b.Start {
				return a.Start < b.Start
			}
			return a.ContractID < b.ContractID
		})
	case schemas.SecSocialInsurance:
		si := hub.SocialInsurance{Scheme: val(s.Scheme), Region: val(s.SIRegion)}
		for name, line := range s.Insurances {
			if line.Enrolled.V == nil && len(line.Months) == 0 {
				// Only terminated so far: a termination may name
				// insurances the person never had, or arrive before its
				// enrolment, which then shows it with its until.
				continue
			}
			l := hub.InsuranceLine{Since: val(line.Enrolled), Months: len(line.Months)}
			if n := len(line.Months); n > 0 {
				l.LastMonth = line.Months[n-1]
			}
			if end, ok := line.Terminated.get(); ok && !EndedBefore(line.Enrolled.At, line.Terminated.At) {
				l.Until = end
			}
			if si.Insurances == nil {
				si.Insurances = map[string]hub.InsuranceLine{}
			}
			si.Insurances[name] = l
		}
		if si.Scheme != "" || si.Region != "" || si.Insurances != nil {
			r.SocialInsurance = &si
		}
	case schemas.SecHousing:
		var h hub.Housing
		for id, reg := range s.Owned {
			if v, ok := propertyView(id, reg); ok {
				h.Owned = append(h.Owned, v)
			}
		}
		sort.Slice(h.Owned, func(i, j int) bool { return h.Owned[i].PropertyID < h.Owned[j].PropertyID })
		for id, rent := range s.Rentals {
			if v, ok := rentalView(id, rent); ok {
				h.Rentals = append(h.Rentals, v)
			}
		}
		sort.Slice(h.Rentals, func(i, j int) bool {
			a, b := h.Rentals[i], h.Rentals[j]
			if a.Start != b.Start {
				return a.Start < b.Start
			}
			return a.LeaseID < b.LeaseID
		})
		if h.Owned != nil || h.Rentals != nil {
			r.Housing = &h
		}
	case schemas.SecTax:
		var t hub.Tax
		for id, reg := range s.Businesses {
			if v, ok := businessView(id, reg); ok {
				t.Businesses = append(t.Businesses, v)
			}
		}
		sort.Slice(t.Businesses, func(i, j int) bool { return t.Businesses[i].BusinessID < t.Businesses[j].BusinessID })
		if t.Businesses != nil {
			r.Tax = &t
		}
	case schemas.SecAnomalies:
		r.Anomalies = s.anomalies()
	}
}

// permitViews is the residence-permit section listing permits cs.
func permitViews(cs []currentPermit) []hub.ResidencePermit {
	var out []hub.ResidencePermit
	for _, c := range cs {
		out = append(out, hub.ResidencePermit{CityCode: c.code, AddressCode: c.p.Address,
			Basis: c.p.Basis, Since: day(c.at.T), ValidUntil: c.p.ValidUntil})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CityCode < out[j].CityCode })
	return out
}

// The entries of the employment, housing, tax and education sections as
// the record shows them, each from its own registers alone; false when it
// is not shown. That independence is what lets a merge tell whether an
// event changed such a section from the one entry it touched (see
// entryOf).

func contractView(id string, c *contract) (hub.Contract, bool) {
	st, ok := c.Started.get()
	if !ok {
		return hub.Contract{}, false // an end without its start waits for the start
	}
	end := st.End
	if e, ok := c.Ended.get(); ok && !EndedBefore(c.Started.At, c.Ended.At) {
		end = e
	}
	return hub.Contract{ContractID: id, EmployerID: st.EmployerID, EmployerName: st.EmployerName,
		WorkRegion: st.WorkRegion, Start: st.Start, End: end}, true
}

func propertyView(id string, reg *Reg[property]) (hub.Property, bool) {
	p, ok := reg.get()
	if !ok {
		return hub.Property{}, false
	}
	return hub.Property{PropertyID: id, AddressCode: p.Address, Since: day(reg.At.T)}, true
}

func rentalView(id string, rent *rental) (hub.Rental, bool) {
	st, ok := rent.Started.get()
	if !ok {
		return hub.Rental{}, false
	}
	end := st.End
	if e, ok := rent.Ended.get(); ok && !EndedBefore(rent.Started.At, rent.Ended.At) {
		end = e
	}
	return hub.Rental{LeaseID: id, AddressCode: st.AddressCode, Start: st.Start, End: end}, true
}

func businessView(id string, reg *Reg[business]) (hub.Business, bool) {
	b, ok := reg.get()
	if !ok {
		return hub.Business{}, false
	}
	return hub.Business{BusinessID: id, Region: b.Region, Since: day(reg.At.T)}, true
}

func enrolmentView(_ string, reg *Reg[enrolment]) (hub.Enrolment, bool) {
	en, ok := reg.get()
	if !ok {
		return hub.Enrolment{}, false
	}
	return hub.Enrolment{Institution: en.Institution, Level: en.Level, Region: en.Region, Start: en.Start}, true
}

// graduationView is the part of the education section the graduation
// kept gives: the highest level, its institution and date.
type graduationView struct{ level, institution, date string }

// RecordKey names the department record an event is a version of, from
// an id of publisher.EventID's form without its version; ok is false for
// an id of another form, which names no record. Two events with one key
// are versions of one record, the later in stamp order correcting the
// earlier (see SameRecord).
func RecordKey(at Stamp) (key string, ok bool) {
	if !schemas.VersionedEventID(at.ID) {
		return "", false
	}
	const version = 1 + 16 // "-" and 16 hex digits
	return recordKeyPrefix + string(at.Src) + "\x00" + at.ID[:len(at.ID)-version], true
}

// recordKeyPrefix begins every RecordKey, which no institution name does.
const recordKeyPrefix = "\x01"

// recordKey keys an entry of the education section by the department
// record its event is a version of (RecordKey), so that a correction
// replaces the version it corrects whatever fields it changed; an event
// naming no record is keyed by what it says (own).
func recordKey(at Stamp, own string) string {
	if key, ok := RecordKey(at); ok {
		return key
	}
	return own
}

// enrolmentKey is the key of an enrolment's register in State.Enrolments:
// its record's, or else its institution and level.
func enrolmentKey(at Stamp, en enrolment) string {
	return recordKey(at, en.Institution+"\x00"+en.Level)
}

// graduationKey is the key of a graduation's register in
// State.Graduations: its record's, or else all it says.
func graduationKey(at Stamp, g graduation) string {
	return recordKey(at, g.Level+"\x00"+g.Institution+"\x00"+g.Date)
}

// entryOf is, for an event about one entry of the employment, housing,
// tax or education section (a contract, a property, a lease, a
// business, an enrolment, the graduation kept), that section and the
// entry as it shows there, nil when not shown; ok is false for other
// events. The section changed exactly when the entry did, which costs
// nothing to compare, while deriving a section costs each event its
// number of entries: a person with tens of thousands of contracts (a
// department's runaway export) made each of their events take tens of
// milliseconds and stalled the partition.
func (s *State) entryOf(ev *schemas.Event) (sec schemas.Section, entry any, ok bool) {
	switch d := ev.Payload.(type) {
	case *schemas.EducationEnrolledData:
		at := Stamp{Src: ev.Source, ID: ev.ID}
		return schemas.SecEducation, keyedView(s.Enrolments, enrolmentKey(at, enrolment{Institution: d.Institution, Level: d.Level}), enrolmentView), true
	case *schemas.EducationGraduatedData:
		g, _, shown := s.highestGraduation()
		if d.Level == "" || shown && g.Level == "" {
			// A graduation without a level (no valid event has one) shows
			// its institution and date only beside enrolments: the
			// section is derived whole.
			return "", nil, false
		}
		if !shown {
			return schemas.SecEducation, nil, true
		}
		return schemas.SecEducation, graduationView{g.Level, g.Institution, g.Date}, true
	case *schemas.ContractStartedData:
		return schemas.SecEmployment, keyedView(s.Contracts, d.ContractID, contractView), true
	case *schemas.ContractEndedData:
		return schemas.SecEmployment, keyedView(s.Contracts, d.ContractID, contractView), true
	case *schemas.PropertyRegisteredData:
		return schemas.SecHousing, keyedView(s.Owned, d.PropertyID, propertyView), true
	case *schemas.PropertyTransferredData:
		return schemas.SecHousing, keyedView(s.Owned, d.PropertyID, propertyView), true
	case *schemas.RentalRegisteredData:
		return schemas.SecHousing, keyedView(s.Rentals, d.LeaseID, rentalView), true
	case *schemas.RentalEndedData:
		return schemas.SecHousing, keyedView(s.Rentals, d.LeaseID, rentalView), true
	case *schemas.BusinessRegisteredData:
		return schemas.SecTax, keyedView(s.Businesses, d.BusinessID, businessView), true
	case *schemas.BusinessDeregisteredData:
		return schemas.SecTax, keyedView(s.Businesses, d.BusinessID, businessView), true
	}
	return "", nil, false
}

// keyedView is m's entry id as of shows it, nil when not shown. The
// views are structs of strings: two compare with == (see entryOf).
func keyedView[E, V any](m map[string]*E, id string, of func(string, *E) (V, bool)) any {
	if e := m[id]; e != nil {
		if v, shown := of(id, e); shown {
			return v
		}
	}
	return nil
}

// idBirthDate is the birth date encoded in an ID, as YYYY-MM-DD.
func idBirthDate(id citizenid.ID) string {
	d := string(id)
	if len(d) != 18 {
		return ""
	}
	return d[6:10] + "-" + d[10:12] + "-" + d[12:14]
}

// anomalies derives the open anomalies, sorted by kind.
func (s *State) anomalies() []hub.Anomaly {
	var out []hub.Anomaly
	if at, dead := s.deathInForce(); dead && at == s.Death.At && s.knownToPublicSecurity() {
		if l, ok := s.Lifecycle.get(); !ok || !strings.HasPrefix(l, "cancelled:") {
			// Seed 004: the hukou of the dead should be cancelled (应销未销).
			// Without any hukou event there is no hukou to cancel: the
			// person is unregistered, below. A certificate older than a
			// restoration is no longer in force.
			out = append(out, hub.Anomaly{Kind: hub.AnomalyDeathNotCancelled, Since: s.Death.V.Date})
		}
	}
	if !s.knownToPublicSecurity() && !s.First.IsZero() {
		out = append(out, hub.Anomaly{Kind: hub.AnomalyUnregistered, Since: day(s.First)})
	}
	// The mismatch has lasted at least since the earlier of the
	// disagreeing fields took its value: while either disagrees it is
	// open. A correction repeating the value leaves that time; one from
	// one wrong value to another counts from the correction.
	var since Stamp
	if b, ok := s.BirthDate.get(); ok && b != idBirthDate(s.ID) {
		since = valueSince(s.BirthLine, s.BirthDate)
	}
	if g, ok := s.Gender.get(); ok && (g == "1" || g == "2") && g != s.ID.Gender() {
		if at := valueSince(s.GenderLine, s.Gender); since.IsZero() || since.After(at) {
			since = at
		}
	}
	if !since.IsZero() {
		out = append(out, hub.Anomaly{Kind: hub.AnomalyIDMismatch, Since: day(since.T)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// EndedBefore reports whether a contract's, lease's or insurance's end took
// effect before its latest start: a start registered again after the end
// (the contract resumed, the lease renewed under its id) supersedes the
// end. Before is the hub's order of changes (Stamp.After), with one
// exception at the same time. Two versions of one department record (ids
// of publisher.EventID's form with one record key) are ordered by
// version, as any tie is: pophub cdc dates the DELETE and the INSERT of
// one row in one transaction (an ORM's "replace") by its commit time, and
// their versions, the WAL positions, put the INSERT last, so the row that
// exists is shown without an end. A start and an end that are different
// records (pophub import's 合同签订 and 合同终止 rows of a finished contract,
// back-filled with one filing time, whose ids hash unrelated keys) are
// not ordered by their ids, which would be chance: the end takes effect,
// as a finished contract's does.
func EndedBefore(started, ended Stamp) bool {
	if started.T.Equal(ended.T) && !SameRecord(started, ended) {
		return false
	}
	return started.After(ended)
}

// SameRecord reports whether two stamps are versions of one department
// record: the same source and ids of publisher.EventID's form that differ
// only in their version.
func SameRecord(a, b Stamp) bool {
	const version = 1 + 16 // "-" and 16 hex digits
	return a.Src == b.Src && schemas.VersionedEventID(a.ID) && schemas.VersionedEventID(b.ID) &&
		len(a.ID) == len(b.ID) && a.ID[:len(a.ID)-version] == b.ID[:len(b.ID)-version]
}
