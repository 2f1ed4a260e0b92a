package access

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

// The hub's notification subjects (schemas.ChangedSubject and friends):
//
//	pop.changed.<P>.<C>.<D>.<section>
//	pop.migration.<P>.<C>.<D>.<P>.<C>.<D>
//	pop.death.<P>.<C>.<D>
//	pop.eligibility.<policy>.<P>.<C>.<D>
//
// where P, C, D are the 2-, 4- and 6-digit province, city and county codes
// of a region (00.0000.000000 when unknown), and policy is an eligibility
// policy's id as one token (schemas.PolicyToken: heilongjiang_daqing).
const subjectRoot = "pop"

// subjectNeeds is what an identity must be granted to subscribe to a
// subject pattern.
type subjectNeeds struct {
	// sections are those whose data the matching notifications carry: the
	// changed section, hukou for migrations (their addresses), status for
	// deaths (the date of death).
	sections []schemas.Section
	// regionHukou is set when the region of changed or death notifications
	// is not fixed to one county by the pattern: each notification's
	// subject then names the person's hukou county, which a reader without
	// hukou never sees over HTTP. A pattern fixed to a county says no more
	// than GET /v1/persons?region=<county> does.
	regionHukou bool
	// eligibility is set for eligibility notifications: each names a
	// citizen and the policy they qualify under, as the eligibility
	// decision route does.
	eligibility bool
	// county is the 6-digit county a changed or death pattern is fixed
	// to (oneCounty), "" when it is not fixed to one: such a pattern
	// needs no hukou grant, and its subscriber may walk the county's
	// records (Identity.SubscribedCounties).
	county string
}

// kindLayout is the shape of one kind of subject after pop.<kind>.
type kindLayout struct {
	policy  bool   // a leading policy token
	regions int    // region triples
	section bool   // a trailing section token
	text    string // the layout, for error messages
}

var subjectKinds = map[string]kindLayout{
	"changed":     {regions: 1, section: true, text: "pop.changed.<province>.<city>.<county>.<section>"},
	"migration":   {regions: 2, text: "pop.migration.<province>.<city>.<county>.<province>.<city>.<county> (from, to)"},
	"death":       {regions: 1, text: "pop.death.<province>.<city>.<county>"},
	"eligibility": {policy: true, regions: 1, text: "pop.eligibility.<policy>.<province>.<city>.<county>"},
}

// checkSubject validates a subscription pattern against the hub's subject
// scheme and returns what subscribing to it needs.
func checkSubject(pattern string) (subjectNeeds, error) {
	if pattern == "" {
		return subjectNeeds{}, errors.New("empty subject")
	}
	t := strings.Split(pattern, ".")
	for i, tok := range t {
		switch {
		case tok == "":
			return subjectNeeds{}, errors.New("empty token")
		case tok == ">" && i != len(t)-1:
			return subjectNeeds{}, errors.New("'>' must be the last token")
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*> \t"):
			return subjectNeeds{}, fmt.Errorf("token %q mixes a wildcard with text", tok)
		}
	}
	if t[0] != subjectRoot {
		return subjectNeeds{}, fmt.Errorf("not a hub subject: it must start with %q", subjectRoot+".")
	}
	if len(t) == 2 && t[1] == ">" {
		// Every notification.
		return subjectNeeds{sections: slices.Clone(schemas.Sections), regionHukou: true, eligibility: true}, nil
	}
	if len(t) < 2 {
		return subjectNeeds{}, errors.New("want pop.changed…, pop.migration…, pop.death… or pop.eligibility…")
	}
	kind, ok := subjectKinds[t[1]]
	if !ok {
		return subjectNeeds{}, fmt.Errorf("unknown kind %q: want changed, migration, death or eligibility (or pop.>)", t[1])
	}
	rest := t[2:]
	lead := 0
	if kind.policy {
		lead = 1
	}
	want := lead + 3*kind.regions
	if kind.section {
		want++
	}
	tail := len(rest) > 0 && rest[len(rest)-1] == ">"
	switch {
	case tail && len(rest) > want:
		return subjectNeeds{}, fmt.Errorf("too many tokens: %s", kind.text)
	case !tail && len(rest) != want:
		return subjectNeeds{}, fmt.Errorf("want %d tokens after pop.%s: %s", want, t[1], kind.text)
	}
	if kind.policy {
		if err := checkPolicyToken(rest[0]); err != nil {
			return subjectNeeds{}, err
		}
	}
	for r := 0; r < kind.regions; r++ {
		if err := checkRegion(rest, lead+3*r); err != nil {
			return subjectNeeds{}, err
		}
	}

	var needs subjectNeeds
	switch t[1] {
	case "changed":
		if len(rest) < want || rest[3] == "*" || rest[3] == ">" {
			needs.sections = slices.Clone(schemas.Sections) // any section
		} else {
			sec := schemas.Section(rest[3])
			if !slices.Contains(schemas.Sections, sec) {
				return subjectNeeds{}, fmt.Errorf("unknown section %q (known: %s)", rest[3], joinSections())
			}
			needs.sections = []schemas.Section{sec}
		}
		needs.regionHukou, needs.county = fixedCounty(rest)
	case "migration":
		needs.sections = []schemas.Section{schemas.SecHukou}
	case "death":
		needs.sections = []schemas.Section{schemas.SecStatus}
		needs.regionHukou, needs.county = fixedCounty(rest)
	case "eligibility":
		needs.eligibility = true
	}
	return needs, nil
}

