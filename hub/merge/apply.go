package merge

import (
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
)

// affects lists the sections an event type can change, besides status and
// anomalies, which every event may change (any event can end the
// "unregistered" anomaly's window or start it).
var affects = map[schemas.Type][]schemas.Section{
	schemas.HukouRegistered:        {schemas.SecIdentity, schemas.SecHukou},
	schemas.HukouMigrated:          {schemas.SecHukou},
	schemas.HukouCancelled:         nil,
	schemas.ResidencePermitIssued:  {schemas.SecResidencePermits},
	schemas.ResidencePermitRevoked: {schemas.SecResidencePermits},
	schemas.IdentityCorrected:      {schemas.SecIdentity},
	schemas.DeathCertified:         nil,
	schemas.ContractStarted:        {schemas.SecEmployment},
	schemas.ContractEnded:          {schemas.SecEmployment},
	schemas.InsuranceEnrolled:      {schemas.SecSocialInsurance},
	schemas.ContributionRecorded:   {schemas.SecSocialInsurance},
	schemas.InsuranceTerminated:    {schemas.SecSocialInsurance},
	schemas.InsuranceTransferred:   {schemas.SecSocialInsurance},
	schemas.EducationEnrolled:      {schemas.SecEducation},
	schemas.EducationGraduated:     {schemas.SecEducation},
	schemas.PropertyRegistered:     {schemas.SecHousing},
	schemas.PropertyTransferred:    {schemas.SecHousing},
	schemas.RentalRegistered:       {schemas.SecHousing},
	schemas.RentalEnded:            {schemas.SecHousing},
	schemas.BusinessRegistered:     {schemas.SecTax},
	schemas.BusinessDeregistered:   {schemas.SecTax},
	schemas.MarriageRegistered:     {schemas.SecMarital},
	schemas.MarriageDivorced:       {schemas.SecMarital},
}

// affectedAll is affects plus status and anomalies, computed once.
var affectedAll = func() map[schemas.Type][]schemas.Section {
	m := make(map[schemas.Type][]schemas.Section, len(affects))
	for t, secs := range affects {
		m[t] = append(append([]schemas.Section(nil), secs...), schemas.SecStatus, schemas.SecAnomalies)
	}
	return m
}()

// Affected returns the sections an event of type t writes, and status and
// anomalies. The slice is shared: callers must not modify it.
func Affected(t schemas.Type) []schemas.Section { return affectedAll[t] }

// ends lists the sections an event type can change without writing them:
// a death, and a hukou cancelled for death or emigration, end the
// residence permits (permitEndingCancellations), and a registration or a
// migration in a permit's city ends that permit (permitWalk.settle).
// Their data carries no permit's fields, so Affected leaves them out.
var ends = map[schemas.Type][]schemas.Section{
	schemas.HukouCancelled:  {schemas.SecResidencePermits},
	schemas.DeathCertified:  {schemas.SecResidencePermits},
	schemas.HukouRegistered: {schemas.SecResidencePermits},
	schemas.HukouMigrated:   {schemas.SecResidencePermits},
}

// changeable lists, per type, every section a merge compares before and
// after an event of the type: affects, ends, status and anomalies.
var changeable = func() map[schemas.Type][]schemas.Section {
	m := make(map[schemas.Type][]schemas.Section, len(affects))
	for t, secs := range affects {
		m[t] = append(append(append([]schemas.Section(nil), secs...), ends[t]...), schemas.SecStatus, schemas.SecAnomalies)
	}
	return m
}()

func regMap[V any](m *map[string]*Reg[V], key string) *Reg[V] {
	if *m == nil {
		*m = map[string]*Reg[V]{}
	}
	r, ok := (*m)[key]
	if !ok {
		r = &Reg[V]{}
		(*m)[key] = r
	}
	return r
}

func entry[V any](m *map[string]*V, key string) *V {
	if *m == nil {
		*m = map[string]*V{}
	}
	r, ok := (*m)[key]
	if !ok {
		r = new(V)
		(*m)[key] = r
	}
	return r
}

