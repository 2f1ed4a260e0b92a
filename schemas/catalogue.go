package schemas

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
	"github.com/pophub/pophub/schemas/region"
)

// Type is a CloudEvents type from the catalogue, "<domain>.<verb>".
type Type string

// The catalogue of event types.
const (
	HukouRegistered        Type = "hukou.registered"
	HukouMigrated          Type = "hukou.migrated"
	HukouCancelled         Type = "hukou.cancelled"
	ResidencePermitIssued  Type = "residence_permit.issued"
	ResidencePermitRevoked Type = "residence_permit.revoked"
	IdentityCorrected      Type = "identity.corrected"
	DeathCertified         Type = "death.certified"
	ContractStarted        Type = "employment.contract_started"
	ContractEnded          Type = "employment.contract_ended"
	InsuranceEnrolled      Type = "social_insurance.enrolled"
	ContributionRecorded   Type = "social_insurance.contribution_recorded"
	InsuranceTerminated    Type = "social_insurance.terminated"
	InsuranceTransferred   Type = "social_insurance.transferred"
	EducationEnrolled      Type = "education.enrolled"
	EducationGraduated     Type = "education.graduated"
	PropertyRegistered     Type = "housing.property_registered"
	PropertyTransferred    Type = "housing.property_transferred"
	RentalRegistered       Type = "housing.rental_registered"
	RentalEnded            Type = "housing.rental_ended"
	BusinessRegistered     Type = "tax.business_registered"
	BusinessDeregistered   Type = "tax.business_deregistered"
	MarriageRegistered     Type = "marriage.registered"
	MarriageDivorced       Type = "marriage.divorced"
)

// Data is the decoded data of one catalogue type.
type Data interface {
	validate(v *validator)
}

type typeSpec struct {
	source Source
	new    func() Data
}

// payloadTypes are the types of the catalogue's payload structs (what
// typeSpec.new returns), by event type.
var payloadTypes = func() map[Type]reflect.Type {
	m := make(map[Type]reflect.Type, len(catalogue))
	for t, spec := range catalogue {
		m[t] = reflect.TypeOf(spec.new())
	}
	return m
}()

var catalogue = map[Type]typeSpec{
	HukouRegistered:        {PublicSecurity, func() Data { return new(HukouRegisteredData) }},
	HukouMigrated:          {PublicSecurity, func() Data { return new(HukouMigratedData) }},
	HukouCancelled:         {PublicSecurity, func() Data { return new(HukouCancelledData) }},
	ResidencePermitIssued:  {PublicSecurity, func() Data { return new(ResidencePermitIssuedData) }},
	ResidencePermitRevoked: {PublicSecurity, func() Data { return new(ResidencePermitRevokedData) }},
	IdentityCorrected:      {PublicSecurity, func() Data { return new(IdentityCorrectedData) }},
	DeathCertified:         {Health, func() Data { return new(DeathCertifiedData) }},
	ContractStarted:        {Employment, func() Data { return new(ContractStartedData) }},
	ContractEnded:          {Employment, func() Data { return new(ContractEndedData) }},
	InsuranceEnrolled:      {SocialInsurance, func() Data { return new(InsuranceEnrolledData) }},
	ContributionRecorded:   {SocialInsurance, func() Data { return new(ContributionRecordedData) }},
	InsuranceTerminated:    {SocialInsurance, func() Data { return new(InsuranceTerminatedData) }},
	InsuranceTransferred:   {SocialInsurance, func() Data { return new(InsuranceTransferredData) }},
	EducationEnrolled:      {Education, func() Data { return new(EducationEnrolledData) }},
	EducationGraduated:     {Education, func() Data { return new(EducationGraduatedData) }},
	PropertyRegistered:     {Housing, func() Data { return new(PropertyRegisteredData) }},
	PropertyTransferred:    {Housing, func() Data { return new(PropertyTransferredData) }},
	RentalRegistered:       {Housing, func() Data { return new(RentalRegisteredData) }},
	RentalEnded:            {Housing, func() Data { return new(RentalEndedData) }},
	BusinessRegistered:     {Tax, func() Data { return new(BusinessRegisteredData) }},
	BusinessDeregistered:   {Tax, func() Data { return new(BusinessDeregisteredData) }},
	MarriageRegistered:     {Marriage, func() Data { return new(MarriageRegisteredData) }},
	MarriageDivorced:       {Marriage, func() Data { return new(MarriageDivorcedData) }},
}

