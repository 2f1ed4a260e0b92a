package synth

import (
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestHouseholds: as registered, a household has one head (户主); a
// spouse (配偶), married to the head before the window; and children (子
// for sons, 女 for daughters), unmarried when the window opens, born when
// both parents were 20 to 35, less than 15 years apart from each other;
// so the hub's presumptions from age gaps within a household (15 years or
// more: parent and child, 36 or more: grandparent) find exactly the
// parents and children. Babies and minors are their parents' children;
// nobody marries a member of their household but its head and spouse.
func TestHouseholds(t *testing.T) {
	type member struct {
		id       citizenid.ID
		relation string
		reg      time.Time
	}
	households := map[string][]member{}
	type wedding struct {
		spouse citizenid.ID
		at     time.Time
	}
	weddings := map[citizenid.ID][]wedding{}
	householdOf := map[citizenid.ID]string{}
	for _, ev := range testPopulation(t) {
		switch d := ev.Payload.(type) {
		case *schemas.HukouRegisteredData:
			if d.Reason == "restored" {
				if householdOf[ev.Subject] != d.HouseholdID {
					t.Errorf("%s: restored into another household", ev.ID)
				}
				continue
			}
			households[d.HouseholdID] = append(households[d.HouseholdID], member{ev.Subject, d.Relation, ev.Time})
			householdOf[ev.Subject] = d.HouseholdID
		case *schemas.MarriageRegisteredData:
			weddings[ev.Subject] = append(weddings[ev.Subject], wedding{d.SpouseID, ev.Time})
		}
	}
	marriedBefore := func(a, b citizenid.ID, t time.Time) bool {
		for _, w := range weddings[a] {
			if (b == "" || w.spouse == b) && w.at.Before(t) {
				return true
			}
		}
		return false
	}
	// yearsApart is whole years from the earlier birth to the later.
	yearsApart := func(a, b citizenid.ID) int {
		x, y := birthOf(a), birthOf(b)
		if y.Before(x) {
			x, y = y, x
		}
		n := 0
		for !x.AddDate(n+1, 0, 0).After(y) {
			n++
		}
		return n
	}
	members, withSpouse, threeOrMore := 0, 0, 0
	for hh, ms := range households {
		members += len(ms)
		if len(ms) >= 3 {
			threeOrMore++
		}
		var head, spouse *member
		var children []member
		for i, m := range ms {
			switch m.relation {
			case "户主":
				if head != nil {
					t.Fatalf("household %s has two heads", hh)
				}
				head = &ms[i]
			case "配偶":
				if spouse != nil {
					t.Fatalf("household %s has two spouses", hh)
				}
				spouse = &ms[i]
			case "子", "女":
				if want := map[string]string{"子": "1", "女": "2"}[m.relation]; m.id.Gender() != want {
					t.Fatalf("household %s: a %s of gender %s", hh, m.relation, m.id.Gender())
				}
				children = append(children, m)
			default:
				t.Fatalf("household %s: relation %q", hh, m.relation)
			}
		}
		if head == nil {
			t.Fatalf("household %s has no head: %v", hh, ms)
		}
		if spouse != nil {
			withSpouse++
			if !marriedBefore(spouse.id, head.id, defaultStart) {
				t.Fatalf("household %s: the spouse is not married to the head when the window opens", hh)
			}
			if yearsApart(head.id, spouse.id) >= 15 {
				t.Fatalf("household %s: head and spouse %d years apart", hh, yearsApart(head.id, spouse.id))
			}
		}
		for i, c := range children {
			for _, parent := range []*member{head, spouse} {
				if parent == nil {
					continue
				}
				if b := birthOf(c.id); b.Before(birthOf(parent.id).AddDate(20, 0, 0)) || !b.Before(birthOf(parent.id).AddDate(36, 0, 0)) {
					t.Fatalf("household %s: a child born %s of a parent born %s", hh, b.Format(time.DateOnly), birthOf(parent.id).Format(time.DateOnly))
				}
			}
			if !c.reg.After(head.reg) {
				t.Fatalf("household %s: a child registered before the head", hh)
			}
			if marriedBefore(c.id, "", defaultStart) {
				t.Fatalf("household %s: a child married before the window", hh)
			}
			for _, d := range children[:i] {
				if yearsApart(c.id, d.id) >= 15 {
					t.Fatalf("household %s: children %d years apart", hh, yearsApart(c.id, d.id))
				}
			}
		}
		for _, a := range ms {
			for _, w := range weddings[a.id] {
				if householdOf[w.spouse] == hh && !(a.relation == "户主" || a.relation == "配偶") {
					t.Fatalf("household %s: a %s marries a member", hh, a.relation)
				}
			}
		}
	}
	// Babies and minors live with their parents (but for the first persons,
	// who have few pairs before them to be the children of).
	minors, atHome := 0, 0
	for id, hh := range householdOf {
		if birthOf(id).After(defaultStart.AddDate(-18, 0, 0)) {
			minors++
			for _, m := range households[hh] {
				if m.id == id && (m.relation == "子" || m.relation == "女") {
					atHome++
				}
			}
		}
	}
	if atHome < minors*99/100 {
		t.Errorf("%d of %d minors registered as a child of the household", atHome, minors)
	}
	n := len(households)
	t.Logf("%d persons in %d households (%.2f each), %d with a spouse, %d of three or more", members, n, float64(members)/float64(n), withSpouse, threeOrMore)
	if size := float64(members) / float64(n); size < 1.8 || size > 3.5 || withSpouse < n/4 || threeOrMore < n/6 {
		t.Errorf("%d persons in %d households, %d with a spouse, %d of three or more", members, n, withSpouse, threeOrMore)
	}
}
