package eligibility_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestReunionWithoutAHomeOfOnesOwn: 赤政发〔2016〕50号 二（一）1 counts as a
// 合法稳定住所 a titled home the person "实际居住", "政府、单位或个人授权使用的各类商品房"
// included, and （1）投靠类 is "不受投靠人年龄、婚否、参加城镇社会保险和住房面积等其他条件限制":
// a spouse who lives in the partner's home joins them without owning or
// renting anything. The hub cannot see which home the couple lives in, so
// the family-reunion route does not ask for the applicant's own, and the
// met clause names the home as a fact for a clerk to confirm.
func TestReunionWithoutAHomeOfOnesOwn(t *testing.T) {
	wife := eligibility.CasePerson{BirthDate: "1992-03-01", Hukou: ruralSuihua}
	husband := func(hukou string) []eligibility.CasePerson {
		return []eligibility.CasePerson{{BirthDate: "1990-01-01", Hukou: hukou, Household: "H7", MarriedOn: "2020-01-01"}}
	}
	tests := []struct {
		name     string
		family   []eligibility.CasePerson
		eligible bool
	}{
		{"joins a husband registered in 红山区, living in his home", husband(chifengAddr), true},
		{"a husband registered in a village is no one to join", husband(chifengVillage), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runShipped(t, "chifeng/central", eligibility.Case{
				Name: tt.name, AsOf: "2024-07-01", Person: wife, Family: tt.family,
				Expect: eligibility.CaseExpect{Eligible: tt.eligible, Conditions: map[string]bool{"family_reunion": tt.eligible}},
			})
			if !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
			if !tt.eligible {
				return
			}
			if r.Decision.Route != "family_reunion" {
				t.Errorf("route is %s, want family_reunion", r.Decision.Route)
			}
			confirm := false
			for _, c := range r.Decision.Conditions {
				for _, f := range c.Facts {
					confirm = confirm || c.ID == "family_reunion" && strings.Contains(f.Text, "to confirm")
				}
			}
			if !confirm {
				t.Error("family_reunion names no home for a clerk to confirm")
			}
		})
	}
}

// TestVillagerJoinsATownSpouse: 投靠类 (赤政发〔2016〕50号 二（一）1（1）)
// admits the spouse of a person of 镇区户籍 "不受…住房面积等其他条件限制", and
// a villager of Chifeng moving in with a spouse registered in one of its
// towns moves to a town address as much as one who rents there: on the
// family-reunion route the spouse's town registration is the town address
// the rural hukou moves to, stated for a clerk to confirm. The other
// routes still ask a villager for a town home of their own.
func TestVillagerJoinsATownSpouse(t *testing.T) {
	husband := func(hukou string) []eligibility.CasePerson {
		return []eligibility.CasePerson{{BirthDate: "1990-01-01", Hukou: hukou, Household: "H7", MarriedOn: "2020-01-01"}}
	}
	villager := eligibility.CasePerson{BirthDate: "1992-03-01", Hukou: chifengVillage}
	fromSuihua := eligibility.CasePerson{BirthDate: "1992-03-01", Hukou: ruralSuihua}
	tests := []struct {
		name     string
		person   eligibility.CasePerson
		family   []eligibility.CasePerson
		eligible bool
		// conditions are the clauses expected met or not.
		conditions map[string]bool
	}{
		{"a villager joins a husband registered in 红山区", villager, husband(chifengAddr), true,
			map[string]bool{"hukou_elsewhere_reunion": true, "family_reunion": true, "hukou_elsewhere": false}},
		{"a villager's husband registered in a village is no one to join", villager, husband(chifengVillage), false,
			map[string]bool{"hukou_elsewhere_reunion": false, "family_reunion": false, "hukou_elsewhere": false}},
		{"a person from outside joins a husband registered in 红山区", fromSuihua, husband(chifengAddr), true,
			map[string]bool{"hukou_elsewhere_reunion": true, "family_reunion": true, "hukou_elsewhere": true}},
		{"a person from outside, her husband registered in a village", fromSuihua, husband(chifengVillage), false,
			map[string]bool{"hukou_elsewhere_reunion": true, "family_reunion": false, "hukou_elsewhere": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runShipped(t, "chifeng/central", eligibility.Case{
				Name: tt.name, AsOf: "2024-07-01", Person: tt.person, Family: tt.family,
				Expect: eligibility.CaseExpect{Eligible: tt.eligible, Conditions: tt.conditions},
			})
			if !r.Passed {
				t.Errorf("%s", strings.Join(r.Problems, "; "))
			}
			if tt.eligible && r.Decision.Route != "family_reunion" {
				t.Errorf("route is %s, want family_reunion", r.Decision.Route)
			}
			for _, c := range r.Decision.Conditions {
				if c.ID != "hukou_elsewhere_reunion" || tt.person.Hukou != chifengVillage {
					continue
				}
				confirm := slices.ContainsFunc(c.Facts, func(f eligibility.Fact) bool { return strings.Contains(f.Text, "to confirm") })
				if c.Met != confirm {
					t.Errorf("%s met = %v but names a home to confirm = %v (facts %+v)", c.ID, c.Met, confirm, c.Facts)
				}
				if !c.Met && !strings.Contains(c.Missing, "or a spouse registered at one") {
					t.Errorf("%s missing is %q, want it to name a spouse registered at a town address", c.ID, c.Missing)
				}
			}
		})
	}
}

