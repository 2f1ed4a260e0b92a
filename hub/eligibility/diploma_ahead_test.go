package eligibility_test

import (
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestDiplomaRegisteredAheadIsForeseen: schools register their graduates
// ahead of the graduation day (the hub keeps such a graduation and counts
// it "from its date", hub/eligibility gather), as departments register a
// lease ahead of its start. The README (Eligibility) promises "the day the
// person will qualify if nothing changes", and the watcher decides a person
// again "on the day a decision said the person would qualify" to announce
// them on pop.eligibility. For a student whose bachelor's diploma is on
// record, dated 1 July, the decision of 25 June gave no day at all
// (qualifies_on "", no recheck day): nothing would change, yet the watcher
// never decided the graduate again on 1 July, and the graduate was never
// announced eligible (until some unrelated event of theirs arrives).
func TestDiplomaRegisteredAheadIsForeseen(t *testing.T) {
	ahead := registeredOn("2024-06-20", graduated("21", "2024-07-01"))
	for _, policy := range []string{"jilin/talent", "chifeng/central"} {
		t.Run(policy, func(t *testing.T) {
			before := runShipped(t, policy, eligibility.Case{Name: "before graduation day", AsOf: "2024-06-25", Person: outsider,
				Events: evs(ahead), Expect: eligibility.CaseExpect{Eligible: false}})
			on := runShipped(t, policy, eligibility.Case{Name: "on graduation day", AsOf: "2024-07-01", Person: outsider,
				Events: evs(ahead), Expect: eligibility.CaseExpect{Eligible: true}})
			if !before.Passed || !on.Passed {
				t.Fatalf("setup: %v %v", before.Problems, on.Problems)
			}
			if d := before.Decision; d.QualifiesOn != "2024-07-01" && d.RecheckOn != "2024-07-01" {
				t.Errorf("diploma on record dated 2024-07-01, decided on 2024-06-25: qualifies_on %q, recheck %q; want 2024-07-01 (eligible that day with no further event)",
					d.QualifiesOn, d.RecheckOn)
			}
		})
	}
}
