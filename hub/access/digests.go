package access

import (
	"encoding/json"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Digests is an identity's token hashes or certificate fingerprints: one,
// or several while a credential is rotated. Any one listed authenticates,
// so a rotation refuses no request: list the new credential beside the
// old one, restart the hub, move the client to the new one, then remove
// the old one and restart again. In the policy file one value is a
// string and several a list:
//
//	token_sha256: 3f5c…
//	token_sha256: [3f5c…, 9a01…]
type Digests []string

// UnmarshalYAML takes a string or a list of strings.
func (d *Digests) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*d = nil
		if s != "" {
			*d = Digests{s}
		}
		return nil
	case yaml.SequenceNode:
		// Item by item: decoding the list whole would drop a null item
		// (a "-" line whose hash was never pasted) without a word.
		l := make([]string, 0, len(n.Content))
		var problems []string
		for _, item := range n.Content {
			var s string
			if item.Kind != yaml.ScalarNode || item.Tag == "!!null" || item.Decode(&s) != nil || s == "" {
				problems = append(problems, fmt.Sprintf("line %d: an empty or malformed item in a list of hashes", item.Line))
				continue
			}
			l = append(l, s)
		}
		if len(problems) > 0 {
			return &yaml.TypeError{Errors: problems}
		}
		*d = l
		return nil
	}
	// A TypeError, so that the decoder goes on and Parse reports every
	// problem at once.
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a hash, or a list of hashes while a credential is rotated", n.Line)}}
}

// MarshalJSON writes one value as a string and none as "", as the field
// was written before it took lists: the policy digests recorded in the
// audit trail (policy_change) stay the same for an unchanged policy.
func (d Digests) MarshalJSON() ([]byte, error) {
	switch len(d) {
	case 0:
		return []byte(`""`), nil
	case 1:
		return json.Marshal(d[0])
	}
	return json.Marshal([]string(d))
}

// field names the k-th value in a problem's path: the field alone when
// it holds one value, as the file then has no list.
func (d Digests) field(name string, k int) string {
	if len(d) == 1 {
		return name
	}
	return fmt.Sprintf("%s[%d]", name, k)
}

// describe is the credential as policy explain shows it: each value
// shortened, and several said to be accepted alike.
func (d Digests) describe(one, several string) string {
	short := make([]string, len(d))
	for i, v := range d {
		short[i] = "sha256:" + v[:min(12, len(v))] + "…"
	}
	if len(d) == 1 {
		return one + " " + short[0]
	}
	return fmt.Sprintf("%d %s, each accepted while one is rotated: %s", len(d), several, strings.Join(short, ", "))
}

// unique reports a value of d, identity i's field, that d lists twice or
// that another identity's list has (seen maps each value, normalized by
// norm, to the identity listing it), and adds d's values to seen.
func (d Digests) unique(ve *ValidationError, path string, i int, field, what string, norm func(string) string, seen map[string]int) {
	for k, v := range d {
		v = norm(v)
		switch j, dup := seen[v]; {
		case dup && j == i:
			ve.add(path+": credentials."+d.field(field, k), "the same %s is listed twice", what)
		case dup:
			ve.add(path+": credentials."+d.field(field, k), "the same %s as identities[%d]", what, j)
		}
		seen[v] = i
	}
}
