package audit

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pophub/pophub/schemas"
)

// Legal retention floors, in months.
const (
	// AccessFloorMonths: network access logs are kept at least six months
	// (Cybersecurity Law art. 21(3)).
	AccessFloorMonths = 6
	// ProcessingFloorMonths: processing records are kept at least three
	// years (PIPL art. 56).
	ProcessingFloorMonths = 36
)

// MaxRetentionMonths is the longest retention Validate takes: a hundred
// years. Far longer ones would wrap the cut-off's arithmetic round to a
// recent time and purge what is still kept; to keep a class for good, do
// not purge.
const MaxRetentionMonths = 1200

// ErrBelowFloor is wrapped by Retention.Validate when a retention is
// shorter than the law allows.
var ErrBelowFloor = errors.New("retention below the legal floor")

// ErrAboveCeiling is wrapped by Retention.Validate when a retention is
// longer than MaxRetentionMonths.
var ErrAboveCeiling = errors.New("retention above a hundred years")

// Retention says how long entries are kept, per Class. The zero value keeps
// each class for its legal floor.
type Retention struct {
	// AccessMonths keeps ClassAccess entries (reads, statistics pulls, audit
	// reads); 0 means AccessFloorMonths.
	AccessMonths int
	// ProcessingMonths keeps ClassProcessing entries (policy changes and
	// any other action); 0 means ProcessingFloorMonths.
	ProcessingMonths int
}

func (r *Retention) setDefaults() {
	if r.AccessMonths == 0 {
		r.AccessMonths = AccessFloorMonths
	}
	if r.ProcessingMonths == 0 {
		r.ProcessingMonths = ProcessingFloorMonths
	}
}

// Validate refuses a retention shorter than a legal floor or longer than
// MaxRetentionMonths.
func (r Retention) Validate() error {
	r.setDefaults()
	for _, m := range []int{r.AccessMonths, r.ProcessingMonths} {
		if m > MaxRetentionMonths {
			return fmt.Errorf("retention of %d months: %w: give at most %d, or do not purge to keep entries for good", m, ErrAboveCeiling, MaxRetentionMonths)
		}
	}
	if r.AccessMonths < AccessFloorMonths {
		return fmt.Errorf("access-log retention of %d months: %w: the Cybersecurity Law (art. 21) requires at least %d months", r.AccessMonths, ErrBelowFloor, AccessFloorMonths)
	}
	if r.ProcessingMonths < ProcessingFloorMonths {
		return fmt.Errorf("processing-record retention of %d months: %w: PIPL art. 56 requires at least %d months (3 years)", r.ProcessingMonths, ErrBelowFloor, ProcessingFloorMonths)
	}
	return nil
}

// cutoffs returns the times before which entries of each class are past
// their retention at now.
func (r Retention) cutoffs(now time.Time) (access, processing time.Time) {
	r.setDefaults()
	return monthsBefore(now, r.AccessMonths), monthsBefore(now, r.ProcessingMonths)
}

// monthsBefore is the time n calendar months before now on China's
// clocks (CST), on the month's last day when it has no such day: six
// months before 31 August is 28 February, where time.AddDate would give
// 3 March and purge entries not yet six months old. PostgreSQL's
// interval arithmetic, which the audit log's trigger uses in CST too,
// gives the same.
func monthsBefore(now time.Time, n int) time.Time {
	t := now.In(schemas.CST())
	y, m, d := t.Date()
	first := time.Date(y, m-time.Month(n), 1, 0, 0, 0, 0, schemas.CST())
	if last := first.AddDate(0, 1, -1).Day(); d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), schemas.CST())
}

// expired reports whether e is past its retention given the cutoffs.
func expired(e *Entry, access, processing time.Time) bool {
	if e.Action.Class() == ClassAccess && !legacyDecision(e) {
		return e.Time.Before(access)
	}
	return e.Time.Before(processing)
}

// legacyDetailPrefix begins the detail of an eligibility decision that a
// release of 2026-12-06 or earlier recorded as a read (ActionReadRecord).
const legacyDetailPrefix = "eligibility decision"

// legacyDecision reports whether e is such a decision: a processing
// record, kept 3 years like ActionDecideEligibility, although its action
// is a read's. (The PostgreSQL purge's expiredSQL says the same.)
func legacyDecision(e *Entry) bool {
	return e.Action == ActionReadRecord && strings.HasPrefix(e.Detail, legacyDetailPrefix)
}

// PurgeCount counts what a purge did to the entries of one class.
type PurgeCount struct {
	// Deleted entries were removed from the start of the log; the anchor
	// stands for them.
	Deleted int64
	// Redacted entries were reduced to stubs in place: they stand behind
	// an entry that is still retained.
	Redacted int64
}

// PurgeResult is what a purge did, per class.
type PurgeResult struct {
	Access     PurgeCount
	Processing PurgeCount
}

// Deleted is the number of entries deleted, of both classes.
func (r PurgeResult) Deleted() int64 { return r.Access.Deleted + r.Processing.Deleted }

// Redacted is the number of entries redacted, of both classes.
func (r PurgeResult) Redacted() int64 { return r.Access.Redacted + r.Processing.Redacted }

// class is the count of e's class.
func (r *PurgeResult) class(a Action) *PurgeCount {
	if a.Class() == ClassAccess {
		return &r.Access
	}
	return &r.Processing
}
