package eligibility_test

import (
	"encoding/json"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
)

// TestDecisionIdentifiesPolicyVersion: a policy file edited after a
// decision (a threshold changed, a clause reworded) decides the same
// person differently under the same id and title; an appeal must be able
// to tell which version of the policy the clerk's answer came from, so
// the answer must name it (a digest or version of the policy).
func TestDecisionIdentifiesPolicyVersion(t *testing.T) {
	p := policy(t, "heilongjiang/daqing")
	edited := *p
	edited.Clauses = append([]eligibility.Clause(nil), p.Clauses...)
	for i := range edited.Clauses {
		if edited.Clauses[i].ID == "insurance" {
			cond := edited.Clauses[i].Condition
			n := 12
			cond.MinMonths = &n
			edited.Clauses[i].Condition = cond
		}
	}
	c := eligibility.Case{Name: "18 months of insurance", AsOf: "2025-03-01", Person: outsider,
		Events: evs(contract("C1", "230602", "2024-01-01", ""), lease("L1", daqingAddr, "2023-01-01", ""),
			contrib("230602", "2023-09..2025-02", "pension"))}
	before, after := eligibility.RunCase(p, c).Decision, eligibility.RunCase(&edited, c).Decision
	if before.Eligible == after.Eligible {
		t.Fatalf("premise: the edit should change the answer (eligible %v both)", before.Eligible)
	}
	// What identifies an answer: everything but the outcome.
	ident := func(d eligibility.Decision) string {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"conditions", "eligible", "qualifies_on", "family", "route", "place"} {
			delete(m, k)
		}
		b, _ = json.Marshal(m)
		return string(b)
	}
	if ident(before) == ident(after) {
		t.Errorf("the answers under the policy and its edited version carry the same identification %s: nothing names the policy version a clerk's decision came from", ident(before))
	}
	if before.PolicyDigest != p.Digest() || after.PolicyDigest != edited.Digest() || before.PolicyDigest == after.PolicyDigest {
		t.Errorf("policy_digest %q and %q, want the policy's %q and the edited one's %q, which differ",
			before.PolicyDigest, after.PolicyDigest, p.Digest(), edited.Digest())
	}
}

// TestDecisionNamesTheRecordVersion: the answer names the version of the
// golden record it was decided from, so that the same day decided again
// after a late event (here a month of contributions recorded later) can
// be told from the clerk's answer, and the policy list names each
// policy's digest as decisions do.
func TestDecisionNamesTheRecordVersion(t *testing.T) {
	p := policy(t, "heilongjiang/daqing")
	base := evs(contract("C1", "230602", "2024-01-01", ""), lease("L1", daqingAddr, "2023-01-01", ""),
		contrib("230602", "2023-03..2024-05", "pension"), contrib("230602", "2024-07..2025-02", "pension"))
	clerk := eligibility.Case{Name: "as the clerk saw it", AsOf: "2025-03-01", Person: outsider, Events: base}
	later := clerk
	later.Events = append(append([]eligibility.CaseEvent(nil), base...), contrib("230602", "2024-06..2024-06", "pension"))
	version := func(c eligibility.Case) int64 {
		t.Helper()
		subj, _, err := c.Build()
		if err != nil {
			t.Fatal(err)
		}
		d := eligibility.RunCase(p, c).Decision
		if d.RecordVersion == 0 || d.RecordVersion != subj.Record.Version {
			t.Errorf("%s: record_version %d, want the record's version %d", c.Name, d.RecordVersion, subj.Record.Version)
		}
		return d.RecordVersion
	}
	if a, b := version(clerk), version(later); a >= b {
		t.Errorf("record_version %d after a late event, %d before: want a later version", b, a)
	}
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cat.Policies() {
		q, _ := cat.Policy(s.ID)
		if s.Digest == "" || s.Digest != q.Digest() {
			t.Errorf("policy %s listed with digest %q, want %q", s.ID, s.Digest, q.Digest())
		}
	}
}
