package sdk

import (
	"fmt"
	"slices"
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
	// Changes: section changes of persons registered in the region, of
	// every section or of Filter.Section only.
	Changes Kind = "changes"
)

// Filter is one kind of notification in one region. Region is a 2-, 4- or
// 6-digit division code (province, city, county) and matches everything
// below it; "" matches the whole country. A city may be written in six
// digits (230100 for 2301), as departments write a city-wide region and
// the hub's statistics and persons routes accept it: it matches the city.
//
// Section narrows a Changes filter to the changes of one golden-record
// section (a schemas.Section name: "status" gives
// pop.changed.23.2301.*.status for Region 2301); "" matches every section
// (pop.changed.23.2301.*.*). The hub's access policy grants the changed
// subjects section by section, so a subscriber that may read only some
// sections names the one it follows. Other kinds have no section.
type Filter struct {
	Kind    Kind
	Region  string
	Section string
}

// validate reports whether the filter names a kind, a region code and,
// for a changes filter, a section of the hub or none.
func (f Filter) validate() error {
	switch f.Kind {
	case MigrationsOut, MigrationsIn, Deaths, Changes:
	default:
		return fmt.Errorf("filter kind %q: want %s, %s, %s or %s", f.Kind, MigrationsOut, MigrationsIn, Deaths, Changes)
	}
	if err := f.checkSection(); err != nil {
		return err
	}
	if f.Region == "" {
		return nil
	}
	if err := CheckRegion(f.Region); err != nil {
		return fmt.Errorf("filter region %w", err)
	}
	return nil
}

// checkSection reports what is wrong with the filter's section: one on
// a kind other than Changes, or a name that is not one of the hub's
// sections (schemas.Sections, matched exactly: the name is a subject
// token, so "Status" or "*" would subscribe to nothing, or to more than
// asked).
func (f Filter) checkSection() error {
	if f.Section == "" {
		return nil
	}
	if f.Kind != Changes {
		return fmt.Errorf("filter section %q: only a %s filter has a section, not %s", f.Section, Changes, f.Kind)
	}
	if !slices.Contains(schemas.Sections, schemas.Section(f.Section)) {
		names := make([]string, len(schemas.Sections))
		for i, s := range schemas.Sections {
			names[i] = string(s)
		}
		return fmt.Errorf("filter section %q: not a section of the hub (%s)", f.Section, strings.Join(names, ", "))
	}
	return nil
}

// CheckRegion reports what is wrong with a 2-, 4- or 6-digit division code
// (province, city, county) as a region to subscribe to, worded to tell
// the cases apart: a wrong length (`"123": want a 2-, 4- or 6-digit
// division code`), a character other than a digit, a province that
// does not exist (`"99": not a division code: 99 is not a province code`,
// as pophub regions show says), or a well-formed code the region table
// knows nothing in (`"230199": not in the region table`): a subscription
// to it would match nothing, silently. A code is known when the table
// has it or any division beneath it: the official table (pophub regions
// import) adds villages only, so a county newer than the built-in table
// is known, to the hub that announces its persons under it as to the
// SDK, through its villages alone. A city written in six digits (230100)
// is checked as its 4-digit code (RegionCode); a province written in six
// (230000) is refused naming its 2-digit code.
//
// The table is region.Default(): the built-in one, or the official table
// a program installed with region.SetDefault, so that a county newer than
// the built-in table is taken where the program runs with the table that
// has it. In a province the table has no divisions of (Hong Kong, Macao,
// Taiwan) any code is taken, as the hub takes it.
func CheckRegion(code string) error {
	switch len(code) {
	case 2, 4, 6:
	default:
		return fmt.Errorf("%q: want a 2-, 4- or 6-digit division code", code)
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return fmt.Errorf("%q: not a division code: it has a character other than a digit", code)
		}
	}
	if !region.IsProvince(code[:2]) {
		return fmt.Errorf("%q: not a division code: %s is not a province code", code, code[:2])
	}
	if len(region.Children(code[:2])) == 0 {
		return nil
	}
	if !knownWithin(region.Default(), RegionCode(code)) {
		if len(code) == 6 && code[2:] == "0000" {
			return fmt.Errorf("%q: not in the region table: a province is written in two digits, %s", code, code[:2])
		}
		return fmt.Errorf("%q: not in the region table", code)
	}
	return nil
}

