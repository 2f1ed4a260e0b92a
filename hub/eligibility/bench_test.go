package eligibility_test

import (
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
)

// BenchmarkEvaluate measures evaluations per second of one person with a
// realistic history: 36 months of contributions to three insurances, two
// leases, two contracts, a graduation and a marriage (about 300 changes).
func BenchmarkEvaluate(b *testing.B) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		b.Fatal(err)
	}
	c := eligibility.Case{AsOf: "2025-01-20", Person: outsider,
		Family: []eligibility.CasePerson{{BirthDate: "1991-01-01", Hukou: ruralSuihua, MarriedOn: "2018-01-01"}},
		Events: evs(graduated("21", "2012-07-01"), contract("C1", "230602", "2021-01-01", "2022-12-31"), contract("C2", "230603", "2023-01-05", ""),
			lease("L1", daqingAddr, "2021-01-01", "2022-06-30"), lease("L2", "230603001001", "2022-07-01", ""),
			contrib("230602", "2022-01..2024-12", "pension", "medical", "unemployment"))}
	for range 7 { // resent injury months, as a department correcting its data would send them
		c.Events = append(c.Events, contrib("230602", "2022-01..2024-12", "injury"))
	}
	subj, family, err := c.Build()
	if err != nil {
		b.Fatal(err)
	}
	asOf, _ := eligibility.AsOfDay(c.AsOf)
	p, _ := cat.Policy("heilongjiang/daqing")
	b.Logf("history: %d changes", len(subj.History))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := eligibility.Evaluate(p, subj, family, asOf)
		if !d.Eligible {
			b.Fatal("not eligible")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}