// Types lists the catalogue in a stable order.
func Types() []Type {
	out := make([]Type, 0, len(catalogue))
	for t := range catalogue {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// SourceOf returns the source that owns type t, or "" if t is not in the
// catalogue.
func SourceOf(t Type) Source { return catalogue[t].source }

// NewData returns a new zero data struct for t, or nil.
func NewData(t Type) Data {
	spec, ok := catalogue[t]
	if !ok {
		return nil
	}
	return spec.new()
}

// Enumerations used in event data.
var (
	RegistrationReasons = []string{"birth", "settlement", "restored", "other"}
	MigrationReasons    = []string{"employment", "housing", "talent", "family", "study", "business", "other"}
	CancellationReasons = []string{"death", "emigration", "military", "duplicate", "other"}
	PermitBases         = []string{"employment", "housing", "study"}
	Schemes             = []string{"employee", "resident"}
	Insurances          = []string{"pension", "medical", "unemployment", "injury", "maternity"}
	AcquiredKinds       = []string{"purchase", "gift", "inheritance", "self_built"}
)

// HukouRegisteredData registers a person's hukou (birth, settlement, restoration).
type HukouRegisteredData struct {
	Name        string `json:"name"`
	Gender      string `json:"gender"`
	BirthDate   string `json:"birth_date"`
	Ethnicity   string `json:"ethnicity"`
	AddressCode string `json:"address_code"`
	HouseholdID string `json:"household_id"`
	Relation    string `json:"relation,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

func (d *HukouRegisteredData) validate(v *validator) {
	v.name("name", d.Name, true)
	v.code("gender", d.Gender, codes.Gender, true)
	v.date("birth_date", d.BirthDate, true)
	v.notFuture("birth_date", d.BirthDate)
	v.code("ethnicity", d.Ethnicity, codes.Ethnicity, true)
	v.address("address_code", d.AddressCode, true)
	v.householdID("household_id", d.HouseholdID, true)
	v.text("relation", d.Relation, false, 32)
	v.enum("reason", d.Reason, RegistrationReasons, false)
}

// HukouMigratedData moves a hukou from one address to another.
type HukouMigratedData struct {
	FromAddressCode string `json:"from_address_code"`
	ToAddressCode   string `json:"to_address_code"`
	Reason          string `json:"reason"`
	HouseholdID     string `json:"household_id,omitempty"`
}

func (d *HukouMigratedData) validate(v *validator) {
	v.address("from_address_code", d.FromAddressCode, true)
	v.address("to_address_code", d.ToAddressCode, true)
	v.enum("reason", d.Reason, MigrationReasons, true)
	v.householdID("household_id", d.HouseholdID, false)
}

// HukouCancelledData cancels a hukou.
type HukouCancelledData struct {
	Reason string `json:"reason"`
}

func (d *HukouCancelledData) validate(v *validator) {
	v.enum("reason", d.Reason, CancellationReasons, true)
}

// ResidencePermitIssuedData issues a residence permit (居住证) in a city.
type ResidencePermitIssuedData struct {
	CityCode    string `json:"city_code"`
	AddressCode string `json:"address_code"`
	Basis       string `json:"basis"`
	ValidUntil  string `json:"valid_until,omitempty"`
}

func (d *ResidencePermitIssuedData) validate(v *validator) {
	v.county("city_code", d.CityCode, true)
	v.address("address_code", d.AddressCode, true)
	if v.err == nil && !region.InPermitCity(d.AddressCode, d.CityCode) {
		v.fail("address_code", "address code "+d.AddressCode+" does not lie in the city of city_code "+d.CityCode+": a residence permit is for an address in the city that issues it")
	}
	v.enum("basis", d.Basis, PermitBases, true)
	v.date("valid_until", d.ValidUntil, false)
}

// ResidencePermitRevokedData revokes the residence permit of a city.
type ResidencePermitRevokedData struct {
	CityCode string `json:"city_code"`
}

func (d *ResidencePermitRevokedData) validate(v *validator) { v.county("city_code", d.CityCode, true) }

// IdentityCorrectedData corrects identity fields; absent fields are unchanged.
type IdentityCorrectedData struct {
	Name      string `json:"name,omitempty"`
	Gender    string `json:"gender,omitempty"`
	BirthDate string `json:"birth_date,omitempty"`
	Ethnicity string `json:"ethnicity,omitempty"`
}

func (d *IdentityCorrectedData) validate(v *validator) {
	v.name("name", d.Name, false)
	v.code("gender", d.Gender, codes.Gender, false)
	v.date("birth_date", d.BirthDate, false)
	v.notFuture("birth_date", d.BirthDate)
	v.code("ethnicity", d.Ethnicity, codes.Ethnicity, false)
	if d.Name == "" && d.Gender == "" && d.BirthDate == "" && d.Ethnicity == "" {
		v.fail("data", "at least one of name, gender, birth_date, ethnicity is required")
	}
}

// DeathCertifiedData records a medical death certificate.
type DeathCertifiedData struct {
	DateOfDeath   string `json:"date_of_death"`
	CertificateNo string `json:"certificate_no"`
	PlaceCode     string `json:"place_code,omitempty"`
}

func (d *DeathCertifiedData) validate(v *validator) {
	v.date("date_of_death", d.DateOfDeath, true)
	v.notFuture("date_of_death", d.DateOfDeath)
	v.text("certificate_no", d.CertificateNo, true, 64)
	// A place is a county or an address, and like every other code it
	// must be in the region table, not merely shaped like a code.
	switch {
	case d.PlaceCode == "":
	case region.IsAddressCode(d.PlaceCode):
		v.address("place_code", d.PlaceCode, false)
	case region.IsCountyCode(d.PlaceCode):
		v.county("place_code", d.PlaceCode, false)
	default:
		v.fail("place_code", "must be a 6- or 12-digit division code")
	}
}

// ContractStartedData starts a labour contract.
type ContractStartedData struct {
	ContractID   string `json:"contract_id"`
	EmployerID   string `json:"employer_id"`
	EmployerName string `json:"employer_name"`
	WorkRegion   string `json:"work_region"`
	Start        string `json:"start"`
	End          string `json:"end,omitempty"`
}

func (d *ContractStartedData) validate(v *validator) {
	v.text("contract_id", d.ContractID, true, 64)
	v.uscc("employer_id", d.EmployerID)
	v.text("employer_name", d.EmployerName, true, 200)
	v.county("work_region", d.WorkRegion, true)
	v.date("start", d.Start, true)
	v.date("end", d.End, false)
	v.order("end", d.Start, d.End)
}

// ContractEndedData ends a labour contract.
type ContractEndedData struct {
	ContractID string `json:"contract_id"`
	End        string `json:"end"`
}

func (d *ContractEndedData) validate(v *validator) {
	v.text("contract_id", d.ContractID, true, 64)
	v.date("end", d.End, true)
}

// InsuranceEnrolledData enrols a person in social insurance.
type InsuranceEnrolledData struct {
	Scheme     string   `json:"scheme"`
	Insurances []string `json:"insurances"`
	Region     string   `json:"region"`
	Start      string   `json:"start"`
}

func (d *InsuranceEnrolledData) validate(v *validator) {
	v.enum("scheme", d.Scheme, Schemes, true)
	v.insurances("insurances", d.Insurances)
	v.county("region", d.Region, true)
	v.date("start", d.Start, true)
}

// ContributionRecordedData records one month of contributions.
type ContributionRecordedData struct {
	Month      string   `json:"month"`
	Region     string   `json:"region"`
	Insurances []string `json:"insurances"`
}

func (d *ContributionRecordedData) validate(v *validator) {
	v.month("month", d.Month)
	v.notAhead("month", d.Month)
	v.county("region", d.Region, true)
	v.insurances("insurances", d.Insurances)
}

// InsuranceTerminatedData terminates insurances.
type InsuranceTerminatedData struct {
	Insurances []string `json:"insurances"`
	Region     string   `json:"region"`
	End        string   `json:"end"`
}

func (d *InsuranceTerminatedData) validate(v *validator) {
	v.insurances("insurances", d.Insurances)
	v.county("region", d.Region, true)
	v.date("end", d.End, true)
}

// InsuranceTransferredData records a completed transfer (转移接续).
type InsuranceTransferredData struct {
	FromRegion string `json:"from_region"`
	ToRegion   string `json:"to_region"`
}

func (d *InsuranceTransferredData) validate(v *validator) {
	v.county("from_region", d.FromRegion, true)
	v.county("to_region", d.ToRegion, true)
}

// EducationEnrolledData enrols a student.
type EducationEnrolledData struct {
	Institution string `json:"institution"`
	Level       string `json:"level"`
	Region      string `json:"region"`
	Start       string `json:"start"`
}

func (d *EducationEnrolledData) validate(v *validator) {
	v.text("institution", d.Institution, true, 200)
	v.code("level", d.Level, codes.Education, true)
	v.county("region", d.Region, true)
	v.date("start", d.Start, true)
}

// EducationGraduatedData records a graduation.
type EducationGraduatedData struct {
	Institution   string `json:"institution"`
	Level         string `json:"level"`
	Date          string `json:"date"`
	CertificateNo string `json:"certificate_no"`
}

func (d *EducationGraduatedData) validate(v *validator) {
	v.text("institution", d.Institution, true, 200)
	v.code("level", d.Level, codes.Education, true)
	v.date("date", d.Date, true)
	v.text("certificate_no", d.CertificateNo, true, 64)
}

// PropertyRegisteredData registers ownership of a property.
type PropertyRegisteredData struct {
	PropertyID  string   `json:"property_id"`
	AddressCode string   `json:"address_code"`
	Acquired    string   `json:"acquired"`
	AreaM2      *float64 `json:"area_m2,omitempty"`
}

func (d *PropertyRegisteredData) validate(v *validator) {
	v.text("property_id", d.PropertyID, true, 64)
	v.address("address_code", d.AddressCode, true)
	v.enum("acquired", d.Acquired, AcquiredKinds, true)
	if d.AreaM2 != nil && (*d.AreaM2 <= 0 || *d.AreaM2 > 100000) {
		v.fail("area_m2", "must be a positive area in square metres")
	}
}

// PropertyTransferredData records that the person no longer owns a property.
type PropertyTransferredData struct {
	PropertyID string `json:"property_id"`
}

func (d *PropertyTransferredData) validate(v *validator) {
	v.text("property_id", d.PropertyID, true, 64)
}

// RentalRegisteredData registers a lease.
type RentalRegisteredData struct {
	LeaseID     string `json:"lease_id"`
	AddressCode string `json:"address_code"`
	Start       string `json:"start"`
	End         string `json:"end,omitempty"`
}

func (d *RentalRegisteredData) validate(v *validator) {
	v.text("lease_id", d.LeaseID, true, 64)
	v.address("address_code", d.AddressCode, true)
	v.date("start", d.Start, true)
	v.date("end", d.End, false)
	v.order("end", d.Start, d.End)
}

// RentalEndedData ends a lease.
type RentalEndedData struct {
	LeaseID string `json:"lease_id"`
	End     string `json:"end"`
}

func (d *RentalEndedData) validate(v *validator) {
	v.text("lease_id", d.LeaseID, true, 64)
	v.date("end", d.End, true)
}

// BusinessRegisteredData registers a business (licence and tax registration).
type BusinessRegisteredData struct {
	BusinessID string `json:"business_id"`
	Region     string `json:"region"`
	Name       string `json:"name,omitempty"`
}

func (d *BusinessRegisteredData) validate(v *validator) {
	v.uscc("business_id", d.BusinessID)
	v.county("region", d.Region, true)
	v.text("name", d.Name, false, 200)
}

// BusinessDeregisteredData deregisters a business.
type BusinessDeregisteredData struct {
	BusinessID string `json:"business_id"`
}

func (d *BusinessDeregisteredData) validate(v *validator) { v.uscc("business_id", d.BusinessID) }

// MarriageRegisteredData registers a marriage; the spouse gets its own event.
type MarriageRegisteredData struct {
	SpouseID citizenid.ID `json:"spouse_id"`
}

func (d *MarriageRegisteredData) validate(v *validator) { v.spouse(d.SpouseID) }

// MarriageDivorcedData registers a divorce; the former spouse gets its own event.
type MarriageDivorcedData struct {
	SpouseID citizenid.ID `json:"spouse_id"`
}

func (d *MarriageDivorcedData) validate(v *validator) { v.spouse(d.SpouseID) }

// validator collects the first data error; field names are JSON paths.
type validator struct {
	now     time.Time
	subject citizenid.ID // the event's, for rules between data and subject
	at      time.Time    // the event's time, for rules between data and time
	err     *RejectError
}

// spouse checks a marriage's or divorce's spouse_id, which names the
// other person: the event about the subject's spouse is a separate one.
func (v *validator) spouse(id citizenid.ID) {
	v.citizen("spouse_id", id)
	if v.err == nil && id == v.subject {
		v.fail("spouse_id", "is the subject's own citizen ID: it must name the other spouse")
	}
}

func (v *validator) fail(field, detail string) {
	if v.err == nil {
		if field != "data" {
			field = "data." + field
		}
		v.err = &RejectError{Reason: ReasonInvalidData, Field: field, Detail: detail}
	}
}

func (v *validator) required(field, s string) bool {
	if s == "" {
		v.fail(field, "required field is missing or empty")
		return false
	}
	return true
}

func (v *validator) text(field, s string, req bool, max int) {
	if s == "" {
		if req {
			v.required(field, s)
		}
		return
	}
	if utf8.RuneCountInString(s) > max {
		v.fail(field, fmt.Sprintf("longer than %d characters", max))
	}
	if !printable(s) {
		v.fail(field, "must not contain control characters")
	}
}

// householdID checks a household number (户号): text of at most 64
// characters, neither blank nor padded. The stores find a family by its
// household number at one address, so " H1" would be another household
// than "H1", and the blanks of a fixed-width column left empty a
// household of strangers.
func (v *validator) householdID(field, s string, req bool) {
	v.text(field, s, req, 64)
	if s == "" {
		return
	}
	trimmed := citizenid.TrimTyped(s)
	switch {
	case trimmed == "":
		r, _ := utf8.DecodeRuneInString(s)
		v.fail(field, fmt.Sprintf("is blank: it holds nothing but white space or invisible characters, beginning with %s; send the household's number", codePoint(r)))
	case !strings.HasPrefix(s, trimmed):
		r, _ := utf8.DecodeRuneInString(s)
		v.fail(field, fmt.Sprintf("begins with %s: remove the padding", codePoint(r)))
	case trimmed != s:
		r, _ := utf8.DecodeLastRuneInString(s)
		v.fail(field, fmt.Sprintf("ends with %s: remove the padding", codePoint(r)))
	}
}

// HouseholdNumber reports whether field of events of type t is a
// household number, which pophub cdc trims as pophub import trims every
// cell (see validator.householdID).
func HouseholdNumber(t Type, field string) bool {
	return field == "household_id" && (t == HukouRegistered || t == HukouMigrated)
}

// name checks a person's name (see nameProblem for the rules beyond
// these, and PersonName for the fields it applies to).
func (v *validator) name(field, s string, req bool) {
	if s == "" {
		if req {
			v.required(field, s)
		}
		return
	}
	if len([]rune(s)) > 64 {
		v.fail(field, "longer than 64 characters")
	}
	if !printable(s) {
		v.fail(field, "must not contain control characters")
	}
	if r, ok := garbled(s); ok {
		v.fail(field, fmt.Sprintf("holds %s, which a program writes for a character the file's encoding lacks: the name was garbled when the file was saved or converted (Excel's and WPS's CSV in GBK write ? for 𠮷 or 䶮); save the file as UTF-8 (CSV UTF-8) or GB 18030, or as XLSX, and retype the character", r))
	}
	if r, ok := privateUse(s); ok {
		v.fail(field, fmt.Sprintf("holds U+%04X, a private-use character (造字, drawn only by the sending department's own fonts; GB 18030 maps GBK's user-defined areas there): replace it with the character's standard code", r))
	}
	if p := nameProblem(s); p != "" {
		v.fail(field, p)
	}
}

// garbled returns how the first character of s that stands for a lost
// one is named: an ASCII ?, which Windows' code page conversions write
// for a character the code page lacks (the 生僻字 of names, in GBK), or
// U+FFFD, the replacement character of a conversion that met bytes it
// could not read. No name holds either: it was garbled before it was
// sent, and the character it stood for cannot be recovered from it.
func garbled(s string) (string, bool) {
	switch i := strings.IndexAny(s, "?\uFFFD"); {
	case i < 0:
		return "", false
	case s[i] == '?':
		return "?", true
	}
	return "U+FFFD (�)", true
}

// privateUse returns the first character of Unicode's private use areas
// in s. A name holding one reads as nothing, or as another character, on
// every other department's systems.
func privateUse(s string) (rune, bool) {
	for _, r := range s {
		if r >= 0xE000 && r <= 0xF8FF || r >= 0xF0000 {
			return r, true
		}
	}
	return 0, false
}

func (v *validator) code(field, s string, table map[string]string, req bool) {
	if s == "" {
		if req {
			v.required(field, s)
		}
		return
	}
	if _, ok := table[s]; !ok {
		v.fail(field, "not a code of its national standard")
	}
}

func (v *validator) enum(field, s string, allowed []string, req bool) {
	if s == "" {
		if req {
			v.required(field, s)
		}
		return
	}
	for _, a := range allowed {
		if a == s {
			return
		}
	}
	v.fail(field, "must be one of "+joinQuoted(allowed))
}

func joinQuoted(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

// IsDate reports whether s is a real calendar date written YYYY-MM-DD.
// It accepts exactly what time.Parse(time.DateOnly, s) accepts in ten
// bytes (TestDateChecksMatchTimeParse), without its generic parser: data
// validation checks several dates an event.
func IsDate(s string) bool {
	if len(s) != 10 || s[7] != '-' {
		return false
	}
	year, month, ok := yearMonth(s[:7])
	if !ok {
		return false
	}
	day, ok := twoDigits(s[8:])
	return ok && day >= 1 && day <= citizenid.DaysIn(month, year)
}

// yearMonth parses YYYY-MM as time.Parse("2006-01", s) does (four
// digits, a month 01 to 12).
func yearMonth(s string) (year, month int, ok bool) {
	if len(s) != 7 || s[4] != '-' {
		return 0, 0, false
	}
	hi, ok1 := twoDigits(s[:2])
	lo, ok2 := twoDigits(s[2:4])
	month, ok3 := twoDigits(s[5:])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 {
		return 0, 0, false
	}
	return hi*100 + lo, month, true
}

func twoDigits(s string) (int, bool) {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

func (v *validator) date(field, s string, req bool) {
	if s == "" {
		if req {
			v.required(field, s)
		}
		return
	}
	if !IsDate(s) {
		v.fail(field, "must be a date YYYY-MM-DD")
		return
	}
	if field != "birth_date" {
		v.lived(field, s)
	}
}

// lived refuses a date of the subject's life (a death, a contract: YYYY-
// MM-DD; a contribution month: YYYY-MM) more than a year before the
// birth date its citizen ID carries, or a placeholder before it (see
// unlived).
func (v *validator) lived(field, date string) {
	switch placeholderDate, early := unlived(v.subject, date); {
	case placeholderDate:
		v.fail(field, "is a placeholder date (0001-01-01, 1900-01-01, 1970-01-01) before the subject's birth date (digits 7–14 of the citizen ID): for a date the record does not know, send the real one or, where the field is optional, none")
	case early:
		v.fail(field, "lies more than a year before the subject's birth date (digits 7–14 of the citizen ID): for a date the record does not know, send the real one or, where the field is optional, none")
	}
}

// unlived reports why date (YYYY-MM-DD, or a month YYYY-MM) cannot be a
// date of the life of the person whose citizen ID is id: it is a
// placeholder before the birth date the ID carries, or it lies more than
// a year before that birth date. Systems write 1900-01-01, 1970-01-01 or
// 0001-01-01 for a date they do not know; taken at its word, such a date
// of death removes the person from every count since, and such a start
// meets any duration rule at once. The year's grace is for IDs whose
// birth date is wrong, which the birth date fields may correct (they are
// not checked against it): an infant's death or insurance from birth may
// then lie before the ID's date. An ID that is not 18 characters (one
// that failed its own check) holds no birth date: nothing is refused.
func unlived(id citizenid.ID, date string) (placeholderDate, early bool) {
	if len(id) != 18 {
		return false, false
	}
	var floor [8]byte // the ID's birth date less a year, YYYYMMDD
	y := int(id[6]-'0')*1000 + int(id[7]-'0')*100 + int(id[8]-'0')*10 + int(id[9]-'0') - 1
	for i := 3; i >= 0; i-- {
		floor[i] = byte('0' + y%10)
		y /= 10
	}
	copy(floor[4:], id[10:14])
	if placeholder(date) && beforeDigits(date, string(id[6:14])) {
		return true, false
	}
	return false, beforeDigits(date, string(floor[:]))
}

// placeholder reports whether date (YYYY-MM-DD or YYYY-MM) is one that
// systems write for a date they do not know: the first day (or month) of
// year 1, 1900 or 1970. Before a person's birth it is never true, even
// within the year lived allows.
func placeholder(date string) bool {
	if len(date) >= 7 && date[4:7] == "-01" && (len(date) == 7 || date[7:] == "-01") {
		switch date[:4] {
		case "0001", "1900", "1970":
			return true
		}
	}
	return false
}

// beforeDigits reports whether date, YYYY-MM-DD or YYYY-MM, lies before
// the date whose digits are yyyymmdd (a month before its first day).
func beforeDigits(date, yyyymmdd string) bool {
	for i, j := 0, 0; i < len(date); i++ {
		if date[i] == '-' {
			continue
		}
		if date[i] != yyyymmdd[j] {
			return date[i] < yyyymmdd[j]
		}
		j++
	}
	return false
}

// notFuture judges "the future" by the calendar day in China, as
// citizenid.ParseAt does for birth dates, whatever zone v.now is in.
func (v *validator) notFuture(field, s string) {
	if IsDate(s) && s > citizenid.Today(v.now).Format(time.DateOnly) {
		v.fail(field, "lies in the future")
	}
}

func (v *validator) order(field, start, end string) {
	if IsDate(start) && IsDate(end) && end < start {
		v.fail(field, "is before start")
	}
}

func (v *validator) month(field, s string) {
	if !v.required(field, s) {
		return
	}
	if _, _, ok := yearMonth(s); !ok {
		v.fail(field, "must be a month YYYY-MM")
		return
	}
	v.lived(field, s)
}

// notAhead refuses a month after December of the year after the event's
// time, in China (UTC+8). Contributions may be paid ahead, resident
// medical insurance (城乡居民医保) in the autumn for every month of the
// next year; a month beyond that is a typo (2062-03 for 2026-03) or a
// filler for "unknown" (9999-12), which the record would count for ever:
// its months only grow, and no event takes one back.
func (v *validator) notAhead(field, s string) {
	year, _, ok := yearMonth(s)
	if !ok {
		return
	}
	if year > v.at.In(cst).Year()+1 {
		v.fail(field, "lies after the end of the year after the event's time")
	}
}

func (v *validator) address(field, s string, req bool) {
	if s == "" {
		if req {
			v.required(field, s)
		}
		return
	}
	if !region.IsAddressCode(s) {
		v.fail(field, "must be a 12-digit statistical division code")
		return
	}
	if !region.Known(s) && v.err == nil {
		v.err = &RejectError{Reason: ReasonUnknownAddressCode, Field: "data." + field,
			Detail: "address code " + s + " is not in the region table"}
	}
}

func (v *validator) county(field, s string, req bool) {
	if s == "" {
		if req {
			v.required(field, s)
		}
		return
	}
	if !region.IsCountyCode(s) {
		v.fail(field, "must be a 6-digit division code")
		return
	}
	if !region.KnownRegion(s) && v.err == nil {
		v.err = &RejectError{Reason: ReasonUnknownAddressCode, Field: "data." + field,
			Detail: "region code " + s + " is not in the region table"}
	}
}

func (v *validator) uscc(field, s string) {
	if !v.required(field, s) {
		return
	}
	if !codes.ValidUSCC(s) {
		v.fail(field, "must be an 18-character unified social credit code with a valid check character")
	}
}

// citizen checks an ID field again although decoding through
// citizenid.ID.UnmarshalText validated it: CheckEncoded validates a typed
// payload that was never decoded, where an ID is whatever string the
// publisher set, and must reject it as Decode rejects its encoding. So the
// detail is the parser's, as Decode gives it (dataDecodeError), also for
// an empty ID, which the encoding carries as "" (and never contains the
// ID).
func (v *validator) citizen(field string, id citizenid.ID) {
	if _, err := citizenid.ParseAt(string(id), v.now); err != nil {
		var ce *citizenid.Error
		if errors.As(err, &ce) {
			err = ce.Reason
		}
		v.fail(field, err.Error())
	}
}

func (v *validator) insurances(field string, list []string) {
	if len(list) == 0 {
		v.fail(field, "at least one insurance is required")
		return
	}
	for i, s := range list {
		// Lists are short: looking back costs less than a set.
		if slices.Contains(list[:i], s) {
			v.fail(field, "lists "+s+" twice")
			return
		}
		v.enum(field, s, Insurances, true)
	}
}
