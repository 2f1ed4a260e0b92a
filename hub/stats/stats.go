// Package stats keeps the registered-population counts as of any date as
// counters, pure: it turns the change in a person's registration spans
// into counter deltas, and a date into the counter buckets that sum to the
// count on that date. The stores keep the counters in the transaction that
// writes the golden record, so a count is read, never recomputed by a
// scan.
//
// A person counts on day D at address A when one of their spans holds D
// at A. A span [From, To) adds one at From and takes one away at To, so
// the count on D is the sum of the deltas of every day up to D. Summing
// decades of daily deltas would be slow; each delta is therefore kept in
// three buckets, its year, its month and its day, and the count on D is
// the sum of the year buckets before D's year, the month buckets of D's
// year before D's month, and the day buckets of D's month up to D: at most
// about 150 counters per region and class, whatever the history. Each
// bucket is kept at every level of the address (2, 4, 6, 9 and 12
// digits), so that a region and its children are read directly.
package stats

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas/region"
)

// Levels are the lengths of the division codes counted: province, city,
// county, township, village or residents' committee.
var Levels = []int{2, 4, 6, 9, 12}

// Class is the urban/rural class of a counter.
type Class byte

// Classes. Permit counters have no class.
const (
	Urban  Class = 'u'
	Rural  Class = 'r'
	Permit Class = 'p'
)

// Key names one counter.
type Key struct {
	Region string // a division-code prefix of one of Levels' lengths
	Class  Class
	Bucket string // "Y2026", "M202603" or "D20260305"
}

// Delta is a change of one counter.
type Delta struct {
	Key
	N int64
}

// Classify tells whether a 12-digit address is urban.
type Classify func(address string) (urban bool)

// dayDelta is the net change at one code on one day.
type dayDelta struct{ code, day string }

// Diff returns the net change, per code and day, from the spans before to
// the spans after, for every code of one kind (addresses or cities).
func diff(before, after []hub.Interval) map[dayDelta]int64 {
	d := map[dayDelta]int64{}
	add := func(iv hub.Interval, n int64) {
		d[dayDelta{iv.Code, iv.From}] += n
		if iv.To != "" {
			d[dayDelta{iv.Code, iv.To}] -= n
		}
	}
	for _, iv := range before {
		add(iv, -1)
	}
	for _, iv := range after {
		add(iv, 1)
	}
	for k, n := range d {
		if n == 0 {
			delete(d, k)
		}
	}
	return d
}

// Acc accumulates counter deltas, for one batch.
type Acc map[Key]int64

// Registrations adds the counter deltas of a person whose registration
// spans went from before to after.
func (a Acc) Registrations(before, after []hub.Interval, urban Classify) {
	for k, n := range diff(before, after) {
		c := Rural
		if urban(k.code) {
			c = Urban
		}
		b := bucketsOf(k.day)
		for _, l := range Levels {
			if l <= len(k.code) {
				a.addBuckets(k.code[:l], c, b, n)
			}
		}
	}
}

// Permits adds the counter deltas of a person whose residence-permit
// spans went from before to after. A span's code is its city written in
// six digits (230100, whichever of the city's codes the permit carried:
// see merge.State.PermitSpans), so a holder is counted at the city (2301
// and 230100) and its province, and never at a county.
func (a Acc) Permits(before, after []hub.Interval) {
	for k, n := range diff(before, after) {
		b := bucketsOf(k.day)
		for _, l := range []int{2, 4, 6} {
			if l <= len(k.code) {
				a.addBuckets(k.code[:l], Permit, b, n)
			}
		}
	}
}

// bucketsOf names the year, month and day buckets of a YYYY-MM-DD day,
// once for all the regions it is counted in.
func bucketsOf(day string) [3]string {
	y, m, d := day[0:4], day[5:7], day[8:10]
	return [3]string{"Y" + y, "M" + y + m, "D" + y + m + d}
}

func (a Acc) addBuckets(region string, c Class, b [3]string, n int64) {
	for _, bucket := range b {
		a[Key{region, c, bucket}] += n
	}
}

