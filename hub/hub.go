// Package hub is the domain of the population hub: the golden record every
// person has, the history of changes applied to it, the notifications those
// changes raise, and the Store port that keeps all three consistent.
//
// The merge rules live in hub/merge (pure); stores (hub/postgres, hub/memdb)
// own transactions; hub/ingest feeds them from Kafka and hub/notify relays
// their outbox to NATS JetStream.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Error kinds. Callers test with errors.Is; the HTTP API maps them to status
// codes in one table.
var (
	ErrNotFound    = errors.New("not found")
	ErrInvalid     = errors.New("invalid request")
	ErrConflict    = errors.New("concurrent update")
	ErrUnavailable = errors.New("unavailable")
)

// Record is the golden record of one person, exactly as GET
// /v1/persons/{id} answers it. A section is nil when nothing is known of it.
// Records are values: a store never hands out one it will modify later.
type Record struct {
	CitizenID        citizenid.ID          `json:"citizen_id"`
	Version          int64                 `json:"version"`
	UpdatedAt        time.Time             `json:"updated_at"`
	Status           string                `json:"status,omitempty"`
	Identity         *Identity             `json:"identity,omitempty"`
	Hukou            *Hukou                `json:"hukou,omitempty"`
	ResidencePermits []ResidencePermit     `json:"residence_permits,omitempty"`
	Marital          *Marital              `json:"marital,omitempty"`
	Education        *Education            `json:"education,omitempty"`
	Employment       []Contract            `json:"employment,omitempty"`
	SocialInsurance  *SocialInsurance      `json:"social_insurance,omitempty"`
	Housing          *Housing              `json:"housing,omitempty"`
	Tax              *Tax                  `json:"tax,omitempty"`
	Anomalies        []Anomaly             `json:"anomalies,omitempty"`
	Provenance       map[string]Provenance `json:"provenance,omitempty"`
}

// Person status values.
const (
	StatusActive    = "active"
	StatusDeceased  = "deceased"
	StatusCancelled = "cancelled"
)

// Identity comes from public_security (registration and corrections).
type Identity struct {
	Name      string `json:"name,omitempty"`
	Gender    string `json:"gender,omitempty"`
	BirthDate string `json:"birth_date,omitempty"`
	Ethnicity string `json:"ethnicity,omitempty"`
}

// Hukou is the current place of registration.
type Hukou struct {
	AddressCode string `json:"address_code"`
	RegionCode  string `json:"region_code"`
	Since       string `json:"since"`
	HouseholdID string `json:"household_id,omitempty"`
	// UrbanRural is "urban" or "rural" by the region table's class of the
	// address; ClassCode is the NBS urban-rural classification code when
	// an official table gives it (empty while the class is derived).
	UrbanRural string `json:"urban_rural,omitempty"`
	ClassCode  string `json:"class_code,omitempty"`
}

// ResidencePermit is a current residence permit (居住证) in one city.
type ResidencePermit struct {
	CityCode    string `json:"city_code"`
	AddressCode string `json:"address_code"`
	Basis       string `json:"basis"`
	Since       string `json:"since"`
	ValidUntil  string `json:"valid_until,omitempty"`
}

// Marital is the marital status with GB/T 2261.2 codes.
type Marital struct {
	Status   string       `json:"status"`
	SpouseID citizenid.ID `json:"spouse_id,omitempty"`
	Since    string       `json:"since"`
}

// Education is the highest level reached, and the enrolments known (for
// residence-permit "continuous study").
type Education struct {
	HighestLevel string      `json:"highest_level,omitempty"`
	Institution  string      `json:"institution,omitempty"`
	GraduatedOn  string      `json:"graduated_on,omitempty"`
	Enrolments   []Enrolment `json:"enrolments,omitempty"`
}

// Enrolment is a study enrolment.
type Enrolment struct {
	Institution string `json:"institution"`
	Level       string `json:"level"`
	Region      string `json:"region"`
	Start       string `json:"start"`
}

