package eligibility_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

// insuranceTerminated is the social insurance department ending kinds on
// day end, sent on day at.
func insuranceTerminated(region, at, end string, kinds ...string) eligibility.CaseEvent {
	ks := make([]any, len(kinds))
	for i, k := range kinds {
		ks[i] = k
	}
	return eligibility.CaseEvent{Type: schemas.InsuranceTerminated, Time: at,
		Data: map[string]any{"insurances": ks, "region": region, "end": end}}
}

// insuranceTransferred is the social insurance department completing a
// transfer (转移接续) of the account from one region to another on day at.
func insuranceTransferred(at, from, to string) eligibility.CaseEvent {
	return eligibility.CaseEvent{Type: schemas.InsuranceTransferred, Time: at, Data: map[string]any{"from_region": from, "to_region": to}}
}

// TestInsuranceMonths covers what no shipped policy asks for: a clause
// counting only the last unbroken run of contributions, a termination
// that stops the months still to come from being foreseen, and months a
// transfer carries into or out of the place of a local count.
func TestInsuranceMonths(t *testing.T) {
	const daqing = "230602"
	tests := []struct {
		name      string
		condition string // the clause's insurance_months parameters
		asOf      string
		events    []eligibility.CaseEvent
		wantMet   bool
		// wantFact is a fragment of the clause's fact.
		wantFact    string
		wantMissing string
		// wantQualifiesOn is the decision's prediction, "" for none.
		wantQualifiesOn string
	}{
		{
			name:      "continuous: a one-month gap starts the count again",
			condition: "{kinds: [pension], min_months: 12, continuous: true}",
			asOf:      "2025-02-15",
			events:    evs(contrib(daqing, "2024-01..2024-06", "pension"), contrib(daqing, "2024-08..2025-01", "pension")),
			wantFact:  "pension insurance: 6 months in 大庆市市区 (2024-08 … 2025-01), unbroken",
			// Still paying: the twelfth unbroken month is 2025-07.
			wantMissing: "6 more months of pension insurance in 大庆市市区", wantQualifiesOn: "2025-07-01",
		},
		{
			name:      "not continuous: months on both sides of a gap add up",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2025-02-15",
			events:    evs(contrib(daqing, "2024-01..2024-06", "pension"), contrib(daqing, "2024-08..2025-01", "pension")),
			wantMet:   true, wantFact: "pension insurance: 12 months in 大庆市市区 (2024-01 … 2025-01, none counted for 2024-07)",
		},
		{
			name:        "still paying: the missing months are foreseen",
			condition:   "{kinds: [pension], min_months: 12}",
			asOf:        "2025-06-10",
			events:      evs(contrib(daqing, "2024-12..2025-05", "pension")),
			wantFact:    "pension insurance: 6 months in 大庆市市区 (2024-12 … 2025-05)",
			wantMissing: "6 more months of pension insurance in 大庆市市区", wantQualifiesOn: "2025-11-01",
		},
		{
			name:      "terminated at the end of the last month paid: nothing is foreseen",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2025-06-10",
			events: evs(contrib(daqing, "2024-12..2025-05", "pension"),
				insuranceTerminated(daqing, "2025-06-01", "2025-05-31", "pension")),
			wantFact:    "pension insurance: 6 months in 大庆市市区 (2024-12 … 2025-05)",
			wantMissing: "6 more months of pension insurance in 大庆市市区", wantQualifiesOn: "",
		},
		{
			name:      "terminated, then paying again: the later months are foreseen",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2025-06-10",
			events: evs(contrib(daqing, "2024-12..2025-02", "pension"),
				insuranceTerminated(daqing, "2025-03-01", "2025-02-28", "pension"), contrib(daqing, "2025-04..2025-05", "pension")),
			wantFact:    "pension insurance: 5 months in 大庆市市区 (2024-12 … 2025-05, none counted for 2025-03)",
			wantMissing: "7 more months of pension insurance in 大庆市市区", wantQualifiesOn: "2025-12-01",
		},
		{
			// 在当地参加: months paid in Harbin and carried over to Daqing by
			// a transfer (转移接续) count in Daqing, as do those paid there.
			name:      "local: months carried in by a transfer count",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2024-02-10",
			events: evs(contrib("230103", "2023-01..2023-11", "pension"), insuranceTransferred("2023-12-05", "230103", daqing),
				contrib(daqing, "2023-12..2024-01", "pension")),
			wantMet:  true,
			wantFact: "pension insurance: 13 months in 大庆市市区 (2023-01 … 2024-01), 11 of them carried here by a transfer (转移接续)",
		},
		{
			name:      "local: without a transfer, months paid elsewhere do not count",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2024-02-10",
			events:    evs(contrib("230103", "2023-01..2023-11", "pension"), contrib(daqing, "2023-12..2024-01", "pension")),
			wantFact:  "pension insurance: 2 months in 大庆市市区 (2023-12 … 2024-01)",
			// Still paying: the twelfth month is 2024-11.
			wantMissing: "10 more months of pension insurance in 大庆市市区", wantQualifiesOn: "2024-11-01",
		},
		{
			name:        "local: a transfer out takes the months away",
			condition:   "{kinds: [pension], min_months: 12}",
			asOf:        "2024-02-10",
			events:      evs(contrib(daqing, "2023-01..2023-11", "pension"), insuranceTransferred("2023-12-05", daqing, "230103")),
			wantFact:    "pension insurance: 0 months in 大庆市市区",
			wantMissing: "12 more months of pension insurance in 大庆市市区",
		},
		{
			name:      "local: a month of the old region recorded late still follows the transfer",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2024-02-10",
			events: evs(contrib("230103", "2023-01..2023-10", "pension"), insuranceTransferred("2023-12-05", "230103", daqing),
				registeredOn("2024-01-20", contrib("230103", "2023-11..2023-11", "pension")), contrib(daqing, "2023-12..2024-01", "pension")),
			wantMet:  true,
			wantFact: "pension insurance: 13 months in 大庆市市区 (2023-01 … 2024-01), 11 of them carried here by a transfer (转移接续)",
		},
		{
			// A month paid in two regions (a job change mid-month, a
			// correction recorded later) was paid in the place too.
			name:      "local: a month also paid elsewhere, recorded later, still counts here",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2024-03-10",
			events: evs(contrib("230103", "2023-01..2023-02", "pension"), contrib(daqing, "2023-03..2024-02", "pension"),
				registeredOn("2023-04-20", contrib("230103", "2023-03..2023-03", "pension"))),
			wantMet:  true,
			wantFact: "pension insurance: 12 months in 大庆市市区 (2023-03 … 2024-02)",
		},
		{
			name:      "local: the same month, recorded elsewhere first, counts here",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2024-03-10",
			events:    evs(contrib("230103", "2023-01..2023-03", "pension"), contrib(daqing, "2023-03..2024-02", "pension")),
			wantMet:   true,
			wantFact:  "pension insurance: 12 months in 大庆市市区 (2023-03 … 2024-02)",
		},
		{
			name:      "anywhere: a month paid in two regions counts once",
			condition: "{kinds: [pension], min_months: 15, local: false}",
			asOf:      "2024-03-10",
			events:    evs(contrib("230103", "2023-01..2023-03", "pension"), contrib(daqing, "2023-03..2024-02", "pension")),
			wantFact:  "pension insurance: 14 months (2023-01 … 2024-02)",
			// Still paying: the fifteenth month is this one, counted from tomorrow.
			wantMissing: "1 more month of pension insurance", wantQualifiesOn: "2024-03-11",
		},
		{
			// Daqing's city-level agency records 230600, no district: it
			// counts in the districts, and a month also recorded in a
			// district is that district's.
			name:      "local: months recorded at the city's prefecture-level code count, those also in a district as the district's",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2024-01-10",
			events:    evs(contrib("230600", "2023-01..2023-12", "pension"), contrib(daqing, "2023-07..2023-12", "pension")),
			wantMet:   true,
			wantFact: "pension insurance: 12 months in 大庆市市区 (2023-01 … 2023-12), " +
				"6 of them recorded at 230600 (prefecture-level, no district named: counted in 大庆市市区)",
		},
		{
			// The transfer carries the Harbin months to Daqing; the month
			// also paid in Daqing is Daqing's own, not one carried there.
			name:      "local: a month paid in both regions and then carried counts once, as paid here",
			condition: "{kinds: [pension], min_months: 12}",
			asOf:      "2024-03-10",
			events: evs(contrib("230103", "2023-01..2023-03", "pension"), contrib(daqing, "2023-03..2024-02", "pension"),
				insuranceTransferred("2024-02-05", "230103", daqing)),
			wantMet:  true,
			wantFact: "pension insurance: 14 months in 大庆市市区 (2023-01 … 2024-02), 2 of them carried here by a transfer (转移接续)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := strings.Replace(validPolicy, "{kinds: [pension], min_months: 24}", tt.condition, 1)
			cat, err := eligibility.Load(fstest.MapFS{"test/city.yaml": {Data: []byte(policy)}})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := cat.Policy("test/city")
			r := eligibility.RunCase(p, eligibility.Case{AsOf: tt.asOf, Person: outsider, Events: tt.events})
			var cr *eligibility.ConditionResult
			for i := range r.Decision.Conditions {
				if r.Decision.Conditions[i].ID == "insurance" {
					cr = &r.Decision.Conditions[i]
				}
			}
			if cr == nil {
				t.Fatalf("no insurance condition in %+v", r.Decision.Conditions)
			}
			if cr.Met != tt.wantMet || r.Decision.Eligible != tt.wantMet {
				t.Errorf("met = %t, eligible = %t, want %t (missing: %s)", cr.Met, r.Decision.Eligible, tt.wantMet, cr.Missing)
			}
			var facts []string
			for _, f := range cr.Facts {
				facts = append(facts, f.Text)
			}
			if !strings.Contains(strings.Join(facts, "\n"), tt.wantFact) {
				t.Errorf("facts %q do not contain %q", facts, tt.wantFact)
			}
			if cr.Missing != tt.wantMissing {
				t.Errorf("missing = %q, want %q", cr.Missing, tt.wantMissing)
			}
			if r.Decision.QualifiesOn != tt.wantQualifiesOn {
				t.Errorf("qualifies_on = %q, want %q", r.Decision.QualifiesOn, tt.wantQualifiesOn)
			}
		})
	}
}
