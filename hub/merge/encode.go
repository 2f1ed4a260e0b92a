package merge

import (
	"slices"
	"strconv"
	"time"

	"github.com/pophub/pophub/schemas"
)

// appendState appends s as json.Marshal writes it, field for field and map
// keys sorted, and reports false (b unchanged in its length) for what it
// does not write itself: a time without an RFC 3339 form. Every stored
// batch encodes the states it touched, and encoding/json's reflection was
// the larger part of that (TestAppendStateMatchesEncodingJSON keeps the
// two equal).
func appendState(b []byte, s *State) ([]byte, bool) {
	e := stateEncoder{b: b, ok: true}
	e.raw(`{"id":`)
	e.str(string(s.ID))
	e.raw(`,"ver":`)
	e.b = strconv.AppendInt(e.b, s.Ver, 10)
	if !s.UpdatedAt.IsZero() {
		e.raw(`,"upd":`)
		e.time(s.UpdatedAt)
	}
	if !s.First.IsZero() {
		e.raw(`,"first":`)
		e.time(s.First)
	}
	appendReg(&e, "name", &s.Name, e.strPtr)
	appendReg(&e, "gender", &s.Gender, e.strPtr)
	appendReg(&e, "birth", &s.BirthDate, e.strPtr)
	appendReg(&e, "eth", &s.Ethnicity, e.strPtr)
	if !s.Registered.IsZero() {
		e.raw(`,"reg":`)
		e.stamp(s.Registered)
	}
	appendReg(&e, "loc", &s.Location, func(v *location) { e.obj("a", v.Address) })
	appendReg(&e, "hh", &s.Household, e.strPtr)
	appendReg(&e, "life", &s.Lifecycle, e.strPtr)
	appendReg(&e, "death", &s.Death, func(v *death) { e.obj("d", v.Date) })
	appendMap(&e, "permits", s.Permits, func(r *Reg[permit]) {
		regValue(&e, r, func(v *permit) {
			e.raw(`{"a":`)
			e.str(v.Address)
			e.raw(`,"b":`)
			e.str(v.Basis)
			e.optStr("u", v.ValidUntil)
			e.raw(`}`)
		})
	})
	appendReg(&e, "mar", &s.Marital, func(v *marital) {
		e.raw(`{"s":`)
		e.str(v.Status)
		e.optStr("p", string(v.Spouse))
		e.raw(`}`)
	})
	appendStamps(&e, "div", s.Divorces)
	grad := func(v *graduation) {
		e.raw(`{"l":`)
		e.str(v.Level)
		e.raw(`,"n":`)
		e.str(v.Institution)
		e.raw(`,"d":`)
		e.str(v.Date)
		e.raw(`}`)
	}
	appendReg(&e, "grad", &s.Graduation, grad)
	appendMap(&e, "grads", s.Graduations, func(r *Reg[graduation]) { regValue(&e, r, grad) })
	appendMap(&e, "enr", s.Enrolments, func(r *Reg[enrolment]) {
		regValue(&e, r, func(v *enrolment) {
			e.raw(`{"n":`)
			e.str(v.Institution)
			e.raw(`,"l":`)
			e.str(v.Level)
			e.raw(`,"r":`)
			e.str(v.Region)
			e.raw(`,"s":`)
			e.str(v.Start)
			e.raw(`}`)
		})
	})
	appendMap(&e, "con", s.Contracts, func(c *contract) {
		e.b = append(e.b, '{')
		appendReg(&e, "s", &c.Started, func(v *schemas.ContractStartedData) {
			e.raw(`{"contract_id":`)
			e.str(v.ContractID)
			e.raw(`,"employer_id":`)
			e.str(v.EmployerID)
			e.raw(`,"employer_name":`)
			e.str(v.EmployerName)
			e.raw(`,"work_region":`)
			e.str(v.WorkRegion)
			e.raw(`,"start":`)
			e.str(v.Start)
			e.optStr("end", v.End)
			e.raw(`}`)
		})
		appendReg(&e, "e", &c.Ended, e.strPtr)
		e.raw(`}`)
	})
	appendReg(&e, "scheme", &s.Scheme, e.strPtr)
	appendReg(&e, "sireg", &s.SIRegion, e.strPtr)
	appendMap(&e, "ins", s.Insurances, func(in *insurance) {
		e.b = append(e.b, '{')
		appendReg(&e, "e", &in.Enrolled, e.strPtr)
		appendReg(&e, "t", &in.Terminated, e.strPtr)
		if len(in.Months) > 0 {
			e.key("m")
			e.strs(in.Months)
		}
		e.raw(`}`)
	})
	appendMap(&e, "own", s.Owned, func(r *Reg[property]) {
		regValue(&e, r, func(v *property) { e.obj("a", v.Address) })
	})
	appendMap(&e, "rent", s.Rentals, func(r *rental) {
		e.b = append(e.b, '{')
		appendReg(&e, "s", &r.Started, func(v *schemas.RentalRegisteredData) {
			e.raw(`{"lease_id":`)
			e.str(v.LeaseID)
			e.raw(`,"address_code":`)
			e.str(v.AddressCode)
			e.raw(`,"start":`)
			e.str(v.Start)
			e.optStr("end", v.End)
			e.raw(`}`)
		})
		appendReg(&e, "e", &r.Ended, e.strPtr)
		e.raw(`}`)
	})
	appendMap(&e, "biz", s.Businesses, func(r *Reg[business]) {
		regValue(&e, r, func(v *business) { e.obj("r", v.Region) })
	})
	e.points("hkl", s.HukouLine)
	e.points("pml", s.PermitLine)
	e.points("bdl", s.BirthLine)
	e.points("gdl", s.GenderLine)
	appendStamps(&e, "prov", s.Prov)
	e.raw(`}`)
	if !e.ok {
		return b, false
	}
	return e.b, true
}