// Deltas lists the nonzero deltas in key order, the order in which a
// store should lock counter rows so that concurrent batches cannot
// deadlock.
func (a Acc) Deltas() []Delta {
	out := make([]Delta, 0, len(a))
	for k, n := range a {
		if n != 0 {
			out = append(out, Delta{k, n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i].Key, out[j].Key
		if x.Region != y.Region {
			return x.Region < y.Region
		}
		if x.Class != y.Class {
			return x.Class < y.Class
		}
		return x.Bucket < y.Bucket
	})
	return out
}

// Range is a half-open range [Lo, Hi) of bucket names.
type Range struct{ Lo, Hi string }

// AsOf returns the bucket ranges whose counters sum to the count at the
// end of day asOf (YYYY-MM-DD): the years before, the months of its year
// before its month, the days of its month up to it.
func AsOf(asOf string) ([3]Range, error) {
	t, err := time.Parse(time.DateOnly, asOf)
	if err != nil {
		return [3]Range{}, fmt.Errorf("as-of date %q is not YYYY-MM-DD: %w", asOf, hub.ErrInvalid)
	}
	y, m := t.Format("2006"), t.Format("01")
	// The next day's bucket bounds the range, even across a month's end:
	// "D20260401" sorts after every "D202603dd".
	next := t.AddDate(0, 0, 1).Format("20060102")
	return [3]Range{
		{"Y", "Y" + y},
		{"M" + y, "M" + y + m},
		{"D" + y + m, "D" + next},
	}, nil
}

// In reports whether bucket falls in one of the ranges.
func In(bucket string, rs [3]Range) bool {
	for _, r := range rs {
		if bucket >= r.Lo && bucket < r.Hi {
			return true
		}
	}
	return false
}

// Count is a region's registered population, or its permit holders.
type Count struct {
	Region string `json:"region"`
	Name   string `json:"name,omitempty"`
	Urban  int64  `json:"urban"`
	Rural  int64  `json:"rural"`
	Total  int64  `json:"total"`
}

// Timeline is what the counters need of a person's merge state. A nil
// Timeline (a person not stored before) has no spans.
type Timeline interface {
	Registrations() []hub.Interval
	// PermitSpans depends on both timelines: death and some
	// cancellations of the hukou end a permit.
	PermitSpans() []hub.Interval
	// TimelineLen counts the steps behind the spans; the steps are a
	// grow-only set, so an unchanged count means unchanged spans.
	TimelineLen() (registrations, permits int)
}

// Person adds the counter deltas of one person whose state went from
// before (nil if new) to after.
func (a Acc) Person(before, after Timeline, urban Classify) {
	br, bp := 0, 0
	if before != nil {
		br, bp = before.TimelineLen()
	}
	ar, ap := after.TimelineLen()
	if ar != br {
		var old []hub.Interval
		if before != nil {
			old = before.Registrations()
		}
		a.Registrations(old, after.Registrations(), urban)
	}
	// Death and some cancellations end a permit too, so the permit spans
	// of a holder follow both timelines.
	if ap != bp || (ar != br && ap > 0) {
		var old []hub.Interval
		if before != nil {
			old = before.PermitSpans()
		}
		a.Permits(old, after.PermitSpans())
	}
}

// UrbanByRegionTable classifies an address by the urban-rural class of
// the region table in use (region.Default: the built-in table, with an
// official NBS table over it when one was imported), and an address the
// table lacks by UrbanByCode.
func UrbanByRegionTable(address string) bool {
	if d, ok := region.Lookup(address); ok && d.UrbanRural != "" {
		return d.UrbanRural == "urban"
	}
	return UrbanByCode(address)
}

// UrbanByCode classifies a 12-digit address by the NBS numbering of its
// last three digits: 001–199 residents' committees (居委会) and 400–499
// those like them are urban; 200–399 village committees (村委会) and
// 500–599 those like them are rural.
func UrbanByCode(address string) bool {
	if len(address) != 12 {
		return false
	}
	n, err := strconv.Atoi(address[9:])
	return err == nil && (n >= 1 && n <= 199 || n >= 400 && n <= 499)
}
