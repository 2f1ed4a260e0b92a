package eligibility_test

import (
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
)

func TestShippedPoliciesLoad(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cat.Policies() {
		t.Log(s.ID, s.Title)
	}
}
