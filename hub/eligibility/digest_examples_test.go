package eligibility_test

import (
	"encoding/json"
	"io/fs"
	"regexp"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas/jsonschema"
)

// TestPolicyDigestsOfTheOpenAPIExamples: the OpenAPI examples of GET
// /v1/policies name the shipped policies' digests, which change only when
// what a policy says changes (README, policy_digest): a field added to
// Condition and encoded as false in every clause changed every policy's
// digest, and on the upgrade the watcher took every watched policy for an
// edited one and decided every person again.
func TestPolicyDigestsOfTheOpenAPIExamples(t *testing.T) {
	b, err := fs.ReadFile(jsonschema.FS(), "openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\{id: ([a-z0-9/-]+), title: [^,]+, digest: '(sha256:[0-9a-f]{64})'\}`)
	found := 0
	for _, m := range re.FindAllSubmatch(b, -1) {
		id, want := string(m[1]), string(m[2])
		p, ok := cat.Policy(id)
		if !ok {
			t.Fatalf("no policy %s", id)
		}
		found++
		if got := p.Digest(); got != want {
			c, _ := json.Marshal(p.Clauses[0].Condition)
			t.Errorf("%s: digest %s, the OpenAPI example (and the release before, same policy text) %s; a condition now encodes as %s", id, got, want, c)
		}
	}
	if found == 0 {
		t.Fatal("premise: the OpenAPI example lists policies with digests")
	}
}
