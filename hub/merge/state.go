// Package merge holds the pure merge rules of the golden record: how one
// department event changes a person's state, which sections it changed and
// which notifications that raises. It does no I/O.
//
// The state of a person is a join-semilattice: every field is either a
// last-writer-wins register ordered by the event's effective time (ties
// broken by source, then event id), a grow-only set, a minimum, or a
// maximum per key (the latest divorce naming each spouse). Applying
// the same events in any order, any number of times, therefore gives the
// same state; a late event older than a section's current state lands in
// history without overriding it. The golden record is derived from the state.
package merge

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Stamp orders events: effective time first, then source and event id, so
// that two events with equal times still have one winner everywhere.
type Stamp struct {
	T   time.Time      `json:"t"`
	Src schemas.Source `json:"s"`
	ID  string         `json:"i"`
}

// IsZero reports whether the stamp is unset.
func (a Stamp) IsZero() bool { return a.T.IsZero() && a.ID == "" }

// After reports whether a wins over b: the later time, then the larger
// source, then an id of publisher.EventID's versioned form
// (schemas.VersionedEventID), then the larger id.
func (a Stamp) After(b Stamp) bool {
	if !a.T.Equal(b.T) {
		return a.T.After(b.T)
	}
	if a.Src != b.Src {
		return a.Src > b.Src
	}
	if va, vb := schemas.VersionedEventID(a.ID), schemas.VersionedEventID(b.ID); va != vb {
		return va
	}
	return a.ID > b.ID
}

// Reg is a last-writer-wins register. A nil V with a stamp is a tombstone.
type Reg[T any] struct {
	V  *T    `json:"v,omitempty"`
	At Stamp `json:"at,omitzero"`
}

// set stores v if at wins over the current stamp and reports whether it did.
func (r *Reg[T]) set(v *T, at Stamp) bool {
	if !r.At.IsZero() && !at.After(r.At) {
		return false
	}
	r.V, r.At = v, at
	return true
}

func (r Reg[T]) get() (T, bool) {
	if r.V == nil {
		var zero T
		return zero, false
	}
	return *r.V, true
}

func ptr[T any](v T) *T { return &v }

// location is the hukou address.
type location struct {
	Address string `json:"a"`
}

// lifecycle is "registered" or "cancelled:<reason>".
type lifecycle = string

type death struct {
	Date string `json:"d"`
}

type permit struct {
	Address    string `json:"a"`
	Basis      string `json:"b"`
	ValidUntil string `json:"u,omitempty"`
}

type marital struct {
	Status string       `json:"s"`
	Spouse citizenid.ID `json:"p,omitempty"`
}

type graduation struct {
	Level       string `json:"l"`
	Institution string `json:"n"`
	Date        string `json:"d"`
}

type enrolment struct {
	Institution string `json:"n"`
	Level       string `json:"l"`
	Region      string `json:"r"`
	Start       string `json:"s"`
}

type contract struct {
	Started Reg[schemas.ContractStartedData] `json:"s,omitzero"`
	Ended   Reg[string]                      `json:"e,omitzero"`
}

type insurance struct {
	Enrolled   Reg[string] `json:"e,omitzero"` // start date
	Terminated Reg[string] `json:"t,omitzero"` // end date
	Months     []string    `json:"m,omitempty"`
}

type property struct {
	Address string `json:"a"`
}

type rental struct {
	Started Reg[schemas.RentalRegisteredData] `json:"s,omitzero"`
	Ended   Reg[string]                       `json:"e,omitzero"`
}

type business struct {
	Region string `json:"r"`
}

// State is everything the hub knows of one person, in mergeable form.
// A State handed to or returned by this package is never modified
// afterwards; Batch works on clones.
type State struct {
	ID        citizenid.ID `json:"id"`
	Ver       int64        `json:"ver"`
	UpdatedAt time.Time    `json:"upd,omitzero"`
	// First is the earliest effective time of any applied event.
	First time.Time `json:"first,omitzero"`

	Name       Reg[string]             `json:"name,omitzero"`
	Gender     Reg[string]             `json:"gender,omitzero"`
	BirthDate  Reg[string]             `json:"birth,omitzero"`
	Ethnicity  Reg[string]             `json:"eth,omitzero"`
	Registered Stamp                   `json:"reg,omitzero"` // latest hukou.registered; zero if never
	Location   Reg[location]           `json:"loc,omitzero"`
	Household  Reg[string]             `json:"hh,omitzero"`
	Lifecycle  Reg[lifecycle]          `json:"life,omitzero"`
	Death      Reg[death]              `json:"death,omitzero"`
	Permits    map[string]*Reg[permit] `json:"permits,omitempty"`
	// Marital is the latest marriage. A state stored before Divorces
	// may hold a divorce here instead (maritalNow).
	Marital Reg[marital] `json:"mar,omitzero"`
	// Divorces holds, per spouse named, the latest divorce naming them (a
	// maximum per key): a divorce ends only the marriage to the spouse
	// it names, and which marriage is the latest may only be known later.
	Divorces map[citizenid.ID]Stamp `json:"div,omitempty"`
	// Graduation is where a state stored before Graduations kept its
	// highest graduation; Unmarshal moves it into Graduations.
	Graduation Reg[graduation] `json:"grad,omitzero"`
	// Graduations and Enrolments hold each department record's latest
	// version (keyed by recordKey), so that a correction replaces what it
	// corrects; the record shows the highest graduation, not the latest.
	Graduations map[string]*Reg[graduation] `json:"grads,omitempty"`
	Enrolments  map[string]*Reg[enrolment]  `json:"enr,omitempty"`
	Contracts   map[string]*contract        `json:"con,omitempty"`
	Scheme      Reg[string]                 `json:"scheme,omitzero"`
	SIRegion    Reg[string]                 `json:"sireg,omitzero"`
	Insurances  map[string]*insurance       `json:"ins,omitempty"`
	Owned       map[string]*Reg[property]   `json:"own,omitempty"`
	Rentals     map[string]*rental          `json:"rent,omitempty"`
	Businesses  map[string]*Reg[business]   `json:"biz,omitempty"`
	// HukouLine and PermitLine are the registration and residence-permit
	// timelines, for statistics as of any date (timeline.go).
	HukouLine  []point `json:"hkl,omitempty"`
	PermitLine []point `json:"pml,omitempty"`
	// BirthLine and GenderLine hold every birth date and gender written
	// once a second one is, each as a point whose Code is the value
	// (valueSince): id_mismatch counts from when the disagreeing value
	// was first recorded, which a register, keeping only the latest
	// write, cannot tell in every arrival order.
	BirthLine  []point `json:"bdl,omitempty"`
	GenderLine []point `json:"gdl,omitempty"`
	// Prov holds the stamps provenance needs beyond the registers': the
	// latest contribution's, under provPaid. States stored before
	// provenance was derived from what each section shows also hold, per
	// section, the latest event that named it; those are not read.
	Prov map[schemas.Section]Stamp `json:"prov,omitempty"`
}

