package eligibility

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Reader is what deciding needs of a store; hub.Store satisfies it.
type Reader interface {
	Person(ctx context.Context, id citizenid.ID) (hub.Record, error)
	History(ctx context.Context, id citizenid.ID) ([]hub.Change, error)
	Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error)
}

// Decide reads a person, their history and their relatives (for a past
// day, also those of that day, and with their histories; for today, the
// spouse of the day with their history, the others without) from r and
// evaluates them against p as of asOf. With listFamily false, relatives are
// read only when a clause of p needs them (family reunion), and the
// decision's family list may be incomplete: what announcing eligibility
// needs, at a fraction of the reads. It returns an error wrapping
// hub.ErrNotFound for an unknown person.
func Decide(ctx context.Context, r Reader, p *Policy, id citizenid.ID, asOf time.Time, listFamily bool) (Decision, error) {
	rec, err := r.Person(ctx, id)
	if err != nil {
		return Decision{}, fmt.Errorf("reading person: %w", err)
	}
	hist, err := r.History(ctx, id)
	if err != nil {
		return Decision{}, fmt.Errorf("reading history: %w", err)
	}
	var family []Subject
	if (listFamily && len(p.Family) > 0) || needsFamily(p) {
		past := dayOf(asOf).Before(dayOf(time.Now()))
		recs, err := Relatives(ctx, r, rec)
		if err != nil {
			return Decision{}, err
		}
		// For a past day, and for today when the person's history holds
		// a change stamped after asOf (ahead, within the clock skew the
		// hub accepts), which today's record already shows.
		then := relativesOn(rec, hist, asOf, past || changedAfter(hist, asOf))
		if relativesKey(then) != relativesKey(rec) {
			// Those of that day too: a spouse since divorced, a
			// household since left (today's members are kept: a
			// household that moved together is found at its new
			// address, and matched by its household of that day).
			more, err := Relatives(ctx, r, then)
			if err != nil {
				return Decision{}, err
			}
			for _, m := range more {
				if !slices.ContainsFunc(recs, func(o hub.Record) bool { return o.CitizenID == m.CitizenID }) {
					recs = append(recs, m)
				}
			}
		}
		// For a past day, each relative's history too: their hukou and
		// status are decided as of asOf, not as they are today. A
		// decision for today reads the history of the spouse of that
		// day alone, whose marriage, hukou and status it takes as of
		// asOf (a copy of the marriage stamped after asOf, on the next
		// China day, does not count today, as it will not when the day
		// is decided again later), and takes the other relatives'
		// records as they stand, which spares a read per member of a
		// large (collective) household on every decision the API and the
		// watcher make.
		var spouse citizenid.ID
		if then.Marital != nil {
			spouse = then.Marital.SpouseID
		}
		family = make([]Subject, len(recs))
		for i, m := range recs {
			family[i] = Subject{Record: m}
			if !past && (spouse == "" || m.CitizenID != spouse) {
				continue
			}
			if family[i].History, err = r.History(ctx, m.CitizenID); err != nil {
				return Decision{}, fmt.Errorf("reading a relative's history: %w", err)
			}
		}
	}
	return Evaluate(p, Subject{Record: rec, History: hist}, family, asOf), nil
}

// changedAfter reports whether history holds a change stamped after asOf.
func changedAfter(history []hub.Change, asOf time.Time) bool {
	return slices.ContainsFunc(history, func(c hub.Change) bool { return c.Time.After(asOf) })
}

// relativesOn is the record Relatives looks up a person's relatives
// from: for a past day, with the spouse and the household of that day
// (the spouse since divorced and the household since left are the ones
// a decision for that day joins), read from the person's history.
func relativesOn(rec hub.Record, hist []hub.Change, asOf time.Time, past bool) hub.Record {
	if !past || len(hist) == 0 {
		return rec
	}
	f := gather(&rec, hist, asOf)
	if f.married && f.spouse != "" {
		m := hub.Marital{SpouseID: f.spouse}
		if rec.Marital != nil {
			m = *rec.Marital
			m.SpouseID = f.spouse
		}
		rec.Marital = &m
	} else {
		rec.Marital = nil
	}
	if f.hukou != "" {
		rec.Hukou = &hub.Hukou{AddressCode: f.hukou, RegionCode: f.hukou[:min(6, len(f.hukou))], HouseholdID: f.household}
	}
	return rec
}