// stateEncoder appends JSON to b; ok turns false on a value it cannot
// write as encoding/json would.
type stateEncoder struct {
	b  []byte
	ok bool
}

func (e *stateEncoder) raw(s string) { e.b = append(e.b, s...) }

func (e *stateEncoder) str(s string) { e.b = schemas.AppendJSONString(e.b, s) }

func (e *stateEncoder) strPtr(s *string) { e.str(*s) }

// key writes ,"k": unless the object was just opened.
func (e *stateEncoder) key(k string) {
	if e.b[len(e.b)-1] != '{' {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

// optStr writes ,"k":"s" unless s is empty (omitempty), never first.
func (e *stateEncoder) optStr(k, s string) {
	if s == "" {
		return
	}
	e.b = append(e.b, ',', '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
	e.str(s)
}

// obj writes a one-member object {"k":"s"}.
func (e *stateEncoder) obj(k, s string) {
	e.b = append(e.b, '{', '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
	e.str(s)
	e.b = append(e.b, '}')
}

func (e *stateEncoder) strs(list []string) {
	e.b = append(e.b, '[')
	for i, s := range list {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.str(s)
	}
	e.b = append(e.b, ']')
}

// time writes t as time.Time.MarshalJSON does, when it can.
func (e *stateEncoder) time(t time.Time) {
	var ok bool
	if e.b, ok = schemas.AppendJSONTime(e.b, t); !ok {
		e.ok = false
	}
}

func (e *stateEncoder) stamp(s Stamp) {
	e.raw(`{"t":`)
	e.time(s.T)
	e.raw(`,"s":`)
	e.str(string(s.Src))
	e.raw(`,"i":`)
	e.str(s.ID)
	e.b = append(e.b, '}')
}

// appendReg writes ,"k":register unless the register is the zero value
// (omitzero: Reg has no IsZero method, so every field must be zero).
func appendReg[T any](e *stateEncoder, k string, r *Reg[T], val func(*T)) {
	if r.V == nil && r.At == (Stamp{}) {
		return
	}
	e.key(k)
	regValue(e, r, val)
}

// regValue writes a register: {"v":…,"at":…} with v omitted when nil and
// at when zero (Stamp.IsZero); null for a nil register.
func regValue[T any](e *stateEncoder, r *Reg[T], val func(*T)) {
	if r == nil {
		e.raw("null")
		return
	}
	e.b = append(e.b, '{')
	if r.V != nil {
		e.raw(`"v":`)
		val(r.V)
	}
	if !r.At.IsZero() {
		e.key("at")
		e.stamp(r.At)
	}
	e.b = append(e.b, '}')
}

// appendMap writes ,"k":{…} with the entries in key order, unless m is
// empty (omitempty); a nil entry is null.
func appendMap[V any](e *stateEncoder, k string, m map[string]*V, val func(*V)) {
	appendSorted(e, k, m, func(v *V) {
		if v == nil {
			e.raw("null")
			return
		}
		val(v)
	})
}

// appendStamps writes ,"k":{…} with the stamps in key order, unless m is
// empty (omitempty).
func appendStamps[K ~string](e *stateEncoder, k string, m map[K]Stamp) {
	appendSorted(e, k, m, e.stamp)
}

// appendSorted writes ,"k":{…} with the entries in key order, as
// encoding/json orders a map's keys, each value written by val, unless m
// is empty (omitempty).
func appendSorted[K ~string, V any](e *stateEncoder, k string, m map[K]V, val func(V)) {
	if len(m) == 0 {
		return
	}
	e.key(k)
	keys := make([]K, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	e.b = append(e.b, '{')
	for i, key := range keys {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.str(string(key))
		e.b = append(e.b, ':')
		val(m[key])
	}
	e.b = append(e.b, '}')
}

func (e *stateEncoder) points(k string, ps []point) {
	if len(ps) == 0 {
		return
	}
	e.key(k)
	e.b = append(e.b, '[')
	for i := range ps {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.raw(`{"at":`)
		e.stamp(ps[i].At)
		e.raw(`,"k":`)
		e.str(ps[i].Kind)
		e.optStr("a", ps[i].Code)
		e.optStr("u", ps[i].Until)
		e.optStr("ad", ps[i].Addr)
		e.optStr("r", ps[i].Reason)
		e.optStr("d", ps[i].Died)
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, ']')
}