// apply folds one decoded event into s (a clone owned by the caller).
func (s *State) apply(ev *schemas.Event) {
	at := Stamp{T: ev.Time, Src: ev.Source, ID: ev.ID}
	if s.First.IsZero() || ev.Time.Before(s.First) {
		s.First = ev.Time
	}
	s.track(ev, at)
	switch d := ev.Payload.(type) {
	case *schemas.HukouRegisteredData:
		s.Name.set(ptr(d.Name), at)
		s.setGender(d.Gender, at)
		s.setBirthDate(d.BirthDate, at)
		s.Ethnicity.set(ptr(d.Ethnicity), at)
		if at.After(s.Registered) {
			s.Registered = at
		}
		s.Location.set(&location{Address: d.AddressCode}, at)
		s.Household.set(ptr(d.HouseholdID), at)
		s.Lifecycle.set(ptr("registered"), at)
	case *schemas.HukouMigratedData:
		s.Location.set(&location{Address: d.ToAddressCode}, at)
		if d.HouseholdID != "" {
			s.Household.set(ptr(d.HouseholdID), at)
		}
	case *schemas.HukouCancelledData:
		s.Lifecycle.set(ptr("cancelled:"+d.Reason), at)
	case *schemas.ResidencePermitIssuedData:
		regMap(&s.Permits, d.CityCode).set(&permit{Address: d.AddressCode, Basis: d.Basis, ValidUntil: d.ValidUntil}, at)
	case *schemas.ResidencePermitRevokedData:
		regMap(&s.Permits, d.CityCode).set(nil, at)
	case *schemas.IdentityCorrectedData:
		if d.Name != "" {
			s.Name.set(ptr(d.Name), at)
		}
		if d.Gender != "" {
			s.setGender(d.Gender, at)
		}
		if d.BirthDate != "" {
			s.setBirthDate(d.BirthDate, at)
		}
		if d.Ethnicity != "" {
			s.Ethnicity.set(ptr(d.Ethnicity), at)
		}
	case *schemas.DeathCertifiedData:
		s.Death.set(&death{Date: d.DateOfDeath}, at)
	case *schemas.ContractStartedData:
		c := entry(&s.Contracts, d.ContractID)
		c.Started.set(ptr(*d), at)
	case *schemas.ContractEndedData:
		c := entry(&s.Contracts, d.ContractID)
		c.Ended.set(ptr(d.End), at)
	case *schemas.InsuranceEnrolledData:
		s.Scheme.set(ptr(d.Scheme), at)
		s.SIRegion.set(ptr(d.Region), at)
		for _, name := range d.Insurances {
			entry(&s.Insurances, name).Enrolled.set(ptr(d.Start), at)
		}
	case *schemas.ContributionRecordedData:
		for _, name := range d.Insurances {
			line := entry(&s.Insurances, name)
			line.Months, _ = addMonth(line.Months, d.Month)
		}
		s.touch(provPaid, at)
	case *schemas.InsuranceTerminatedData:
		for _, name := range d.Insurances {
			entry(&s.Insurances, name).Terminated.set(ptr(d.End), at)
		}
	case *schemas.InsuranceTransferredData:
		s.SIRegion.set(ptr(d.ToRegion), at)
	case *schemas.EducationEnrolledData:
		en := enrolment{Institution: d.Institution, Level: d.Level, Region: d.Region, Start: d.Start}
		regMap(&s.Enrolments, enrolmentKey(at, en)).set(&en, at)
	case *schemas.EducationGraduatedData:
		// Every graduation is kept; the record shows the highest level.
		g := graduation{Level: d.Level, Institution: d.Institution, Date: d.Date}
		regMap(&s.Graduations, graduationKey(at, g)).set(&g, at)
	case *schemas.PropertyRegisteredData:
		regMap(&s.Owned, d.PropertyID).set(&property{Address: d.AddressCode}, at)
	case *schemas.PropertyTransferredData:
		regMap(&s.Owned, d.PropertyID).set(nil, at)
	case *schemas.RentalRegisteredData:
		entry(&s.Rentals, d.LeaseID).Started.set(ptr(*d), at)
	case *schemas.RentalEndedData:
		entry(&s.Rentals, d.LeaseID).Ended.set(ptr(d.End), at)
	case *schemas.BusinessRegisteredData:
		regMap(&s.Businesses, d.BusinessID).set(&business{Region: d.Region}, at)
	case *schemas.BusinessDeregisteredData:
		regMap(&s.Businesses, d.BusinessID).set(nil, at)
	case *schemas.MarriageRegisteredData:
		s.Marital.set(&marital{Status: codes.MaritalMarried, Spouse: d.SpouseID}, at)
	case *schemas.MarriageDivorcedData:
		s.divorce(d.SpouseID, at)
	}
}

