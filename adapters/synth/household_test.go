package synth

import (
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestHouseholds: as registered when the window opens (and for those
// registered in it, as registered), a household has one head (户主); a
// spouse (配偶), who joined it after marrying the head, before the window;
// and children (子 for sons, 女 for daughters), unmarried when the window
// opens, born when both parents were 20 to 35, less than 15 years apart
// from each other; so the hub's presumptions from age gaps within a
// household (15 years or more: parent and child, 36 or more: grandparent)
// find exactly the parents and children. Babies and minors are their
// parents' children; nobody marries a member of their household but its
// head and spouse.
func TestHouseholds(t *testing.T) {
	type member struct {
		id       citizenid.ID
		relation string
		reg      time.Time // when registered into the household, or moved into it
	}
	type wedding struct {
		spouse citizenid.ID
		at     time.Time
	}
	weddings := map[citizenid.ID][]wedding{}
	householdOf := map[citizenid.ID]string{}
	memberOf := map[citizenid.ID]member{}
	for _, ev := range testPopulation(t) {
		switch d := ev.Payload.(type) {
		case *schemas.HukouRegisteredData:
			if d.Reason == "restored" {
				if householdOf[ev.Subject] != d.HouseholdID {
					t.Errorf("%s: restored into another household", ev.ID)
				}
				continue
			}
			memberOf[ev.Subject] = member{ev.Subject, d.Relation, ev.Time}
			householdOf[ev.Subject] = d.HouseholdID
		case *schemas.HukouMigratedData:
			if !ev.Time.Before(defaultStart) {
				continue
			}
			// Before the window, only wives move: into the husband's
			// household (TestFirstRegistration checks whose).
			if d.Reason != "family" || ev.Subject.Gender() != "2" {
				t.Fatalf("%s: a %s migration before the window", ev.ID, d.Reason)
			}
			memberOf[ev.Subject] = member{ev.Subject, "配偶", ev.Time}
			householdOf[ev.Subject] = d.HouseholdID
		case *schemas.MarriageRegisteredData:
			weddings[ev.Subject] = append(weddings[ev.Subject], wedding{d.SpouseID, ev.Time})
		}
	}
	households := map[string][]member{}
	for id, hh := range householdOf {
		households[hh] = append(households[hh], memberOf[id])
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
			if !marriedBefore(spouse.id, head.id, spouse.reg.Add(time.Minute)) || !spouse.reg.Before(defaultStart) {
				t.Fatalf("household %s: the spouse joined it before marrying the head, or in the window", hh)
			}
			if !spouse.reg.After(head.reg) {
				t.Fatalf("household %s: the spouse joined it before the head was registered", hh)
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

// TestFirstRegistration: a person's first hukou.registered takes effect
// within six weeks of the birth, at an address in the county of the ID,
// as a child (子, 女) or the head (户主) of a household of their own; or at
// a settlement from 18 on; or, for the few without hukou, in the window.
// Nobody is a spouse (配偶) in a household before marrying its head: a
// wife moves her hukou into the husband's household (hukou.migrated,
// family) within six months of the wedding, or of the later registration
// when one of them settled after it, or she settles into it as his
// spouse; and a couple married before the window is one household when
// it opens, the husband's.
func TestFirstRegistration(t *testing.T) {
	type stay struct {
		at        time.Time
		household string
	}
	type wedding struct {
		spouse citizenid.ID
		at     time.Time
	}
	first := map[citizenid.ID]schemas.Event{}
	stays := map[citizenid.ID][]stay{} // in time order: each person's events are
	weddings := map[citizenid.ID][]wedding{}
	divorced := map[citizenid.ID]time.Time{}
	var joins, spouses []schemas.Event // family migrations, registrations as a spouse
	for _, ev := range testPopulation(t) {
		switch d := ev.Payload.(type) {
		case *schemas.HukouRegisteredData:
			if _, ok := first[ev.Subject]; !ok {
				first[ev.Subject] = ev
			}
			stays[ev.Subject] = append(stays[ev.Subject], stay{ev.Time, d.HouseholdID})
			if d.Relation == "配偶" {
				spouses = append(spouses, ev)
			}
		case *schemas.HukouMigratedData:
			stays[ev.Subject] = append(stays[ev.Subject], stay{ev.Time, d.HouseholdID})
			if d.Reason == "family" {
				joins = append(joins, ev)
			}
		case *schemas.MarriageRegisteredData:
			weddings[ev.Subject] = append(weddings[ev.Subject], wedding{d.SpouseID, ev.Time})
		case *schemas.MarriageDivorcedData:
			divorced[ev.Subject] = ev.Time
		}
	}
	householdAt := func(id citizenid.ID, at time.Time) string {
		hh := ""
		for _, s := range stays[id] {
			if !s.at.After(at) {
				hh = s.household
			}
		}
		return hh
	}
	// weddingBefore is the person's last wedding at or before at.
	weddingBefore := func(id citizenid.ID, at time.Time) (wedding, bool) {
		var w wedding
		ok := false
		for _, x := range weddings[id] {
			if !x.at.After(at) {
				w, ok = x, true
			}
		}
		return w, ok
	}

	byReason := map[string]int{}
	for id, ev := range first {
		d := ev.Payload.(*schemas.HukouRegisteredData)
		byReason[d.Reason]++
		birth := birthOf(id)
		switch d.Reason {
		case "birth":
			if ev.Time.Before(birth) || ev.Time.After(birth.AddDate(0, 0, 42)) {
				t.Fatalf("%s: registered at birth on %s, born %s", ev.ID, day(ev.Time), day(birth))
			}
			if got := d.AddressCode[:6]; got != id.CountyCode() {
				t.Fatalf("%s: registered at birth in county %s, the ID's is %s", ev.ID, got, id.CountyCode())
			}
			if d.Relation != "户主" && d.Relation != "子" && d.Relation != "女" {
				t.Fatalf("%s: registered at birth as %s", ev.ID, d.Relation)
			}
		case "settlement":
			if ev.Time.Before(birth.AddDate(18, 0, 0)) {
				t.Fatalf("%s: settled on %s, born %s", ev.ID, day(ev.Time), day(birth))
			}
		case "other":
			if ev.Time.Before(defaultStart) {
				t.Fatalf("%s: registered for another reason before the window", ev.ID)
			}
		default:
			t.Fatalf("%s: first registered for reason %q", ev.ID, d.Reason)
		}
	}
	if byReason["birth"] < len(first)*3/4 || byReason["settlement"] == 0 || byReason["other"] == 0 {
		t.Errorf("first registrations by reason: %v", byReason)
	}

	for _, ev := range spouses {
		w, ok := weddingBefore(ev.Subject, ev.Time)
		if !ok {
			t.Fatalf("%s: registered as a spouse (配偶) before marrying", ev.ID)
		}
		if d := ev.Payload.(*schemas.HukouRegisteredData); d.HouseholdID != householdAt(w.spouse, ev.Time) {
			t.Fatalf("%s: registered as a spouse in a household not the husband's", ev.ID)
		}
	}
	before := 0
	for _, ev := range joins {
		d := ev.Payload.(*schemas.HukouMigratedData)
		w, ok := weddingBefore(ev.Subject, ev.Time)
		if !ok || ev.Subject.Gender() != "2" {
			t.Fatalf("%s: a family migration but for a wife after her wedding", ev.ID)
		}
		if d.HouseholdID != householdAt(w.spouse, ev.Time) {
			t.Fatalf("%s: the wife moves into %s, the husband is in %s", ev.ID, d.HouseholdID, householdAt(w.spouse, ev.Time))
		}
		from := w.at
		for _, id := range []citizenid.ID{ev.Subject, w.spouse} {
			if f := first[id].Time; f.After(from) {
				from = f
			}
		}
		if ev.Time.After(from.AddDate(0, 6, 1)) {
			t.Fatalf("%s: the wife moves on %s, after a wedding on %s", ev.ID, day(ev.Time), day(w.at))
		}
		if ev.Time.Before(defaultStart) {
			before++
		}
	}
	couples := 0
	for id, ws := range weddings {
		if id.Gender() != "2" || len(ws) == 0 || !ws[0].at.Before(defaultStart) || divorced[id].Before(defaultStart) && !divorced[id].IsZero() {
			continue
		}
		husband := ws[0].spouse
		if f, ok := first[husband]; !ok || !f.Time.Before(defaultStart) || !first[id].Time.Before(defaultStart) {
			continue // one of them without hukou when the window opens
		}
		couples++
		if a, b := householdAt(id, defaultStart), householdAt(husband, defaultStart); a != b {
			t.Fatalf("a wife married on %s is in household %s when the window opens, the husband in %s", day(ws[0].at), a, b)
		}
	}
	t.Logf("first registrations %v; %d couples married before the window; %d wives moved in before it, %d in it; %d settled as a spouse",
		byReason, couples, before, len(joins)-before, len(spouses))
	if couples < len(first)/10 || before < couples*3/4 || len(joins) == before {
		t.Errorf("%d couples married before the window, %d wives moved into the husband's household before it, %d in it", couples, before, len(joins)-before)
	}
}