// Contract is a labour contract; End is empty while it runs.
type Contract struct {
	ContractID   string `json:"contract_id"`
	EmployerID   string `json:"employer_id"`
	EmployerName string `json:"employer_name"`
	WorkRegion   string `json:"work_region"`
	Start        string `json:"start"`
	End          string `json:"end,omitempty"`
}

// SocialInsurance is the person's social insurance.
type SocialInsurance struct {
	Scheme     string                   `json:"scheme,omitempty"`
	Region     string                   `json:"region,omitempty"`
	Insurances map[string]InsuranceLine `json:"insurances,omitempty"`
}

// InsuranceLine is one insurance: Months counts distinct contribution months;
// Until is set when the insurance was terminated after its last enrolment.
type InsuranceLine struct {
	Since     string `json:"since,omitempty"`
	Months    int    `json:"months"`
	LastMonth string `json:"last_month,omitempty"`
	Until     string `json:"until,omitempty"`
}

// Housing lists owned properties and rentals.
type Housing struct {
	Owned   []Property `json:"owned,omitempty"`
	Rentals []Rental   `json:"rentals,omitempty"`
}

// Property is a property the person owns.
type Property struct {
	PropertyID  string `json:"property_id"`
	AddressCode string `json:"address_code"`
	Since       string `json:"since"`
}

// Rental is a lease; End is empty while it runs.
type Rental struct {
	LeaseID     string `json:"lease_id"`
	AddressCode string `json:"address_code"`
	Start       string `json:"start"`
	End         string `json:"end,omitempty"`
}

// Tax lists registered businesses.
type Tax struct {
	Businesses []Business `json:"businesses,omitempty"`
}

// Business is a registered business.
type Business struct {
	BusinessID string `json:"business_id"`
	Region     string `json:"region"`
	Since      string `json:"since"`
}

// Anomaly kinds.
const (
	AnomalyDeathNotCancelled = "death_not_cancelled"
	AnomalyUnregistered      = "unregistered"
	AnomalyIDMismatch        = "id_mismatch"
)

// Anomaly is a condition that needs a department's attention.
type Anomaly struct {
	Kind  string `json:"kind"`
	Since string `json:"since"`
}

// Provenance names the event a section's current state comes from.
type Provenance struct {
	Source  schemas.Source `json:"source"`
	EventID string         `json:"event_id"`
	Time    time.Time      `json:"time"`
}

