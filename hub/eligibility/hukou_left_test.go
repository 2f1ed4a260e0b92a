package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

// TestHukouLeftByAMigrationCitesIt: a person whose records predate the hub
// and whose first hukou event is a migration was registered, before it, at
// the address it moved them from. A decision for a day before the
// migration says so, and must cite the migration, the only record naming
// that address, as every other fact cites its event.
func TestHukouLeftByAMigrationCitesIt(t *testing.T) {
	moved := eligibility.CaseEvent{Type: schemas.HukouMigrated, Time: "2025-06-01",
		Data: map[string]any{"from_address_code": ruralSuihua, "to_address_code": daqingAddr, "reason": "work"}}
	c := eligibility.Case{Name: "registered in 望奎 before moving to 大庆", AsOf: "2025-03-01",
		Person: eligibility.CasePerson{BirthDate: "1990-01-01"},
		Events: evs(contract("C1", "230602", "2024-01-01", ""), lease("L1", daqingAddr, "2023-01-01", ""),
			contrib("230602", "2023-01..2025-02", "pension"), moved)}
	subj, _, err := c.Build()
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for _, ch := range subj.History {
		if ch.Type == schemas.HukouMigrated {
			want = ch.EventID
		}
	}
	if want == "" {
		t.Fatal("premise: no migration in the history")
	}
	d := eligibility.RunCase(policy(t, "heilongjiang/daqing"), c).Decision
	var shown []eligibility.Fact
	for _, cr := range d.Conditions {
		for _, f := range cr.Facts {
			if strings.HasPrefix(f.Text, "hukou registered at "+ruralSuihua) {
				shown = append(shown, f)
			}
		}
	}
	if len(shown) == 0 {
		t.Fatalf("premise: no fact of the hukou at %s in %+v", ruralSuihua, d.Conditions)
	}
	for _, f := range shown {
		if f.EventID != want {
			t.Errorf("fact %q cites event %q; want the migration %s that names the address", f.Text, f.EventID, want)
		}
	}
}