// TestVillagerJoinsTheSpouseOfThatDay: for a past day the town address a
// villager moves to with the spouse is the spouse's registration of that
// day, not today's, as for the family-reunion clause itself.
func TestVillagerJoinsTheSpouseOfThatDay(t *testing.T) {
	me, sp := storetest.ValidID(31), storetest.ValidID(32)
	register := func(who citizenid.ID, eid, addr, born string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, who, eid, on(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: born, Ethnicity: "01", AddressCode: addr, HouseholdID: "H31", Reason: "birth"})
	}
	migrate := func(from, to string) hub.Input {
		return storetest.Event(t, schemas.HukouMigrated, sp, "ps-m32", on(2024, 9, 1), schemas.HukouMigratedData{
			FromAddressCode: from, ToAddressCode: to, Reason: "family", HouseholdID: "H32"})
	}
	married := []hub.Input{
		storetest.Event(t, schemas.MarriageRegistered, me, "mz-m31", on(2020, 1, 1), schemas.MarriageRegisteredData{SpouseID: sp}),
		storetest.Event(t, schemas.MarriageRegistered, sp, "mz-m32", on(2020, 1, 1), schemas.MarriageRegisteredData{SpouseID: me}),
	}
	tests := []struct {
		name   string
		spouse []hub.Input
		// met is whether hukou_elsewhere_reunion holds, by day.
		met map[string]bool
	}{
		{"spouse moved into 红山区 after the day",
			[]hub.Input{register(sp, "ps-r32", chifengVillage, "1990-01-01"), migrate(chifengVillage, chifengAddr)},
			map[string]bool{"2024-07-01": false, "2024-09-01": true}},
		{"spouse moved back to the village after the day",
			[]hub.Input{register(sp, "ps-r32", chifengAddr, "1990-01-01"), migrate(chifengAddr, chifengVillage)},
			map[string]bool{"2024-07-01": true, "2024-09-01": false}},
	}
	p := policy(t, "chifeng/central")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]hub.Input{register(me, "ps-r31", chifengVillage, "1992-03-01")}, married...)
			subj := subjects(t, append(in, tt.spouse...))
			for day, want := range tt.met {
				d := eligibility.Evaluate(p, subj[me], []eligibility.Subject{subj[sp]}, asOfDay(t, day))
				for _, c := range d.Conditions {
					if c.ID == "hukou_elsewhere_reunion" && c.Met != want {
						t.Errorf("as of %s: %s met = %v, want %v (missing %q, facts %+v)", day, c.ID, c.Met, want, c.Missing, c.Facts)
					}
				}
				if d.Eligible != want {
					t.Errorf("as of %s: eligible = %v, want %v (route %s)", day, d.Eligible, want, d.Route)
				}
			}
		})
	}
}
