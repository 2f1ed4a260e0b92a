package sdk

import (
	"fmt"
	"strings"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

// Kind selects which notifications a Filter matches.
type Kind string

// Filter kinds, one per subject filter the hub offers.
const (
	// MigrationsOut: hukou migrations whose origin lies in the region.
	MigrationsOut Kind = "migrations_out"
	// MigrationsIn: hukou migrations whose destination lies in the region.
	MigrationsIn Kind = "migrations_in"
	// Deaths: deaths of persons registered in the region.
	Deaths Kind = "deaths"
	// Changes: section changes of persons registered in the region.
	Changes Kind = "changes"
)

// Filter is one kind of notification in one region. Region is a 2-, 4- or
// 6-digit division code (province, city, county) and matches everything
// below it; "" matches the whole country.
type Filter struct {
	Kind   Kind
	Region string
}

// validate reports whether the filter names a kind and a region code.
func (f Filter) validate() error {
	switch f.Kind {
	case MigrationsOut, MigrationsIn, Deaths, Changes:
	default:
		return fmt.Errorf("filter kind %q: want %s, %s, %s or %s", f.Kind, MigrationsOut, MigrationsIn, Deaths, Changes)
	}
	switch len(f.Region) {
	case 0:
		return nil
	case 2, 4, 6:
		if region.IsLevelCode(f.Region) {
			return nil
		}
	}
	return fmt.Errorf("filter region %q: want a 2-, 4- or 6-digit division code", f.Region)
}

// Subject is the hub's subject filter for f under prefix (the hub's is
// "pop"). It is built by the schemas package's filter functions, so the
// SDK and the hub cannot disagree on the layout.
func (f Filter) Subject(prefix string) string {
	var s string
	switch f.Kind {
	case MigrationsOut:
		s = schemas.MigrationOutFilter(f.Region)
	case MigrationsIn:
		s = schemas.MigrationInFilter(f.Region)
	case Deaths:
		s = schemas.DeathFilter(f.Region)
	default:
		s = schemas.ChangedFilter(f.Region)
	}
	return prefix + strings.TrimPrefix(s, "pop")
}

// filterSet matches subjects against several subject filters on the client.
//
// A JetStream consumer on a 2.9 server takes one filter subject, and the
// hub's filters for one subscriber (migrations out of, migrations into and
// deaths in a region) are not one subject. The SDK therefore uses a single
// durable consumer on the narrowest subject covering all filters (cover)
// and drops, with an ack, the messages none of the filters matches. One
// consumer rather than one per filter because (1) the stream's order per
// citizen survives only within one consumer, and (2) a migration within
// the region matches both the in and the out filter and must be handled
// once. The price is reading, and acking, the covered subjects that are
// not wanted; an ack costs a fraction of a handled notification, and
// permission to read the cover, which a subscriber under the hub's access
// policy does not have: Config.ConsumerPerFilter then gives each subject
// its own consumer, at the cost of those two properties (see there).
type filterSet struct {
	cover string
	// subjects are the distinct filter subjects, in the order of the
	// filters; patterns are the same, tokenised.
	subjects []string
	patterns [][]string
}

func newFilterSet(prefix string, filters []Filter) filterSet {
	var fs filterSet
	seen := map[string]bool{}
	for _, f := range filters {
		s := f.Subject(prefix)
		if seen[s] {
			continue
		}
		seen[s] = true
		fs.subjects = append(fs.subjects, s)
		fs.patterns = append(fs.patterns, strings.Split(s, "."))
	}
	fs.cover = cover(fs.patterns)
	return fs
}

// cover returns the narrowest single subject filter matching everything
// the patterns match: token-wise agreement when they have the same number
// of tokens ("*" where they differ), otherwise their common leading tokens
// followed by ">".
func cover(patterns [][]string) string {
	if len(patterns) == 0 {
		return ">"
	}
	first := patterns[0]
	sameLen := true
	for _, p := range patterns[1:] {
		sameLen = sameLen && len(p) == len(first)
	}
	if sameLen {
		out := append([]string(nil), first...)
		for _, p := range patterns[1:] {
			for i := range out {
				if out[i] != p[i] {
					out[i] = "*"
				}
			}
		}
		return strings.Join(out, ".")
	}
	common := 0
	for common < len(first) {
		ok := first[common] != "*" && first[common] != ">"
		for _, p := range patterns[1:] {
			ok = ok && common < len(p) && p[common] == first[common]
		}
		if !ok {
			break
		}
		common++
	}
	if common == 0 {
		return ">"
	}
	return strings.Join(first[:common], ".") + ".>"
}

// match reports whether subject matches one of the filters. When there is
// a single filter the server already filtered exactly.
func (fs filterSet) match(subject string) bool {
	if len(fs.patterns) <= 1 {
		return true
	}
	for _, p := range fs.patterns {
		if matchSubject(p, subject) {
			return true
		}
	}
	return false
}

// matching returns the filters subject matches, bit i for subjects[i].
func (fs filterSet) matching(subject string) uint64 {
	var m uint64
	for i, p := range fs.patterns {
		if matchSubject(p, subject) {
			m |= 1 << i
		}
	}
	return m
}

// matchSubject matches a NATS subject against a tokenised filter with
// the "*" and ">" wildcards, without allocating.
func matchSubject(pattern []string, subject string) bool {
	rest, done := subject, false
	for _, tok := range pattern {
		if done {
			return false // the pattern has more tokens than the subject
		}
		if tok == ">" {
			return true // at least one token remains
		}
		cur := rest
		if j := strings.IndexByte(rest, '.'); j >= 0 {
			cur, rest = rest[:j], rest[j+1:]
		} else {
			done = true
		}
		if tok != "*" && tok != cur {
			return false
		}
	}
	return done
}
