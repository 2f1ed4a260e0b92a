package eligibility_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestTransferCarriesItsOwnMonth: a transfer (转移接续) carries to its
// to region every month paid in its from region up to and including the
// month it takes effect in; the month of the transfer, paid at the old
// employer before the move, counts locally as the months before it do.
func TestTransferCarriesItsOwnMonth(t *testing.T) {
	const daqing = "230602"
	policy := strings.Replace(validPolicy, "{kinds: [pension], min_months: 24}", "{kinds: [pension], min_months: 13}", 1)
	cat, err := eligibility.Load(fstest.MapFS{"test/city.yaml": {Data: []byte(policy)}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Policy("test/city")
	r := eligibility.RunCase(p, eligibility.Case{AsOf: "2024-02-10", Person: outsider,
		Events: evs(contrib("230103", "2023-01..2023-12", "pension"), insuranceTransferred("2023-12-20", "230103", daqing),
			contrib(daqing, "2024-01..2024-01", "pension"))})
	var cr *eligibility.ConditionResult
	for i := range r.Decision.Conditions {
		if r.Decision.Conditions[i].ID == "insurance" {
			cr = &r.Decision.Conditions[i]
		}
	}
	if cr == nil {
		t.Fatalf("no insurance condition in %+v", r.Decision.Conditions)
	}
	if !cr.Met || !r.Decision.Eligible {
		t.Errorf("met = %t, eligible = %t, want both (missing: %s)", cr.Met, r.Decision.Eligible, cr.Missing)
	}
	const want = "pension insurance: 13 months in 大庆市市区 (2023-01 … 2024-01), 12 of them carried here by a transfer (转移接续)"
	var facts []string
	for _, f := range cr.Facts {
		facts = append(facts, f.Text)
	}
	if !strings.Contains(strings.Join(facts, "\n"), want) {
		t.Errorf("facts %q do not contain %q", facts, want)
	}
}

// TestDiplomaNotBeforeGraduation: a graduation registered ahead (the
// school reports its graduates before the ceremony) is no diploma before
// its date: the talent clause is not met on a day before it, and is on
// the day itself.
func TestDiplomaNotBeforeGraduation(t *testing.T) {
	tests := []struct {
		asOf string
		want bool
	}{
		{"2024-06-30", false},
		{"2024-07-01", true},
	}
	for _, tt := range tests {
		t.Run(tt.asOf, func(t *testing.T) {
			c := eligibility.Case{Name: "graduate registered ahead, as of " + tt.asOf, AsOf: tt.asOf, Person: outsider,
				Events: evs(registeredOn("2024-05-15", graduated("21", "2024-07-01"))),
				Expect: eligibility.CaseExpect{Eligible: tt.want, Conditions: map[string]bool{"diploma": tt.want}}}
			if r := runShipped(t, "jilin/talent", c); !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
		})
	}
}

// TestNoQualifyingDayAfterARegisteredGraduation: a student from Suihua
// enrolled at a Harbin school since 2025-01-01; on 2025-03-01 the school
// registers the graduation ahead, dated 2025-05-31. The enrolment is the
// only evidence of living in Harbin, so from 2025-06-01 the person lives
// there on no record: decided on 2025-06-30 they are not eligible (living
// and basis both fail). qualifies_on "is never a day on which a condition
// has by then stopped holding" (README, Eligibility), so the decision of
// 2025-03-10 must give no day, not 2025-06-30.
func TestNoQualifyingDayAfterARegisteredGraduation(t *testing.T) {
	events := evs(enrolled("某学院", "230103", "2025-01-01"), registeredOn("2025-03-01", graduated("20", "2025-05-31")))

	later := runShipped(t, "residence-permit/heilongjiang", eligibility.Case{Name: "on the predicted day", AsOf: "2025-06-30", Person: outsider, Events: events,
		Expect: eligibility.CaseExpect{Eligible: false}})
	if !later.Passed || later.Decision.Eligible {
		t.Fatalf("on 2025-06-30, a month after the graduation: %v %+v", later.Problems, later.Decision.Conditions)
	}

	r := runShipped(t, "residence-permit/heilongjiang", eligibility.Case{Name: "graduation registered ahead", AsOf: "2025-03-10", Person: outsider, Events: events,
		Expect: eligibility.CaseExpect{Eligible: false, QualifiesOn: "none"}})
	if !r.Passed {
		t.Errorf("%v\n  qualifies_on %q; conditions %+v", r.Problems, r.Decision.QualifiesOn, r.Decision.Conditions)
	}
}
