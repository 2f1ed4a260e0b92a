package schemas

import (
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/region"
)

// Section names a part of the golden record. Each has one authoritative source.
type Section string

// Golden-record sections. Status and anomalies are derived by the hub.
const (
	SecIdentity         Section = "identity"
	SecHukou            Section = "hukou"
	SecStatus           Section = "status"
	SecResidencePermits Section = "residence_permits"
	SecMarital          Section = "marital"
	SecEducation        Section = "education"
	SecEmployment       Section = "employment"
	SecSocialInsurance  Section = "social_insurance"
	SecHousing          Section = "housing"
	SecTax              Section = "tax"
	SecAnomalies        Section = "anomalies"
)

// Sections lists every section in the order of the golden record.
var Sections = []Section{SecIdentity, SecHukou, SecStatus, SecResidencePermits, SecMarital, SecEducation,
	SecEmployment, SecSocialInsurance, SecHousing, SecTax, SecAnomalies}

// NATS stream and subject layout.
const (
	StreamName     = "POP"
	StreamSubjects = "pop.>"
)

// ChangedSubject is pop.changed.<R>.<section>, R from the person's current
// hukou address (region.Unknown when there is none).
func ChangedSubject(addressCode string, s Section) string {
	return "pop.changed." + region.Tokens(addressCode) + "." + string(s)
}

// MigrationSubject is pop.migration.<R from>.<R to>.
func MigrationSubject(fromAddress, toAddress string) string {
	return "pop.migration." + region.Tokens(fromAddress) + "." + region.Tokens(toAddress)
}

// DeathSubject is pop.death.<R>.
func DeathSubject(addressCode string) string { return "pop.death." + region.Tokens(addressCode) }

// Subject filters for subscribers: code is a 2-, 4- or 6-digit region.
func ChangedFilter(code string) string { return "pop.changed." + region.Filter(code) + ".*" }

// MigrationOutFilter matches migrations out of a region.
func MigrationOutFilter(code string) string { return "pop.migration." + region.Filter(code) + ".*.*.*" }

// MigrationInFilter matches migrations into a region.
func MigrationInFilter(code string) string { return "pop.migration.*.*.*." + region.Filter(code) }

// DeathFilter matches deaths in a region.
func DeathFilter(code string) string { return "pop.death." + region.Filter(code) }

// Notification kinds beyond section changes.
const (
	KindMigration = "migration"
	KindDeath     = "death"
)

// Notification is the body of every message the hub publishes on NATS.
// ChangeID is also the Nats-Msg-Id header, so a re-publish is deduplicated.
// Section is the changed section, or "migration"/"death" for those subjects.
type Notification struct {
	ChangeID        string       `json:"change_id"`
	CitizenID       citizenid.ID `json:"citizen_id"`
	Version         int64        `json:"version"`
	Section         string       `json:"section"`
	EventID         string       `json:"event_id"`
	EventType       Type         `json:"event_type"`
	Source          Source       `json:"source"`
	Time            time.Time    `json:"time"`
	AppliedAt       time.Time    `json:"applied_at"`
	FromAddressCode string       `json:"from_address_code,omitempty"`
	ToAddressCode   string       `json:"to_address_code,omitempty"`
	Reason          string       `json:"reason,omitempty"`
	DateOfDeath     string       `json:"date_of_death,omitempty"`
}