// knownWithin reports whether t has code or any division beneath it.
// Children sees only the level right under a code, and a level may be
// missing (the official table adds villages without their townships), so
// under a code with no children each code of the next level is searched
// in turn, down to the villages, stopping at the first entry: a thousand
// lookups for a county the table has no township of, some hundred
// thousand for such a city, paid once when a subscriber checks its
// configuration.
func knownWithin(t *region.Table, code string) bool {
	if _, ok := t.Lookup(code); ok {
		return true
	}
	next := int(region.Level(len(code)).Below())
	if next == 0 {
		return false
	}
	if len(t.Children(code)) > 0 {
		return true
	}
	if region.Level(next).Below() == 0 {
		return false // Children saw the last level
	}
	width := next - len(code)
	end := 1
	for range width {
		end *= 10
	}
	for i := range end {
		if knownWithin(t, fmt.Sprintf("%s%0*d", code, width, i)) {
			return true
		}
	}
	return false
}

// RegionCode is the code a subscription region is matched by: a city
// written in six digits (230100) is its 4-digit code (2301), the code the
// hub's subjects carry; every other code is its own. A 6-digit code the
// region table (region.Default()) has is a county, though it ends in 00:
// 东莞市 441900, 中山市 442000 and 儋州市 460400 are the one county of a
// city without districts, and the hub's subjects and walks carry them as
// counties, so a subscriber fixed to such a county asks for its subject
// and walks it. It is the reading the hub's statistics routes give such
// a code.
func RegionCode(code string) string { return region.Named(code) }

// legacySubject is the subject an SDK before it read 441900, 442000 and
// 460400 as counties (see RegionCode) gave f, when that differs from
// f's: it read every 6-digit code ending in 00 under a city as the city
// (pop.death.44.4419.* for 441900, not pop.death.44.4419.441900). The
// city has that county only, so both subjects match the same messages,
// and a consumer that SDK created for an unchanged configuration is kept
// (see bind and checkLeftoverConsumers). "" when the subjects agree.
func (f Filter) legacySubject(prefix string) string {
	c := f.Region
	if len(c) != 6 || c[2:4] == "00" || c[4:] != "00" || RegionCode(c) == c[:4] {
		return ""
	}
	f.Region = c[:4]
	return f.Subject(prefix)
}

// Subject is the hub's subject filter for f under prefix (the hub's is
// "pop"). It is built by the schemas package's filter functions, so the
// SDK and the hub cannot disagree on the layout. A filter without a
// section has the subject it had before filters had sections, and so the
// same per-filter consumer name (schemas.FilterConsumerName hashes the
// subject); filters differing by section have different subjects, and so
// different consumers.
func (f Filter) Subject(prefix string) string {
	var s string
	switch code := RegionCode(f.Region); f.Kind {
	case MigrationsOut:
		s = schemas.MigrationOutFilter(code)
	case MigrationsIn:
		s = schemas.MigrationInFilter(code)
	case Deaths:
		s = schemas.DeathFilter(code)
	default:
		if f.Section != "" {
			s = schemas.ChangedSectionFilter(code, schemas.Section(f.Section))
		} else {
			s = schemas.ChangedFilter(code)
		}
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
	// legacy are the subjects an SDK before the county reading gave
	// subjects[i] (Filter.legacySubject), "" where it is the same or
	// another configured subject; legacyCover is the cover of those
	// subjects, "" when it is cover.
	legacy      []string
	legacyCover string
}

func newFilterSet(prefix string, filters []Filter) filterSet {
	var fs filterSet
	seen := map[string]bool{}
	var legacyPatterns [][]string
	for _, f := range filters {
		s := f.Subject(prefix)
		if seen[s] {
			continue
		}
		seen[s] = true
		fs.subjects = append(fs.subjects, s)
		fs.patterns = append(fs.patterns, strings.Split(s, "."))
		old := f.legacySubject(prefix)
		fs.legacy = append(fs.legacy, old)
		if old == "" {
			old = s
		}
		legacyPatterns = append(legacyPatterns, strings.Split(old, "."))
	}
	fs.cover = cover(fs.patterns)
	if c := cover(legacyPatterns); c != fs.cover {
		fs.legacyCover = c
	}
	// A legacy subject that is also configured has its own consumer.
	for i, old := range fs.legacy {
		if seen[old] {
			fs.legacy[i] = ""
		}
	}
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
