package eligibility_test

import (
	"encoding/json"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
)

// TestFamilyOrderDoesNotDependOnTheReadOrder: two children of one
// household are listed in the order the relatives were read, not in an
// order of their own: the same persons read in another order (a past day
// re-decided during an appeal reads that day's household after today's,
// Decide's "more") give another answer, which a comparison of the archived
// answer with the re-decided one reports as a difference.
func TestFamilyOrderDoesNotDependOnTheReadOrder(t *testing.T) {
	p := policy(t, "jilin/counties")
	c := eligibility.Case{Name: "two children", AsOf: "2024-01-02",
		Person: eligibility.CasePerson{BirthDate: "1980-01-01", Hukou: ruralSuihua, Household: "H1"},
		Family: []eligibility.CasePerson{
			{BirthDate: "2012-01-01", Hukou: ruralSuihua, Household: "H1"},
			{BirthDate: "2005-01-01", Hukou: ruralSuihua, Household: "H1"},
		},
		Events: evs(lease("L1", yongjiTown, "2024-01-01", ""))}
	subj, fam, err := c.Build()
	if err != nil {
		t.Fatal(err)
	}
	asOf := asOfDay(t, c.AsOf)
	first := eligibility.Evaluate(p, subj, fam, asOf)
	if len(first.Family) != 2 {
		t.Fatalf("premise: two children listed, got %+v", first.Family)
	}
	reversed := []eligibility.Subject{fam[1], fam[0]}
	second := eligibility.Evaluate(p, subj, reversed, asOf)
	a, _ := json.Marshal(first.Family)
	b, _ := json.Marshal(second.Family)
	if string(a) != string(b) {
		t.Errorf("the same relatives read in another order give another answer:\n%s\n%s", a, b)
	}
}