// NewState returns the empty state of a person the hub has not seen.
func NewState(id citizenid.ID) *State { return &State{ID: id} }

// CitizenID is the person's ID.
func (s *State) CitizenID() citizenid.ID { return s.ID }

// Version counts applied events.
func (s *State) Version() int64 { return s.Ver }

// AddressCode is the current hukou address, or "".
func (s *State) AddressCode() string {
	if l, ok := s.Location.get(); ok {
		return l.Address
	}
	return ""
}

// Marshal encodes a state for storage.
func Marshal(s *State) ([]byte, error) {
	if b, ok := appendState(make([]byte, 0, 1024), s); ok {
		return b, nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding merge state: %w", err)
	}
	return b, nil
}

// Unmarshal decodes a state written by Marshal, by this release or an
// earlier one (see upgrade).
func Unmarshal(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding merge state: %w", err)
	}
	s.upgrade()
	return &s, nil
}

// upgrade brings a state stored by an earlier release to this one's
// shape: the one graduation it kept goes into Graduations, and
// enrolments keyed by institution and level whose event was a version of
// a department record are keyed by that record (recordKey), as the same
// events applied now would be. Of two enrolments that meet under one
// record, the later wins, as it would have.
func (s *State) upgrade() {
	if r := s.Graduation; r.V != nil {
		regMap(&s.Graduations, graduationKey(r.At, *r.V)).set(r.V, r.At)
		s.Graduation = Reg[graduation]{}
	}
	var moved []string
	for k, r := range s.Enrolments {
		// Every decoded state passes here: a cheap test, no new key.
		if r.V != nil && !strings.HasPrefix(k, recordKeyPrefix) && schemas.VersionedEventID(r.At.ID) {
			moved = append(moved, k)
		}
	}
	sort.Strings(moved)
	for _, k := range moved {
		r := s.Enrolments[k]
		delete(s.Enrolments, k)
		regMap(&s.Enrolments, enrolmentKey(r.At, *r.V)).set(r.V, r.At)
	}
}

func cloneMap[V any](m map[string]*V, clone func(*V) *V) map[string]*V {
	if m == nil {
		return nil
	}
	out := make(map[string]*V, len(m))
	for k, v := range m {
		out[k] = clone(v)
	}
	return out
}

func shallow[V any](v *V) *V { c := *v; return &c }

// Clone returns a deep copy. Register values are immutable once set, so
// their pointers are shared.
func (s *State) Clone() *State {
	c := *s
	c.Permits = cloneMap(s.Permits, shallow[Reg[permit]])
	c.Graduations = cloneMap(s.Graduations, shallow[Reg[graduation]])
	c.Enrolments = cloneMap(s.Enrolments, shallow[Reg[enrolment]])
	c.Contracts = cloneMap(s.Contracts, shallow[contract])
	c.Insurances = cloneMap(s.Insurances, func(v *insurance) *insurance {
		n := *v
		n.Months = append([]string(nil), v.Months...)
		return &n
	})
	c.HukouLine = slices.Clone(s.HukouLine)
	c.PermitLine = slices.Clone(s.PermitLine)
	c.BirthLine = slices.Clone(s.BirthLine)
	c.GenderLine = slices.Clone(s.GenderLine)
	c.Divorces = maps.Clone(s.Divorces)
	c.Owned = cloneMap(s.Owned, shallow[Reg[property]])
	c.Rentals = cloneMap(s.Rentals, shallow[rental])
	c.Businesses = cloneMap(s.Businesses, shallow[Reg[business]])
	if s.Prov != nil {
		c.Prov = make(map[schemas.Section]Stamp, len(s.Prov))
		for k, v := range s.Prov {
			c.Prov[k] = v
		}
	}
	return &c
}

// addMonth inserts m into the sorted set and reports whether it was new.
func addMonth(months []string, m string) ([]string, bool) {
	i := sort.SearchStrings(months, m)
	if i < len(months) && months[i] == m {
		return months, false
	}
	months = append(months, "")
	copy(months[i+1:], months[i:])
	months[i] = m
	return months, true
}