// divorce keeps at as the latest divorce naming spouse if it is later
// than the one kept. It leaves the marriage register: whether the divorce
// ends the marriage shown depends on which marriage is the latest, which
// a marriage arriving later may change (maritalNow).
func (s *State) divorce(spouse citizenid.ID, at Stamp) {
	if s.Divorces == nil {
		s.Divorces = map[citizenid.ID]Stamp{}
	}
	if cur, ok := s.Divorces[spouse]; !ok || at.After(cur) {
		s.Divorces[spouse] = at
	}
}

// maritalNow is the marital state the record shows and the stamp of the
// event it comes from; ok is false when nothing is known. The latest
// marriage gives the spouse; the person is divorced once a divorce
// naming that spouse took effect after it. A divorce naming another
// person (a former spouse) changes nothing. With no marriage known, the
// person is divorced since the latest divorce. A state stored before
// divorces were kept per spouse may hold a divorce in the marriage
// register: it stands, no spouse being known, until a later marriage
// replaces it, and a later divorce moves its date, as it did then.
func (s *State) maritalNow() (m marital, at Stamp, ok bool) {
	m, ok = s.Marital.get()
	if ok && m.Status == codes.MaritalMarried {
		if d, divorced := s.Divorces[m.Spouse]; divorced && d.After(s.Marital.At) {
			return marital{Status: codes.MaritalDivorced}, d, true
		}
		return m, s.Marital.At, true
	}
	if ok {
		at = s.Marital.At
	}
	for _, d := range s.Divorces {
		if d.After(at) {
			at = d
		}
	}
	if at.IsZero() {
		return marital{}, Stamp{}, false
	}
	return marital{Status: codes.MaritalDivorced}, at, true
}

// setBirthDate writes a birth date to its register and its value line.
func (s *State) setBirthDate(v string, at Stamp) {
	s.BirthLine = trackValue(s.BirthLine, s.BirthDate, v, at)
	s.BirthDate.set(&v, at)
}

// setGender writes a gender to its register and its value line.
func (s *State) setGender(v string, at Stamp) {
	s.GenderLine = trackValue(s.GenderLine, s.Gender, v, at)
	s.Gender.set(&v, at)
}

// trackValue adds value v, written by the event of at, to line, the
// value line of register r (before r takes the write). A register written
// once needs no line, its stamp being when it took its value: the line is
// started at the second write, with the first as r holds it, so that
// states stored before value lines need no migration.
func trackValue(line []point, r Reg[string], v string, at Stamp) []point {
	if len(line) == 0 {
		if r.At.IsZero() {
			return nil
		}
		line = addPoint(line, point{At: r.At, Kind: pointValue, Code: val(r)})
	}
	return addPoint(line, point{At: at, Kind: pointValue, Code: v})
}

// valueSince is when register r took the value it holds: the stamp of
// the earliest write of the run of equal values its line ends with, so
// that a write repeating the value moves nothing, in any arrival order.
func valueSince(line []point, r Reg[string]) Stamp {
	since := r.At
	v, ok := r.get()
	if !ok {
		return since
	}
	for i := len(line) - 1; i >= 0; i-- {
		if line[i].At.After(r.At) {
			continue
		}
		if line[i].Code != v {
			break
		}
		since = line[i].At
	}
	return since
}

// highestGraduation is the graduation the record shows: the highest of
// the records' latest versions (see higher), and its stamp.
func (s *State) highestGraduation() (graduation, Stamp, bool) {
	var best Reg[graduation]
	for _, r := range s.Graduations {
		if g, ok := r.get(); ok {
			if b, shown := best.get(); !shown || higher(g, r.At, b, best.At) {
				best = *r
			}
		}
	}
	g, ok := best.get()
	return g, best.At, ok
}

// higher orders graduations: the higher level wins, then the later date,
// then the later stamp.
func higher(a graduation, aAt Stamp, b graduation, bAt Stamp) bool {
	ra, rb := codes.EducationRank(a.Level), codes.EducationRank(b.Level)
	if ra != rb {
		return ra < rb
	}
	if a.Date != b.Date {
		return a.Date > b.Date
	}
	return aAt.After(bAt)
}

// touch keeps in s.Prov[key] the latest stamp it is given.
func (s *State) touch(key schemas.Section, at Stamp) {
	if s.Prov == nil {
		s.Prov = map[schemas.Section]Stamp{}
	}
	if cur, ok := s.Prov[key]; !ok || at.After(cur) {
		s.Prov[key] = at
	}
}
