package schemas

import (
	"strconv"
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
	// NATSAccount is the account holding the hub's streams on a server
	// run with an access policy (hub/access Policy.NATSConfig); each
	// other identity has an account of its own importing from it.
	NATSAccount = "POPHUB"
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

// ChangedSectionFilter matches the changes of one section in a region:
// ChangedSectionFilter("2301", SecStatus) = pop.changed.23.2301.*.status.
// The hub's access policy grants changed subjects per section, so an
// identity that may read only some sections subscribes to each of those
// rather than to ChangedFilter, which needs them all.
func ChangedSectionFilter(code string, s Section) string {
	return "pop.changed." + region.Filter(code) + "." + string(s)
}

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
// Time is when the change took effect, the time of the event behind it; on
// a death notification, of the event its date_of_death comes from.
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

// AppendJSON appends the notification's JSON encoding to b. It writes the
// same document as encoding/json, several times faster: the hub encodes
// one per changed section on its write path.
func (n *Notification) AppendJSON(b []byte) []byte {
	var t, a [40]byte
	return n.AppendJSONTimes(b, n.Time.AppendFormat(t[:0], time.RFC3339Nano), n.AppliedAt.AppendFormat(a[:0], time.RFC3339Nano))
}

// AppendJSONTimes is AppendJSON with Time and AppliedAt already formatted
// as RFC 3339 with nanoseconds, for writers that share them between
// notifications.
func (n *Notification) AppendJSONTimes(b []byte, timeText, appliedText []byte) []byte {
	b = append(b, `{"change_id":`...)
	b = appendQuoted(b, n.ChangeID)
	b = append(b, `,"citizen_id":`...)
	b = appendQuoted(b, string(n.CitizenID))
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, n.Version, 10)
	b = append(b, `,"section":`...)
	b = appendQuoted(b, n.Section)
	b = append(b, `,"event_id":`...)
	b = appendQuoted(b, n.EventID)
	b = append(b, `,"event_type":`...)
	b = appendQuoted(b, string(n.EventType))
	b = append(b, `,"source":`...)
	b = appendQuoted(b, string(n.Source))
	b = append(b, `,"time":"`...)
	b = append(b, timeText...)
	b = append(b, `","applied_at":"`...)
	b = append(b, appliedText...)
	b = append(b, '"')
	if n.FromAddressCode != "" {
		b = append(b, `,"from_address_code":`...)
		b = appendQuoted(b, n.FromAddressCode)
	}
	if n.ToAddressCode != "" {
		b = append(b, `,"to_address_code":`...)
		b = appendQuoted(b, n.ToAddressCode)
	}
	if n.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendQuoted(b, n.Reason)
	}
	if n.DateOfDeath != "" {
		b = append(b, `,"date_of_death":`...)
		b = appendQuoted(b, n.DateOfDeath)
	}
	return append(b, '}')
}