// relativesKey is what Relatives reads a person's relatives by: the
// spouse, and the household's address and id.
func relativesKey(rec hub.Record) string {
	var k string
	if rec.Marital != nil {
		k = string(rec.Marital.SpouseID)
	}
	if rec.Hukou != nil {
		k += "/" + rec.Hukou.AddressCode + "/" + rec.Hukou.HouseholdID
	}
	return k
}

// SpouseSections lists the sections of a spouse's record that p's
// decision reads: the spouse's hukou, status and marriage when a clause
// looks at relatives (family reunion joins a spouse alive, registered at
// a town address and whose own record shows the marriage, and
// hukou_elsewhere with to_spouse moves a rural hukou to it), none
// otherwise. A change to them can turn the spouse's spouse eligible, or
// no longer eligible, so a watcher re-decides that person too: the one
// the spouse's record names, and after a marital change also the one
// their record named before it (a divorce or a remarriage ends what that
// former spouse's decision joined).
func SpouseSections(p *Policy) []schemas.Section {
	if !needsFamily(p) {
		return nil
	}
	return []schemas.Section{schemas.SecHukou, schemas.SecMarital, schemas.SecStatus}
}

// needsFamily reports whether a clause of p looks at relatives.
func needsFamily(p *Policy) bool {
	var walk func(c *Condition) bool
	walk = func(c *Condition) bool {
		if c.Kind == KindFamilyReunion || c.Kind == KindHukouElsewhere && c.ToSpouse {
			return true
		}
		for i := range c.Of {
			if walk(&c.Of[i]) {
				return true
			}
		}
		return false
	}
	for i := range p.Clauses {
		if walk(&p.Clauses[i].Condition) {
			return true
		}
	}
	return false
}

// Relatives finds the records Evaluate matches to family members: the
// spouse on the marriage record, the members of the person's household
// and those of the spouse's household.
//
// The golden record links households by household_id only, and members of
// one household share its registered address; so a household is read by
// (address, household_id) through the stores' household index
// (hub.PersonQuery.Household), in full: its cost is the household's size,
// not the address's, which for a large community or a collective hukou
// holds tens of thousands.
func Relatives(ctx context.Context, r Reader, rec hub.Record) ([]hub.Record, error) {
	var out []hub.Record
	seen := map[citizenid.ID]bool{rec.CitizenID: true}
	add := func(recs []hub.Record) {
		for _, m := range recs {
			if !seen[m.CitizenID] {
				seen[m.CitizenID] = true
				out = append(out, m)
			}
		}
	}
	if rec.Hukou != nil {
		members, err := household(ctx, r, rec.Hukou)
		if err != nil {
			return nil, err
		}
		add(members)
	}
	if rec.Marital != nil && rec.Marital.SpouseID != "" && !seen[rec.Marital.SpouseID] {
		spouse, err := r.Person(ctx, rec.Marital.SpouseID)
		switch {
		case errors.Is(err, hub.ErrNotFound):
			// The spouse is not registered here: nobody to list.
		case err != nil:
			return nil, fmt.Errorf("reading spouse: %w", err)
		default:
			add([]hub.Record{spouse})
			if spouse.Hukou != nil && spouse.Hukou.HouseholdID != "" {
				members, err := household(ctx, r, spouse.Hukou)
				if err != nil {
					return nil, err
				}
				add(members)
			}
		}
	}
	return out, nil
}

// household lists the persons registered in h's household, every page of
// it: a member left out would be missing from the family list with
// nothing to say so.
func household(ctx context.Context, r Reader, h *hub.Hukou) ([]hub.Record, error) {
	if h.HouseholdID == "" || len(h.AddressCode) != 12 {
		return nil, nil
	}
	var out []hub.Record
	q := hub.PersonQuery{Region: h.AddressCode, Household: h.HouseholdID, Limit: hub.MaxPersonsPage}
	for {
		page, next, err := r.Persons(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("reading household members: %w", err)
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		q.After = next
	}
}
