package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pophub/pophub/schemas"
)

// The hub's notification subjects (schemas.ChangedSubject and friends):
//
//	pop.changed.<P>.<C>.<D>.<section>
//	pop.migration.<P>.<C>.<D>.<P>.<C>.<D>
//	pop.death.<P>.<C>.<D>
//
// where P, C, D are the 2-, 4- and 6-digit province, city and county codes
// of a region (00.0000.000000 when unknown).
const subjectRoot = "pop"

// checkSubject validates a subscription pattern against the hub's subject
// scheme and returns the sections whose data the matching notifications
// carry: the changed section, hukou for migrations (their addresses),
// status for deaths (the date of death).
func checkSubject(pattern string) ([]schemas.Section, error) {
	if pattern == "" {
		return nil, errors.New("empty subject")
	}
	t := strings.Split(pattern, ".")
	for i, tok := range t {
		switch {
		case tok == "":
			return nil, errors.New("empty token")
		case tok == ">" && i != len(t)-1:
			return nil, errors.New("'>' must be the last token")
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*> \t"):
			return nil, fmt.Errorf("token %q mixes a wildcard with text", tok)
		}
	}
	if t[0] != subjectRoot {
		return nil, fmt.Errorf("not a hub subject: it must start with %q", subjectRoot+".")
	}
	if len(t) == 2 && t[1] == ">" {
		return slices.Concat(schemas.Sections), nil // every notification
	}
	if len(t) < 2 {
		return nil, errors.New("want pop.changed…, pop.migration… or pop.death…")
	}
	rest := t[2:]
	var regions int
	var needs []schemas.Section
	switch t[1] {
	case "changed":
		regions = 1
	case "migration":
		regions, needs = 2, []schemas.Section{schemas.SecHukou}
	case "death":
		regions, needs = 1, []schemas.Section{schemas.SecStatus}
	default:
		return nil, fmt.Errorf("unknown kind %q: want changed, migration or death (or pop.>)", t[1])
	}
	want := 3 * regions
	if t[1] == "changed" {
		want++
	}
	tail := len(rest) > 0 && rest[len(rest)-1] == ">"
	switch {
	case tail && len(rest) > want:
		return nil, fmt.Errorf("too many tokens: %s", layout(t[1]))
	case !tail && len(rest) != want:
		return nil, fmt.Errorf("want %d tokens after pop.%s: %s", want, t[1], layout(t[1]))
	}
	for r := 0; r < regions; r++ {
		if err := checkRegion(rest, 3*r); err != nil {
			return nil, err
		}
	}
	if t[1] == "changed" {
		if len(rest) < want || rest[3] == "*" || rest[3] == ">" {
			needs = slices.Concat(schemas.Sections) // any section
		} else {
			sec := schemas.Section(rest[3])
			if !slices.Contains(schemas.Sections, sec) {
				return nil, fmt.Errorf("unknown section %q (known: %s)", rest[3], joinSections())
			}
			needs = []schemas.Section{sec}
		}
	}
	return needs, nil
}

func layout(kind string) string {
	switch kind {
	case "changed":
		return "pop.changed.<province>.<city>.<county>.<section>"
	case "migration":
		return "pop.migration.<province>.<city>.<county>.<province>.<city>.<county> (from, to)"
	}
	return "pop.death.<province>.<city>.<county>"
}

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