// fixedCounty reads the region triple at the start of rest as
// subjectNeeds does: whether it names each person's hukou county, which
// the subscriber then needs the hukou grant to see, or else the one
// county it is fixed to.
func fixedCounty(rest []string) (regionHukou bool, county string) {
	if !oneCounty(rest) {
		return true, ""
	}
	return false, rest[2]
}

// SubscribedCounties lists the counties the identity's changed and death
// subscriptions are fixed to (pop.death.23.2301.230102 is fixed to
// 230102), each once, in the order of Subscribe. Such a subscription
// needs no hukou grant, since its subjects say no more than a walk of the
// county does; the same holds the other way, so GET
// /v1/persons?region= of these counties, as a whole, is open to the
// identity without the grant (api.CountyGrant), which is how its SDK
// bootstraps the subscription. A subject the validator refuses fixes nothing.
func (id Identity) SubscribedCounties() []string {
	var out []string
	for _, s := range id.Subscribe {
		needs, err := checkSubject(s)
		if err == nil && needs.county != "" && !slices.Contains(out, needs.county) {
			out = append(out, needs.county)
		}
	}
	return out
}

// oneCounty reports whether the region triple at the start of rest is
// fixed to one known county. The unknown region 00.0000.000000 is not
// one: it tells that a person has no hukou registration.
func oneCounty(rest []string) bool {
	if len(rest) < 3 {
		return false
	}
	for _, tok := range rest[:3] {
		if tok == "*" || tok == ">" {
			return false
		}
	}
	return strings.Join(rest[:3], ".") != region.Unknown
}

// checkPolicyToken checks an eligibility policy token: '*', '>' or a
// policy id as schemas.PolicyToken renders it.
func checkPolicyToken(tok string) error {
	if tok == "*" || tok == ">" || policyTokenRE.MatchString(tok) {
		return nil
	}
	return fmt.Errorf("policy token %q: want a policy id with '_' for '/' (heilongjiang_daqing) or '*'", tok)
}

var policyTokenRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// checkRegion checks the region triple starting at rest[at], as far as it
// goes before a '>'.
func checkRegion(rest []string, at int) error {
	widths := [3]int{2, 4, 6}
	prev := ""
	for k := 0; k < 3 && at+k < len(rest); k++ {
		tok := rest[at+k]
		switch tok {
		case ">":
			return nil
		case "*":
			prev = ""
			continue
		}
		if len(tok) != widths[k] || strings.Trim(tok, "0123456789") != "" {
			return fmt.Errorf("region token %q: want %d digits or '*' (province, city, county: 23.2301.230102)", tok, widths[k])
		}
		if prev != "" && !strings.HasPrefix(tok, prev) {
			return fmt.Errorf("region token %q does not lie in %q", tok, prev)
		}
		prev = tok
	}
	return nil
}
