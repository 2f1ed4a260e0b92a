package merge

import (
	"slices"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// Timeline point kinds.
const (
	pointRegistered = "r"
	pointMigrated   = "m"
	pointCancelled  = "c"
	pointDied       = "d"
	pointPermit     = "p" // a residence permit issued: A is the city code, U its valid_until
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
	// Until is an issued permit's last valid day (valid_until).
	Until string `json:"u,omitempty"`
	// Reason is a cancellation's reason.
	Reason string `json:"r,omitempty"`
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
		p = point{At: at, Kind: pointCancelled, Reason: d.Reason}
	case *schemas.DeathCertifiedData:
		p = point{At: at, Kind: pointDied}
	case *schemas.ResidencePermitIssuedData:
		s.PermitLine = addPoint(s.PermitLine, point{At: at, Kind: pointPermit, Code: d.CityCode, Until: d.ValidUntil})
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
// permit, per city code: from an issue's day until the day after its
// valid_until, carried on by a renewal (a later issue in the city) made by
// then and resumed by one made later. A revocation ends the permit, and so
// do death, which is final as for the registration, and a cancellation of
// the hukou that permitEndingCancellations names. Days are China Standard
// Time dates of the events' effective times; steps on one day leave only
// that day's final state, as in Registrations.
func (s *State) PermitSpans() []hub.Interval {
	if len(s.PermitLine) == 0 {
		return nil
	}
	byCity := map[string][]step{}
	ends := map[string]string{} // of each permit held: the first day it no longer covers, "" for none
	end := func(city, d string) {
		byCity[city] = append(byCity[city], step{d, ""})
		delete(ends, city)
	}
	// expireBy ends the permits whose validity ran out by day d.
	expireBy := func(d string) {
		for city, e := range ends {
			if e != "" && e <= d {
				end(city, e)
			}
		}
	}
	dead := false
	hukou, permits := s.HukouLine, s.PermitLine
	for len(hukou) > 0 || len(permits) > 0 {
		if len(permits) == 0 || len(hukou) > 0 && permits[0].At.After(hukou[0].At) {
			p := hukou[0]
			hukou = hukou[1:]
			d := day(p.At.T)
			expireBy(d)
			if p.Kind == pointDied || p.Kind == pointCancelled && permitEndingCancellations[s.cancellationReason(p)] {
				for city := range ends {
					end(city, d)
				}
				dead = dead || p.Kind == pointDied
			}
			continue
		}
		p := permits[0]
		permits = permits[1:]
		d := day(p.At.T)
		expireBy(d)
		if p.Kind != pointPermit || dead {
			end(p.Code, d)
			continue
		}
		e := dayAfter(s.permitUntil(p))
		if e != "" && e <= d {
			end(p.Code, d) // issued already expired
			continue
		}
		byCity[p.Code] = append(byCity[p.Code], step{d, p.Code})
		ends[p.Code] = e
	}
	expireBy("9999-12-31") // the validity ends still ahead
	cities := make([]string, 0, len(byCity))
	for c := range byCity {
		cities = append(cities, c)
	}
	slices.Sort(cities)
	var out []hub.Interval
	for _, c := range cities {
		out = append(out, intervals(byCity[c])...)
	}
	return out
}

// permitEndingCancellations are the reasons for cancelling a hukou that
// also end the person's residence permits. A residence permit (居住证) is
// held by a citizen living away from their hukou place in China (seed 000
// clause 二(二), seed 003 clause 十五): it ends with death and with settling
// abroad. Enlistment does not end it: seeds 000, 001, 003 and 004 make
// military service a duty of permit holders, which seed 003 lets them do
// where they live. A duplicate
// hukou's cancellation leaves the person's other registration and their
// permits, and an unspecified ("other") reason is not taken to end them;
// such permits end when revoked or at their valid_until.
var permitEndingCancellations = map[string]bool{"death": true, "emigration": true}

// cancellationReason is the reason of cancellation point p. States stored
// before points carried it have it only in the lifecycle register, when p
// is the latest registration or cancellation.
func (s *State) cancellationReason(p point) string {
	if p.Reason != "" {
		return p.Reason
	}
	if v, ok := s.Lifecycle.get(); ok && s.Lifecycle.At.Src == p.At.Src && s.Lifecycle.At.ID == p.At.ID {
		return strings.TrimPrefix(v, "cancelled:")
	}
	return ""
}

// permitUntil is the valid_until of permit point p. States stored before
// points carried it have it only in the city's permit register, when p is
// the city's latest issue.
func (s *State) permitUntil(p point) string {
	if p.Until != "" {
		return p.Until
	}
	if r := s.Permits[p.Code]; r != nil && r.V != nil && r.At.Src == p.At.Src && r.At.ID == p.At.ID {
		return r.V.ValidUntil
	}
	return ""
}

// dayAfter returns the day after a YYYY-MM-DD date, "" for none.
func dayAfter(date string) string {
	t, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return ""
	}
	return t.AddDate(0, 0, 1).Format(time.DateOnly)
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
