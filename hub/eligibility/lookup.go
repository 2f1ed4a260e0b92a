package eligibility

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Reader is what deciding needs of a store; hub.Store satisfies it.
type Reader interface {
	Person(ctx context.Context, id citizenid.ID) (hub.Record, error)
	History(ctx context.Context, id citizenid.ID) ([]hub.Change, error)
	Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error)
}

// maxHouseholdPages bounds the walk of one address for household members:
// a residents' committee holds a few thousand registrations at most.
const maxHouseholdPages = 20

// Decide reads a person, their history and their relatives from r and
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
	var family []hub.Record
	if (listFamily && len(p.Family) > 0) || needsFamily(p) {
		if family, err = Relatives(ctx, r, rec); err != nil {
			return Decision{}, err
		}
	}
	return Evaluate(p, Subject{Record: rec, History: hist}, family, asOf), nil
}

// needsFamily reports whether a clause of p looks at relatives.
func needsFamily(p *Policy) bool {
	var walk func(c *Condition) bool
	walk = func(c *Condition) bool {
		if c.Kind == KindFamilyReunion {
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
// walking the persons registered at that 12-digit address
// (GET /v1/persons?region=<address>) and keeping those with the same
// household_id, rather than by an index of its own.
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

// household lists the persons registered in h's household.
func household(ctx context.Context, r Reader, h *hub.Hukou) ([]hub.Record, error) {
	if h.HouseholdID == "" || len(h.AddressCode) != 12 {
		return nil, nil
	}
	var out []hub.Record
	after := ""
	for range maxHouseholdPages {
		page, next, err := r.Persons(ctx, hub.PersonQuery{Region: h.AddressCode, After: after, Limit: hub.MaxPersonsPage})
		if err != nil {
			return nil, fmt.Errorf("reading household members: %w", err)
		}
		for _, m := range page {
			if m.Hukou != nil && m.Hukou.HouseholdID == h.HouseholdID {
				out = append(out, m)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	return out, nil
}
