package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Eligibility routes, served when Config.Policies is set.
const (
	RouteEligibility = "GET /v1/eligibility/{citizen_id}"
	RoutePolicies    = "GET /v1/policies"
)

// PolicyList is the body of GET /v1/policies.
type PolicyList struct {
	Policies []eligibility.Summary `json:"policies"`
}

// policies answers GET /v1/policies. It takes no query parameter.
func (s *Server) policies(r *http.Request, _ Grant, _ *Outcome) (any, error) {
	if _, err := queryOf(r); err != nil {
		return nil, err
	}
	return PolicyList{Policies: s.cfg.Policies.Policies()}, nil
}

// eligibilityAdvice says what to send instead of an empty parameter of a
// decision.
var eligibilityAdvice = map[string]string{
	"policy": "policy is required: give a policy id (GET /v1/policies lists them)",
	"as_of":  "give a date (YYYY-MM-DD), or leave as_of out to decide as of today",
}

// eligibility answers GET /v1/eligibility/{citizen_id}?policy=&as_of=: one
// person decided against one policy from the golden records, with every
// condition's facts, what is missing and the family who may come along.
//
// For the audit, o gets the sections the decision read of the person, the
// policy and the day decided, and as disclosures of their own each family
// member it lists (by name) and each other relative whose own record gave
// a fact it shows (a spouse not listed: not confirmed, deceased, …).
func (s *Server) eligibility(r *http.Request, id citizenid.ID, _ Grant, o *Outcome) (any, error) {
	q, err := queryHinted(r, eligibilityAdvice, "policy", "as_of")
	if err != nil {
		return nil, err
	}
	pid := q.Get("policy")
	if pid == "" {
		return nil, fmt.Errorf("the policy parameter is required (GET /v1/policies lists them): %w", hub.ErrInvalid)
	}
	p, ok := s.cfg.Policies.Policy(pid)
	if !ok {
		return nil, fmt.Errorf("no policy %q (GET /v1/policies lists them): %w", pid, hub.ErrInvalid)
	}
	// Without as_of the decision is today's, as an explicit as_of of
	// today (China time) gives it and as the statistics count it: every
	// change effective today counts, also one a department stamped a
	// little ahead of this instant.
	now := time.Now()
	asOf := eligibility.EndOfToday(now)
	if v := q.Get("as_of"); v != "" {
		t, err := eligibility.AsOfDay(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", err, hub.ErrInvalid)
		}
		if t.Add(-24 * time.Hour).After(now) {
			return nil, fmt.Errorf("as_of %s is in the future: records are known up to today; qualifies_on tells when the person will qualify: %w", v, hub.ErrInvalid)
		}
		asOf = t
	}
	d, err := eligibility.Decide(r.Context(), eligibilityReader{s.cfg.Store, s.cfg.Lister}, p, id, asOf, true)
	if err != nil {
		return nil, fmt.Errorf("deciding eligibility for %v: %w", id, err)
	}
	o.Sections = decisionSections(p)
	which := decisionDetail(d)
	o.Detail = which + ": " + decisionOutcome(d)
	for _, m := range d.Family {
		o.Others = append(o.Others, Disclosure{CitizenID: m.CitizenID, Sections: familySections, Detail: which + ": listed as family member"})
	}
	for _, rel := range d.Cited {
		o.Others = append(o.Others, Disclosure{CitizenID: rel, Sections: citedSections, Detail: which + ": own record cited as a relative"})
	}
	return d, nil
}

// decisionDetail says which decision was made, for the audit: the policy,
// the day decided, the policy's version (its digest), the version of the
// person's record decided from and those of the listed relatives' records
// (in the order the answer lists them, without their IDs, which the
// relatives' own entries carry), so that the processing record, kept 3
// years, tells an answer given under one text of a policy, or before a
// late event of the person or of a relative, from one given later (policy
// ids, digests, days and version numbers hold no personal data).
func decisionDetail(d eligibility.Decision) string {
	s := "eligibility decision " + d.Policy + " as of " + d.AsOf + ", policy " + d.PolicyDigest
	if d.RecordVersion > 0 {
		s += fmt.Sprintf(", record version %d", d.RecordVersion)
	}
	var rel []string
	for _, m := range d.Family {
		if v, ok := d.RelativesVersions[m.CitizenID]; ok {
			rel = append(rel, strconv.FormatInt(v, 10))
		}
	}
	if len(rel) > 0 {
		s += ", relatives' record versions " + strings.Join(rel, ", ")
	}
	return s
}

// decisionOutcome is what the clerk was shown, in short, for the person's
// own processing record: eligible or not, and the day the person would
// qualify. It is the person's, so a relative's entry does not carry it.
func decisionOutcome(d eligibility.Decision) string {
	switch {
	case d.Eligible:
		return "eligible"
	case d.QualifiesOn != "":
		return "not eligible, qualifies on " + d.QualifiesOn
	}
	return "not eligible"
}

// familySections are what a decision reads of a relative: identity (the
// name it shows, the birth date that presumes the relation), hukou (the
// household), marital and status (who may come along).
var familySections = []schemas.Section{schemas.SecIdentity, schemas.SecHukou, schemas.SecStatus, schemas.SecMarital}

// citedSections are the sections of a relative's record whose facts a
// decision may cite: marital (their own marriage), status and hukou.
var citedSections = []schemas.Section{schemas.SecHukou, schemas.SecStatus, schemas.SecMarital}

// decisionSections are the sections a decision under p reads of the
// person: those its conditions depend on, and, when it lists family, the
// sections that find relatives (hukou, marital) and presume relations by
// age (identity).
func decisionSections(p *eligibility.Policy) []schemas.Section {
	secs := eligibility.RelevantSections(p)
	if len(p.Family) > 0 {
		for _, sec := range familySections {
			if !slices.Contains(secs, sec) {
				secs = append(secs, sec)
			}
		}
	}
	return secs
}

// eligibilityReader joins the API's reader and lister for eligibility.Decide;
// without a lister, household members cannot be found and only the spouse
// is listed.
type eligibilityReader struct {
	Reader
	lister Lister
}

func (e eligibilityReader) Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	if e.lister == nil {
		return nil, "", nil
	}
	return e.lister.Persons(ctx, q)
}
