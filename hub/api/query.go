package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pophub/pophub/hub"
)

// queryOf parses a request's query string for a route that takes the
// parameters known, and refuses (hub.ErrInvalid) what would otherwise be
// ignored without a word: a malformed query string, a parameter the route
// does not take (as-of for as_of would answer today's counts), and a
// parameter given more than once (which of the two was meant is not ours
// to guess), and a parameter given with an empty value. The detail names
// the parameter and lists the known ones.
//
// A route that takes no parameter calls it with none, and refuses every
// one: GET /v1/persons/{citizen_id}?as_of= would otherwise answer today's
// record to a caller asking for a past one.
func queryOf(r *http.Request, known ...string) (url.Values, error) {
	return queryHinted(r, nil, known...)
}

// queryHinted is queryOf with advice in the refusals: for a parameter the
// route does not take, hints names where it is served instead; for one it
// takes, what to send instead of an empty value (by default: a value, or
// nothing).
func queryHinted(r *http.Request, hints map[string]string, known ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("the query string is malformed (parameters are name=value pairs joined by &, percent-encoded): %w", hub.ErrInvalid)
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // the same answer for the same query
	for _, name := range names {
		if !slices.Contains(known, name) {
			takes := "this route takes no query parameters"
			if len(known) > 0 {
				takes = "this route takes " + strings.Join(known, ", ")
			}
			if h := hints[name]; h != "" {
				takes += "; " + h
			}
			return nil, fmt.Errorf("unknown query parameter %q: %s: %w", clip(name), takes, hub.ErrInvalid)
		}
		if n := len(q[name]); n > 1 {
			return nil, fmt.Errorf("query parameter %q is given %d times: give it once: %w", name, n, hub.ErrInvalid)
		}
		// An empty value is a caller's unset variable, not a choice: taken
		// as absent, region= would walk the whole country and after= begin
		// the walk again.
		if q.Get(name) == "" {
			advice := hints[name]
			if advice == "" {
				advice = "give it a value, or leave it out"
			}
			return nil, fmt.Errorf("query parameter %q is empty: %s: %w", name, advice, hub.ErrInvalid)
		}
	}
	return q, nil
}

// clip shortens a caller's text repeated in a problem detail, at a
// character boundary: a cut inside a Chinese character would show as
// "\xe5" in the quoted text.
func clip(s string) string {
	const most = 64
	if len(s) <= most {
		return s
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
