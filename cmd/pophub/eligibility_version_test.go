package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestPoliciesListNamesDigests: `pophub policies list` shows each
// policy's digest, the version a decision's policy_digest names.
func TestPoliciesListNamesDigests(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	root := &cobra.Command{Use: "pophub"}
	root.AddCommand(policiesCommand())
	out, err := execute(t, root, "policies", "list")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := map[string]string{}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 {
			lines[f[0]] = strings.TrimSpace(line)
		}
	}
	for _, s := range cat.Policies() {
		if line := lines[s.ID]; !strings.HasSuffix(line, " "+s.Digest) {
			t.Errorf("policy %s listed as %q, want its digest %s", s.ID, line, s.Digest)
		}
	}
}

// TestDecisionPrintNamesVersions: `pophub eligibility` prints, beside the
// policy and the day, the policy version and the record version the
// answer came from, and the record version of each family member listed.
func TestDecisionPrintNamesVersions(t *testing.T) {
	const spouse, child = "230102199203041220", "230102201505060012"
	d := eligibility.Decision{CitizenID: "230102199001011230", Policy: "heilongjiang/daqing", Title: "大庆市落户条件",
		PolicyDigest: "sha256:" + strings.Repeat("ab", 32), AsOf: "2026-11-22", RecordVersion: 58, Place: "大庆市市区", Route: "all",
		Family: []eligibility.FamilyMember{
			{CitizenID: spouse, Name: "王芳", Relation: "spouse", Basis: "marriage"},
			{CitizenID: child, Name: "李明", Relation: "child", Basis: "household"},
		},
		RelativesVersions: map[citizenid.ID]int64{spouse: 12, child: 3}}
	var b bytes.Buffer
	printDecision(&b, d)
	for _, want := range []string{
		"policy version " + d.PolicyDigest + ", record version 58\n",
		"spouse " + citizenid.ID(spouse).String() + " 王芳 (marriage), record version 12\n",
		"child " + citizenid.ID(child).String() + " 李明 (household), record version 3\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printed\n%s\nwant a line with %q", b.String(), want)
		}
	}
}

// TestDecisionPrintNamesFamilyNote: the printout says why no relative was
// presumed in a collective household, so that the clerk takes them from
// the household register.
func TestDecisionPrintNamesFamilyNote(t *testing.T) {
	d := eligibility.Decision{CitizenID: "230102199001011230", Policy: "inner-mongolia/chifeng-central", Title: "赤峰",
		AsOf: "2026-11-22", Place: "赤峰市中心城区", Route: "family",
		FamilyNote: "the applicant's household of 3001 members is read as a collective household (集体户)"}
	var b bytes.Buffer
	printDecision(&b, d)
	if want := "family: " + d.FamilyNote + "\n"; !strings.Contains(b.String(), want) {
		t.Errorf("printed\n%s\nwant a line %q", b.String(), want)
	}
}