// Change is one applied event in a person's history.
type Change struct {
	Version   int64           `json:"version"`
	EventID   string          `json:"event_id"`
	Source    schemas.Source  `json:"source"`
	Type      schemas.Type    `json:"type"`
	Time      time.Time       `json:"time"`
	AppliedAt time.Time       `json:"applied_at"`
	Sections  []string        `json:"sections"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// Input is one validated event on its way into a store, with the W3C trace
// context it arrived with (copied onto the notifications it raises).
type Input struct {
	Event schemas.Event
	Trace map[string]string
	// Raw is the record value the event was decoded from, when known;
	// stores that log events keep it instead of encoding them again.
	Raw []byte
}

// ApplyResult counts what a batch did. Applied + Duplicates = len(batch).
type ApplyResult struct {
	Applied       int
	Duplicates    int
	Notifications int
	// DuplicateAt lists the indexes in the batch of the Duplicates inputs,
	// in increasing order; nil when there are none. A batch mixes sources,
	// and a caller counting per source must know whose events were
	// repeats.
	DuplicateAt []int
}

// DuplicateIndexes returns, for a batch with n duplicates, the indexes of
// the inputs Store.Apply counts as such (ApplyResult.DuplicateAt): those
// whose (source, id) appliedBefore reports as applied in an earlier batch,
// and those repeating an input earlier in the batch. Stores call it only
// when n > 0, so that a batch of new events pays nothing for it.
func DuplicateIndexes(batch []Input, n int, appliedBefore func(schemas.EventKey) bool) []int {
	if n == 0 {
		return nil
	}
	at := make([]int, 0, n)
	seen := make(map[schemas.EventKey]struct{}, len(batch))
	for i := range batch {
		k := batch[i].Event.Key()
		if _, again := seen[k]; again || appliedBefore(k) {
			at = append(at, i)
		}
		seen[k] = struct{}{}
	}
	return at
}

// StreamMark is what the outbox relay last knew the notification stream
// to hold, kept in the store so that a relay starting, or taking the lease
// over, can tell what the stream lost while no relay watched it (NATS
// restarted on a store restored from an older copy, or on an empty one).
// Created is the stream's creation time by the server (zero when not
// known); First and Last the lowest and highest sequence known held;
// LastAt when the message at Last was stored, for telling a loss from
// the stream's age limit.
type StreamMark struct {
	Created time.Time `json:"created"`
	First   uint64    `json:"first"`
	Last    uint64    `json:"last"`
	LastAt  time.Time `json:"last_at"`
}

// OutboxEntry is a notification committed with its change and waiting for
// the relay. Seq orders entries; MsgID is the notification's change id.
type OutboxEntry struct {
	Seq       int64
	Subject   string
	MsgID     string
	Body      []byte
	Trace     map[string]string
	CreatedAt time.Time
}

// Store keeps golden records, their history and the notification outbox.
//
// Implementations are safe for concurrent use, and several hub processes may
// share one (PostgreSQL): no update is lost when two of them touch the same
// person at once.
type Store interface {
	// Apply merges a batch of validated events atomically: the records,
	// history rows and outbox entries of the whole batch commit together or
	// not at all. An event whose (source, id) was applied before, in an earlier
	// batch or earlier in this one, changes nothing and counts as a duplicate.
	// The order of events in the batch does not affect the resulting records.
	// When ctx carries a turn (WithTurn), Apply waits for it (AwaitTurn)
	// before taking its locks and passes it on (PassTurn) once it holds
	// them, and when it returns with the batch applied (or nothing to
	// apply). An Apply that fails before it holds them keeps the turn, so
	// that the caller's retry, with the same turn, still comes before the
	// next batch: the caller passes it when it gives up.
	Apply(ctx context.Context, batch []Input) (ApplyResult, error)

	// Person returns a copy of the golden record, or ErrNotFound.
	Person(ctx context.Context, id citizenid.ID) (Record, error)

	// History returns every applied change of a person in version order, or
	// ErrNotFound.
	History(ctx context.Context, id citizenid.ID) ([]Change, error)

	// Persons walks the golden records whose hukou address lies in a
	// region, a page at a time: it returns up to q.Limit records after
	// q.After and the cursor of the next page ("" after the last page).
	// A walk is not a snapshot: a record changed during the walk is
	// returned as it is when its page is read, and one whose address
	// moved may be missed or returned twice; subscribers bootstrap by
	// pairing a walk with the notifications published after it started
	// (see the subscriber SDK).
	Persons(ctx context.Context, q PersonQuery) (records []Record, next string, err error)

	// Counts returns, for each region of q, the registered population
	// (urban and rural) and the residence-permit holders at the end of
	// q.AsOf, from counters kept with the golden records (hub/stats).
	// Regions without any count are returned with zeros. All regions of
	// one call are read from one snapshot of the counters: a batch's
	// changes are in all of them or in none.
	Counts(ctx context.Context, q CountQuery) (map[string]Tally, error)

	// PendingOutbox returns up to limit outbox entries JetStream has not
	// acknowledged yet with Seq > after, in Seq order.
	PendingOutbox(ctx context.Context, after int64, limit int) ([]OutboxEntry, error)

	// CountPendingOutbox counts the entries PendingOutbox would return
	// from after = 0 (what Stats reports as OutboxPending), cheaply
	// enough to be asked at every metrics scrape.
	CountPendingOutbox(ctx context.Context) (int64, error)

	// MarkPublished records that the entries with these sequence numbers were
	// acknowledged by JetStream, and when (by the store's clock):
	// PendingOutbox no longer returns them; PublishedOutbox does until
	// DeletePublished removes them, also across a restart, since a NATS
	// server that stops hard may lose what it acknowledged last. Marking
	// twice is harmless.
	MarkPublished(ctx context.Context, seqs []int64) error

	// PublishedOutbox returns up to limit entries marked published and
	// not deleted yet with Seq > after, in Seq order.
	PublishedOutbox(ctx context.Context, after int64, limit int) ([]OutboxEntry, error)

	// DeletePublished deletes the published entries acknowledged at least
	// olderThan ago by the store's clock (zero: all of them). A store may
	// keep an entry longer: PostgreSQL keeps a batch's entries until the
	// last of them was acknowledged that long ago.
	DeletePublished(ctx context.Context, olderThan time.Duration) error

	// Stats reports exact totals, for reconciliation and tools. On
	// PostgreSQL it counts every row, which takes minutes at a province's
	// scale: the status page reads hub/postgres's StatusTotals
	// (api.EstimatingStore) instead.
	Stats(ctx context.Context) (StoreStats, error)

	// KnownEvents reports, for each key in order, whether the event with
	// that (source, id) was applied: whether the store holds its
	// idempotency key. It sees committed batches only, so a key a
	// concurrent Apply is committing may read either way. More than
	// MaxKnownEvents keys wrap ErrInvalid; no keys answer an empty slice.
	// Reconciliation (hub/reconcile) uses it to prove that every record
	// below the consumer group's committed offsets reached the store.
	KnownEvents(ctx context.Context, keys []schemas.EventKey) ([]bool, error)

	// Ping checks the store is reachable.
	Ping(ctx context.Context) error

	// Close releases resources; calling it twice is safe.
	Close() error
}

// Interval is a span of days [From, To) in which a person counts at Code:
// a 12-digit hukou address for the registered population, a city code for
// residence permits. Dates are YYYY-MM-DD in China Standard Time; To is ""
// while the span lasts.
type Interval struct {
	Code string `json:"code"`
	From string `json:"from"`
	To   string `json:"to,omitempty"`
}

// CountQuery asks for counts as of the end of a day.
type CountQuery struct {
	// Regions are division codes of 2, 4, 6, 9 or 12 digits.
	Regions []string
	// AsOf is a date, YYYY-MM-DD (China Standard Time).
	AsOf string
}

// Tally is one region's counts on a day.
type Tally struct {
	Urban, Rural int64 // registered population by the class of the address
	Permits      int64 // residence-permit holders (regions of 2, 4 or 6 digits)
}

// PersonQuery selects a page of golden records.
type PersonQuery struct {
	// Region is a statistical division code or prefix of one (2 to 12
	// digits) that the hukou address must start with; empty selects every
	// person, those without a hukou registration included.
	Region string
	// After is the cursor a previous page returned; empty starts a walk.
	// Cursors are opaque and belong to the store that made them; the
	// cursor of a walk without Region holds no hukou address, since its
	// caller may not be allowed to read one.
	After string
	// Limit bounds the page (1 to MaxPersonsPage).
	Limit int
	// KeyOrder walks Region in person-key order, the region only a
	// filter, so that the cursor is the last person key and holds no
	// hukou address: the walk of a caller who may not read hukou
	// addresses (hub/api sets it for a county walk of a subscriber
	// without the hukou grant). Without it a store may walk a region in
	// address order, with the address in its cursor. A walk without
	// Region is in key order either way. A store may refuse (ErrInvalid)
	// a cursor of a walk in the other order; one whose cursors are keys
	// in both orders (memdb) takes it.
	KeyOrder bool
	// Household, with Region a whole 12-digit address code, selects the
	// members of one household (Hukou.HouseholdID) registered at that
	// address, in person-key order (the cursor is the last key), read
	// through an index of households: a lookup costs the household's size,
	// not the address's, which for a large community or a collective
	// hukou holds tens of thousands. Empty walks the region.
	Household string
}

// MaxHouseholdID bounds PersonQuery.Household, in characters, as the
// registration event bounds household_id.
const MaxHouseholdID = 64

// MaxKnownEvents bounds the keys of one Store.KnownEvents call.
const MaxKnownEvents = 10000

// CheckKnownEvents reports a KnownEvents request too large to answer,
// wrapping ErrInvalid.
func CheckKnownEvents(keys []schemas.EventKey) error {
	if len(keys) > MaxKnownEvents {
		return fmt.Errorf("%d event keys, at most %d per call: %w", len(keys), MaxKnownEvents, ErrInvalid)
	}
	return nil
}

// MaxPersonsPage bounds PersonQuery.Limit.
const MaxPersonsPage = 1000

// Validate reports what is wrong with the query, wrapping ErrInvalid.
func (q PersonQuery) Validate() error {
	if q.Limit < 1 || q.Limit > MaxPersonsPage {
		return fmt.Errorf("limit %d is not between 1 and %d: %w", q.Limit, MaxPersonsPage, ErrInvalid)
	}
	if len(q.Region) > 12 {
		return fmt.Errorf("region has %d digits, at most 12: %w", len(q.Region), ErrInvalid)
	}
	for _, c := range []byte(q.Region) {
		if c < '0' || c > '9' {
			return fmt.Errorf("region %q is not a division code: %w", q.Region, ErrInvalid)
		}
	}
	if q.Household != "" && len(q.Region) != 12 {
		return fmt.Errorf("a household is looked up at a 12-digit address, not region %q: %w", q.Region, ErrInvalid)
	}
	if n := utf8.RuneCountInString(q.Household); n > MaxHouseholdID || !utf8.ValidString(q.Household) {
		return fmt.Errorf("household id of %d characters, at most %d of valid UTF-8: %w", n, MaxHouseholdID, ErrInvalid)
	}
	return nil
}

// StoreStats are store totals.
type StoreStats struct {
	Persons       int64 `json:"persons"`
	Changes       int64 `json:"changes"`
	OutboxPending int64 `json:"outbox_pending"`
}

// A turn orders concurrent Apply calls. The records merge the same in any
// order, but history sections and notifications depend on which event a
// store saw first, so the records of one Kafka partition must take effect
// in offset order; a caller that applies several batches at once (hub/ingest)
// hands each a turn that the previous batch passes on. A store waits for
// its turn before taking its locks and passes it once it holds them, so
// that everything before the locks (decoding, DLQ writes, connecting)
// still overlaps, and a later batch queues behind the earlier one on the
// locks it shares with it.
type turn struct {
	prev <-chan struct{}
	pass func()
	once sync.Once
}

type turnKey struct{}

// WithTurn returns a context whose Apply waits until prev is closed (nil:
// at once, the first batch in line) and calls pass when it hands on the
// turn. pass is called at most once.
func WithTurn(ctx context.Context, prev <-chan struct{}, pass func()) context.Context {
	return context.WithValue(ctx, turnKey{}, &turn{prev: prev, pass: pass})
}

// AwaitTurn blocks until the turn ctx carries is handed on by the batch
// before, or ctx is done (returning its error). It returns nil at once when
// ctx carries no turn, and on every call after the turn came.
func AwaitTurn(ctx context.Context) error {
	t, _ := ctx.Value(turnKey{}).(*turn)
	if t == nil || t.prev == nil {
		return nil
	}
	select {
	case <-t.prev:
		return nil
	default:
	}
	select {
	case <-t.prev:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("awaiting turn: %w", ctx.Err())
	}
}

// PassTurn hands the turn ctx carries to the next batch. It is idempotent,
// and does nothing when ctx carries no turn, so a store may call it once
// it holds its locks and again when it returns, and the caller once more
// when it is done with the batch.
func PassTurn(ctx context.Context) {
	t, _ := ctx.Value(turnKey{}).(*turn)
	if t == nil || t.pass == nil {
		return
	}
	t.once.Do(t.pass)
}
