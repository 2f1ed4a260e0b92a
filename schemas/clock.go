package schemas

import (
	"sync"
	"time"
	// The tz database's Asia/Shanghai, for Clock, on machines without
	// one (minimal containers, Windows).
	_ "time/tzdata"
)

// shanghai is the tz database's China time: +09:00 in the summers of
// 1986–1991, +08:05:43 (local mean time) before 1901. CST when the zone
// cannot be loaded, which the embedded database rules out.
var shanghai = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return cst
	}
	return loc
})

// Clock gives the wall clock in loc at the instant t, to take the
// calendar date of a time that names its instant (written with an
// offset, or a timestamptz). For China's time (CST, as Zone gives it) it
// follows the tz database's Asia/Shanghai, as the clocks did: a server on
// China's time keeps a date given as a timestamptz at its local
// midnight, which was +09:00 in the summers of 1986–1991, and there a
// fixed +08:00 would give the day before. Wall times written without an
// offset keep the date they show; Zone reads those.
func Clock(t time.Time, loc *time.Location) time.Time {
	if loc == cst {
		return t.In(shanghai())
	}
	return t.In(loc)
}

// wireTime is t as RFC 3339 can write it: an offset with seconds (local
// mean time, as the tz database gives dates before standard time) or of
// a day or more has no RFC 3339 form, so such a time is written as the
// same instant in CST rather than as another instant.
func wireTime(t time.Time) time.Time {
	if _, off := t.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return t.In(cst)
	}
	return t
}
