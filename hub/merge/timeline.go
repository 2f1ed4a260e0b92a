package merge

import (
	"slices"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// Timeline point kinds.
const (
	pointRegistered = "r"
	pointMigrated   = "m"
	pointCancelled  = "c"
	pointDied       = "d"
	pointPermit     = "p" // a residence permit issued: A is the city code
	pointRevoked    = "x" // a residence permit revoked: A is the city code
)

// point is one event of a person's registration or permit timeline. The
// timelines are grow-only sets ordered by stamp: unlike the registers,
// which keep only the latest value, statistics as of a past date need
// every step, and a late event must slot in where it belongs.
type point struct {
	At   Stamp  `json:"at"`
	Kind string `json:"k"`
	Code string `json:"a,omitempty"`
}

// addPoint inserts p in stamp order unless a point with its stamp is there.
func addPoint(ps []point, p point) []point {
	i, found := slices.BinarySearchFunc(ps, p.At, func(q point, at Stamp) int {
		switch {
		case q.At == at:
			return 0
		case at.After(q.At):
			return -1
		}
		return 1
	})
	if found {
		return ps
	}
	return slices.Insert(ps, i, p)
}

// track records the timeline step an event makes, if any.
func (s *State) track(ev *schemas.Event, at Stamp) {
	var p point
	switch d := ev.Payload.(type) {
	case *schemas.HukouRegisteredData:
		p = point{At: at, Kind: pointRegistered, Code: d.AddressCode}
	case *schemas.HukouMigratedData:
		p = point{At: at, Kind: pointMigrated, Code: d.ToAddressCode}
	case *schemas.HukouCancelledData:
		p = point{At: at, Kind: pointCancelled}
	case *schemas.DeathCertifiedData:
		p = point{At: at, Kind: pointDied}
	case *schemas.ResidencePermitIssuedData:
		s.PermitLine = addPoint(s.PermitLine, point{At: at, Kind: pointPermit, Code: d.CityCode})
		return
	case *schemas.ResidencePermitRevokedData:
		s.PermitLine = addPoint(s.PermitLine, point{At: at, Kind: pointRevoked, Code: d.CityCode})
		return
	default:
		return
	}
	s.HukouLine = addPoint(s.HukouLine, p)
}

// Registrations returns the spans of days in which the person counts in
// the registered population, each at its 12-digit hukou address: from a
// registration, moving on a migration's effective date, ending on death or
// cancellation; a registration after a cancellation restores the count.
// Days are China Standard Time dates of the events' effective times; a
// span's To is "" while it lasts. Steps on one day leave only that day's
// final state. Death is final.
func (s *State) Registrations() []hub.Interval {
	var steps []step
	addr, registered, cancelled, dead := "", false, false, false
	for _, p := range s.HukouLine {
		switch p.Kind {
		case pointRegistered:
			addr, registered, cancelled = p.Code, true, false
		case pointMigrated:
			addr = p.Code
		case pointCancelled:
			cancelled = true
		case pointDied:
			dead = true
		}
		code := ""
		if registered && !cancelled && !dead {
			code = addr
		}
		steps = append(steps, step{day(p.At.T), code})
	}
	return intervals(steps)
}

// PermitSpans returns the spans of days in which the person holds a residence
// permit, per city code. A permit's validity end is not applied here: an
// expired permit counts until it is revoked or renewed, as the issuing
// city's register keeps it.
func (s *State) PermitSpans() []hub.Interval {
	byCity := map[string][]step{}
	var cities []string
	for _, p := range s.PermitLine {
		if _, ok := byCity[p.Code]; !ok {
			cities = append(cities, p.Code)
		}
		code := ""
		if p.Kind == pointPermit {
			code = p.Code
		}
		byCity[p.Code] = append(byCity[p.Code], step{day(p.At.T), code})
	}
	slices.Sort(cities)
	var out []hub.Interval
	for _, c := range cities {
		out = append(out, intervals(byCity[c])...)
	}
	return out
}

// step says where the person counts ("" nowhere) from a day on.
type step struct{ day, code string }

// intervals turns steps in stamp order into spans. Stamps order by time,
// so days never decrease; steps of one day collapse into the last.
func intervals(steps []step) []hub.Interval {
	var out []hub.Interval
	cur, from := "", ""
	for i, st := range steps {
		if i+1 < len(steps) && steps[i+1].day == st.day {
			continue // the day's final step decides
		}
		if st.code == cur {
			continue
		}
		if cur != "" && from < st.day {
			out = append(out, hub.Interval{Code: cur, From: from, To: st.day})
		}
		cur, from = st.code, st.day
	}
	if cur != "" {
		out = append(out, hub.Interval{Code: cur, From: from})
	}
	return out
}

// TimelineLen counts the registration and permit timeline steps.
func (s *State) TimelineLen() (registrations, permits int) {
	return len(s.HukouLine), len(s.PermitLine)
}
