package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
)

// TestShippedCases runs every policy's own example cases, as
// `pophub policies test` does, and checks that no policy ships without them.
func TestShippedCases(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	perPolicy := map[string]int{}
	for _, r := range eligibility.RunCases(cat, policies.FS()) {
		perPolicy[r.Policy]++
		if !r.Passed {
			t.Errorf("%s: %s: %s", r.File, r.Case, strings.Join(r.Problems, "; "))
		}
	}
	for _, s := range cat.Policies() {
		if perPolicy[s.ID] < 2 {
			t.Errorf("policy %s has %d example cases, want at least 2", s.ID, perPolicy[s.ID])
		}
	}
}
