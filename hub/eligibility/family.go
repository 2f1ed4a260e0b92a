package eligibility

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
)

// FamilyMember is a relative who may settle with the applicant under the
// policy's wording (本人及其共同居住生活的配偶、未成年子女、父母…).
//
// The golden records carry a spouse link (Marital.SpouseID) but no parent
// links. The spouse is the one the applicant's marriage names, listed when
// the spouse's own record names the applicant too (the marriage register
// sends one event per spouse, and a copy may be missing or contradicted by
// a later divorce or remarriage), or, with no record of theirs held, for
// a clerk to confirm. Relations other than the spouse are presumed from
// what the records hold: a member of the applicant's household (same
// Hukou.HouseholdID at the same address, which also stands for
// 共同居住生活, living together)
// born 15 to 35 years after the applicant is presumed a child, and 15 or
// more years before a parent; a member of the spouse's household born 15
// or more years before the spouse is presumed a parent of the spouse. A
// member born 36 or more years after the applicant may be a child of an
// older parent or a grandchild: under a policy that names grandchildren
// (Chifeng's 孙子女) they are listed as a grandchild, under one that names
// only children as a child, within the policy's age or marital limit,
// with a basis saying which two it may be; never left out. Minor means
// under 18 full years on the evaluation day, the 18th birthday included; unmarried means no marriage on the
// member's own record, and the basis says so ("no marriage on their own
// record") rather than asserting it, since a marriage whose copy for them
// has not arrived is not seen. A member whose own record names the
// applicant as spouse is never presumed a child or parent by age; they
// are listed as the spouse (with a basis saying what the applicant's
// record shows instead and asking to confirm, when it does not name
// them), except when the applicant's record, as of the day, shows a
// divorce from them with no later marriage to them (whatever marriages
// or divorces follow it) or a marriage to another whose own record names
// the applicant too (or is not held here). Members between (siblings, others) are not
// listed. Basis says how each was matched, so that a clerk confirms it on
// the household register.
//
// A collective household (集体户: a university's, a factory's, a
// barracks'; collectiveHousehold) registers unrelated people under one
// household_id, and is no evidence of kinship: no member of it is presumed
// a child, grandchild or parent by age (a lecturer would be the parent of
// her 3,000 students), and Decision.FamilyNote says so, for the clerk to
// take relatives from the household register. The spouse is still listed
// by the marriage record, and a member by their own record naming the
// applicant as spouse.
//
// The hukou registration's relation (to the head of household) is used
// only as the applicant's own history gives it, to tell a collective
// household: the golden record does not keep it, and a decision for today
// reads relatives' records without their histories (the spouse's alone
// excepted).
type FamilyMember struct {
	CitizenID citizenid.ID `json:"citizen_id"`
	Name      string       `json:"name,omitempty"`
	Relation  string       `json:"relation"`
	Basis     string       `json:"basis"`
}

// collectiveSize is the most members a household read as a family has;
// one with more is read as a collective household. A family household in
// China has 2.6 members on average (2020 census) and one of ten or more is
// a rarity; four generations of a large family stay under 30, while a
// collective household of a school, unit or factory has dozens to
// thousands of members. A collective household of 30 or fewer is
// recognised only by the applicant's registration (collectiveRelation).
const collectiveSize = 30

// collectiveHousehold reports, as a note for the clerk, why the household
// hh, with members active members besides the person (whose = "the
// applicant's" or "the spouse's"), is read as a collective household: its
// size, or the relation of the applicant's registration (relation, ""
// for the spouse's). "" when it is read as a family.
func collectiveHousehold(whose string, members int, relation string) string {
	const presumes = "no member of it is presumed a relative by age; take relatives from the household register"
	switch {
	case members+1 > collectiveSize:
		return fmt.Sprintf("%s household has %d active members, more than a family household has (%d): read as a collective household (集体户), %s",
			whose, members+1, collectiveSize, presumes)
	case collectiveRelation(relation):
		return fmt.Sprintf("%s registration gives the relation to the head of household as %q, a member of a collective household (集体户): %s", whose, relation, presumes)
	}
	return ""
}

// collectiveRelation reports whether a registration's relation to the head
// of household marks a member of a collective household: 集体户 in any
// wording (集体户成员, 集体户口). The relation is free text of up to 32
// characters (户主, 配偶, 子, 女 or a code); nothing else in it tells a
// collective household from a family.
func collectiveRelation(relation string) bool { return strings.Contains(relation, "集体") }

// Generation gaps, in years, for presuming relations by age.
const (
	generationYears      = 15
	grandGenerationYears = 36
	adultAge             = 18
)

func birthOf(r *hub.Record) (time.Time, bool) {
	if r.Identity != nil {
		if t, ok := parseDay(r.Identity.BirthDate); ok {
			return t, true
		}
	}
	if len(r.CitizenID) == 18 {
		return r.CitizenID.BirthDate(), true
	}
	return time.Time{}, false
}

// yearsBetween counts whole years from a to b (negative when b is before a).
func yearsBetween(a, b time.Time) int {
	if b.Before(a) {
		return -yearsBetween(b, a)
	}
	return monthsBetween(a, b) / 12
}

// relativeAsOf is a relative's record as it stood on asOf, so that a
// past decision is not changed by a relative's later move, death or
// cancellation: the hukou (address and household, with the event it
// comes from as its provenance) and the status (with the event it rests
// on) are derived from their history by the rules used for the applicant
// (gather, statusAsOf), and
// so is the marriage (status and spouse, with its event as provenance),
// which decides who is an unmarried child and whether a spouse's own
// record shows the marriage to the applicant. A
// relative not yet registered by asOf has no hukou, and one not yet
// married is unmarried. A household the history does not give for that
// day is today's, as for the applicant. A hukou known only as the
// address a later migration moved the relative from (hukouBefore) has
// that migration as its provenance, returned as leftBy too (nil
// otherwise), so that a fact about it cites the one record naming it
// and says so, as the applicant's does (hukouFact). A record handed in
// without history stands as it is; the other sections stay as read
// today.
func relativeAsOf(s Subject, asOf time.Time) (r hub.Record, leftBy *hub.Change) {
	r = s.Record
	if len(s.History) == 0 {
		return r, nil
	}
	f := gather(&r, s.History, asOf)
	status, restsOn := statusAsOf(&r, s.History, asOf)
	switch {
	case restsOn != nil:
		// The status's provenance is the event of that day.
		r.Provenance = withProvenance(r.Provenance, schemas.SecStatus, s.History,
			evidence{source: restsOn.Source, eventID: restsOn.EventID})
	case status == hub.StatusActive:
		r.Provenance = withProvenance(r.Provenance, schemas.SecStatus, s.History, evidence{})
	}
	r.Status = status
	if f.maritalStatus != "" && (r.Marital == nil || r.Marital.Status != f.maritalStatus || r.Marital.SpouseID != f.spouse) {
		r.Marital = &hub.Marital{Status: f.maritalStatus, SpouseID: f.spouse}
	}
	if firstOf(s.History, schemas.MarriageRegistered, schemas.MarriageDivorced) != nil {
		// The marital section's provenance is the event of that day;
		// none before the first one.
		r.Provenance = withProvenance(r.Provenance, schemas.SecMarital, s.History, f.maritalEv)
	}
	if f.hukou == "" {
		r.Hukou = nil
		return r, nil
	}
	h := hub.Hukou{AddressCode: f.hukou, HouseholdID: f.household}
	if h.HouseholdID == "" && r.Hukou != nil {
		// The history does not say which household the relative was in
		// that day (their records predate the hub and their first event
		// is a migration): take today's, as familyOf does for the
		// applicant, or two people who moved together would be one
		// family after the move and strangers before it.
		h.HouseholdID = r.Hukou.HouseholdID
	}
	if len(f.hukou) >= 6 {
		h.RegionCode = f.hukou[:6]
	}
	if r.Hukou != nil && r.Hukou.AddressCode == f.hukou {
		h.UrbanRural, h.ClassCode = r.Hukou.UrbanRural, r.Hukou.ClassCode
	}
	switch {
	case f.hukouEv.eventID != "":
		r.Provenance = withProvenance(r.Provenance, schemas.SecHukou, s.History, f.hukouEv)
		if p, ok := r.Provenance[string(schemas.SecHukou)]; ok {
			h.Since = fmtDay(dayOf(p.Time))
		}
	case f.leftBy != nil:
		// Registered there before the migration, since a day no record
		// here says; today's provenance (a later migration, perhaps)
		// names neither the address nor the day.
		r.Provenance = withProvenance(r.Provenance, schemas.SecHukou, s.History,
			evidence{source: f.leftBy.Source, eventID: f.leftBy.EventID})
		leftBy = f.leftBy
	case r.Hukou != nil && r.Hukou.AddressCode == f.hukou:
		h.Since = r.Hukou.Since
	default:
		// An address other than today's that no event names: today's
		// provenance is not its.
		r.Provenance = withProvenance(r.Provenance, schemas.SecHukou, s.History, evidence{})
	}
	r.Hukou = &h
	return r, leftBy
}

// withProvenance is prov (not modified) with sec's provenance set to the
// change of history ev names, or removed when ev names none.
func withProvenance(prov map[string]hub.Provenance, sec schemas.Section, history []hub.Change, ev evidence) map[string]hub.Provenance {
	out := make(map[string]hub.Provenance, len(prov)+1)
	maps.Copy(out, prov)
	delete(out, string(sec))
	for _, c := range history {
		if ev.eventID != "" && c.Source == ev.source && c.EventID == ev.eventID {
			out[string(sec)] = hub.Provenance{Source: c.Source, EventID: c.EventID, Time: c.Time}
		}
	}
	return out
}

// marriageOnOwnRecord reports whether r's own marital section (as of the
// day decided, relativeAsOf) shows the marriage to applicant: the
// marriage register sends one event per spouse, and either may be late,
// missing, or followed by a divorce or remarriage the other's copy of
// which never arrived. When it does not, shows says what the section
// shows instead, in words for a clerk, another spouse's ID masked.
func marriageOnOwnRecord(r *hub.Record, applicant citizenid.ID) (shows string, ok bool) {
	m := r.Marital
	switch {
	case m == nil || m.Status == "" || m.Status == codes.MaritalUnmarried:
		return "shows no marriage", false
	case m.Status == codes.MaritalMarried && m.SpouseID == applicant:
		return "", true
	case m.Status == codes.MaritalMarried && m.SpouseID != "":
		return "names " + m.SpouseID.Masked() + " as spouse", false
	case m.Status == codes.MaritalMarried:
		return "shows a marriage naming no spouse", false
	case m.Status == codes.MaritalDivorced:
		return "shows a divorce", false
	}
	return "shows marital status " + m.Status + " (" + codes.Marital[m.Status] + ")", false
}

// familyOf is Decision.Family, and Decision.FamilyNote.
func familyOf(p *Policy, applicant *hub.Record, f *facts, family []hub.Record) ([]FamilyMember, string) {
	out := []FamilyMember{}
	allows := func(rel string) bool { return slices.Contains(p.Family, rel) }
	if len(p.Family) == 0 {
		return out, ""
	}
	seen := map[citizenid.ID]bool{applicant.CitizenID: true}
	var spouse *hub.Record
	// spouseStands: the applicant's record names a spouse whose own
	// record, when held here, names the applicant too.
	spouseStands := false
	if f.married && f.spouse != "" {
		// The spouse the applicant's record names is listed when their
		// own record (as of the day) names the applicant in turn; one
		// whose record shows another spouse, a divorce or no marriage is
		// not, nor presumed another relative by age. A spouse with no
		// record among the relatives read (none held here) is listed
		// for a clerk to confirm.
		seen[f.spouse] = true
		m := FamilyMember{CitizenID: f.spouse, Relation: "spouse", Basis: "spouse on the marriage record"}
		confirmed := true
		for i := range family {
			if family[i].CitizenID == f.spouse {
				spouse = &family[i]
				if spouse.Identity != nil {
					m.Name = spouse.Identity.Name
				}
				_, confirmed = marriageOnOwnRecord(spouse, applicant.CitizenID)
			}
		}
		if spouse == nil {
			m.Basis = "spouse on the applicant's marriage record; the spouse's own record is not held here: confirm with the marriage register"
		}
		if !confirmed {
			spouse = nil // nor are the parents of their household the spouse's
		}
		spouseStands = confirmed
		if allows("spouse") && confirmed && (spouse == nil || spouse.Status == hub.StatusActive) {
			out = append(out, m)
		}
	}
	born, byAge := birthOf(applicant)
	// As of the decision's day, as the relatives' are; what the history
	// does not give for that day, today's record does.
	household := householdKey{address: f.hukou, id: f.household}
	if applicant.Hukou != nil {
		if household.id == "" {
			household.id = applicant.Hukou.HouseholdID
		}
		if household.address == "" {
			household.address = applicant.Hukou.AddressCode
		}
	}
	var spouseHousehold householdKey
	var spouseBorn time.Time
	if spouse != nil {
		spouseHousehold = householdOf(spouse)
		spouseBorn, _ = birthOf(spouse)
	}
	// byAge (the applicant's birth known) and spouseBorn gate every
	// presumption by age below; a collective household presumes none.
	var notes []string
	if note := collectiveHousehold("the applicant's", householdSize(family, applicant.CitizenID, household), f.relation); note != "" {
		notes, byAge = append(notes, note), false
		if spouseHousehold == household {
			spouseBorn = time.Time{}
		}
	}
	if spouseHousehold.known() && spouseHousehold != household {
		if note := collectiveHousehold("the spouse's", householdSize(family, spouse.CitizenID, spouseHousehold), ""); note != "" {
			notes, spouseBorn = append(notes, note), time.Time{}
		}
	}
	for i := range family {
		r := &family[i]
		if seen[r.CitizenID] || r.Status != hub.StatusActive || !householdOf(r).known() {
			continue
		}
		name := ""
		if r.Identity != nil {
			name = r.Identity.Name
		}
		add := func(rel, basis string) {
			seen[r.CitizenID] = true
			out = append(out, FamilyMember{CitizenID: r.CitizenID, Name: name, Relation: rel, Basis: basis})
		}
		in := householdOf(r)
		member := in == household || in == spouseHousehold
		if _, spouse := marriageOnOwnRecord(r, applicant.CitizenID); spouse && member {
			// A member of the household whose own record names the
			// applicant as spouse (the copy for the applicant may be late
			// or missing): a spouse, never a child or parent by age, and
			// not even that when the applicant's own record shows a
			// divorce from them that no marriage to them follows, or a
			// marriage to another that stands.
			since, _ := parseDay(r.Marital.Since)
			if basis, ok := spouseByOwnRecord(f, r.CitizenID, since, spouseStands); ok && allows("spouse") {
				add("spouse", basis)
			}
			seen[r.CitizenID] = true
			continue
		}
		rb, known := birthOf(r)
		if !known {
			continue
		}
		if byAge && in == household {
			gap := yearsBetween(born, rb) // positive: younger than the applicant
			// Ages are full years (周岁), which complete the day after
			// the birthday (法释〔2006〕1号 第二条): on the 18th
			// birthday itself a child is still a minor, and one born on
			// 29 February still one on 28 February of a common year.
			age := yearsBetween(rb, f.asOf.AddDate(0, 0, -1))
			// Unmarried is what their own record shows: a marriage whose
			// copy for them has not arrived is not seen, so the basis
			// does not assert it where the record has no marital section.
			unmarried, unmarriedBasis := false, ""
			switch {
			case r.Marital == nil:
				unmarried, unmarriedBasis = true, ", no marriage on their own record"
			case r.Marital.Status == codes.MaritalUnmarried:
				unmarried, unmarriedBasis = true, ", unmarried on their own record"
			}
			basis := fmt.Sprintf("same household, born %d years %s the applicant", abs(gap), map[bool]string{true: "after", false: "before"}[gap >= 0])
			// Born two generations' gap after: a grandchild where the
			// policy names grandchildren; elsewhere a child of an older
			// parent as likely, listed as one for a clerk to confirm
			// rather than dropped.
			child := gap >= generationYears
			if gap >= grandGenerationYears {
				if allows("grandchildren") {
					add("grandchild", basis)
					continue
				}
				basis = fmt.Sprintf("same household, born %d years after the applicant: a child or a grandchild, to confirm on the register", gap)
			}
			switch {
			case child && allows("children"):
				add("child", basis)
			case child && age < adultAge && allows("minor_children"):
				add("child", fmt.Sprintf("%s, aged %d", basis, age))
			case child && unmarried && allows("unmarried_children"):
				add("child", basis+unmarriedBasis)
			case gap <= -generationYears && allows("parents"):
				add("parent", basis)
			}
			continue
		}
		if in == spouseHousehold && !spouseBorn.IsZero() &&
			yearsBetween(spouseBorn, rb) <= -generationYears && allows("spouse_parents") {
			add("spouse_parent", fmt.Sprintf("spouse's household, born %d years before the spouse", -yearsBetween(spouseBorn, rb)))
		}
	}
	// By relation, then eldest first, then by citizen ID: the relatives
	// come in the order they were read (today's household before that
	// day's, for a past day), and the same people must be listed alike
	// whenever the day is decided.
	births := make(map[citizenid.ID]time.Time, len(family))
	for i := range family {
		if b, ok := birthOf(&family[i]); ok {
			births[family[i].CitizenID] = b
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := relationOrder(a.Relation), relationOrder(b.Relation); ra != rb {
			return ra < rb
		}
		if ba, bb := births[a.CitizenID], births[b.CitizenID]; !ba.Equal(bb) {
			return ba.Before(bb)
		}
		return a.CitizenID < b.CitizenID
	})
	return out, strings.Join(notes, "; ")
}

// householdKey names a household: its id is unique only within its
// 12-digit address (the stores' household index reads the same id at two
// addresses as two households), so a spouse's household elsewhere that
// happens to carry the applicant's id is another one.
type householdKey struct{ address, id string }

// householdOf is the household r is registered in (as of the day
// decided, relativeAsOf); zero when none is known.
func householdOf(r *hub.Record) householdKey {
	if r.Hukou == nil || r.Hukou.HouseholdID == "" {
		return householdKey{}
	}
	return householdKey{address: r.Hukou.AddressCode, id: r.Hukou.HouseholdID}
}

// known reports whether k names a household.
func (k householdKey) known() bool { return k.id != "" }

// householdSize counts the active members of family in household hh, but
// for the person: those whose hukou was cancelled (death, emigration)
// stay in the household's records, but neither live in it nor are listed
// from it, and a family that lost 11 of them is no collective household.
// For a past day the records carry the status of that day (relativeAsOf).
func householdSize(family []hub.Record, person citizenid.ID, hh householdKey) int {
	n := 0
	for i := range family {
		if r := &family[i]; r.CitizenID != person && r.Status == hub.StatusActive && hh.known() && householdOf(r) == hh {
			n++
		}
	}
	return n
}

// spouseByOwnRecord is the basis of member, a household member whose own
// record names the applicant as spouse, listed as the spouse for a clerk
// to confirm, saying truthfully what the applicant's record (f, as of the
// day) shows instead; ok is false when that record speaks against them: a
// divorce from member, on or after the marriage member's own record shows
// (since), that no later marriage to them follows (whatever the applicant
// did after it, another marriage or divorce included), or
// a marriage to another spouse that stands (spouseStands: that spouse's
// own record names the applicant too, or is not held here), since the
// copy the member's record lacks is then the divorce or the other
// marriage, not the applicant's.
func spouseByOwnRecord(f *facts, member citizenid.ID, since time.Time, spouseStands bool) (basis string, ok bool) {
	// A divorce from member on or after the marriage their record shows
	// is one whose copy for them is missing; one before it, a marriage
	// again (复婚) whose copy for the applicant is: listed to confirm.
	remarried := ""
	if on, divorced := f.divorces[member]; divorced {
		if !since.After(on) {
			return "", false
		}
		remarried = "; it shows a divorce from them (" + fmtDay(on) + ") before the marriage to the applicant their own record shows (" + fmtDay(since) + ")"
	}
	// earlier: a marriage to member on the applicant's record that a
	// marriage to another followed with no divorce from member.
	earlier := ""
	if on, married := f.marriedOn[member]; married && remarried == "" {
		earlier = ", and an earlier marriage to them (" + fmtDay(on) + ") that no divorce from them ended"
	}
	var shows string
	switch {
	case f.married && f.spouse != "" && spouseStands:
		return "", false
	case f.married && f.spouse != "":
		shows = "names " + f.spouse.Masked() + " as spouse, whose own record does not name the applicant" + earlier
	case f.married:
		shows = "shows a marriage naming no spouse" + earlier
	case f.maritalStatus == codes.MaritalDivorced && f.divorcedFrom == member && remarried != "":
		shows, remarried = "shows a divorce from them ("+fmtDay(f.divorcedOn)+"), before the marriage to the applicant their own record shows ("+fmtDay(since)+")", ""
	case f.maritalStatus == codes.MaritalDivorced:
		shows = "shows a divorce"
		if f.divorcedFrom != "" {
			shows += " from " + f.divorcedFrom.Masked()
		}
		if !f.divorcedOn.IsZero() {
			shows += " (" + fmtDay(f.divorcedOn) + ")"
		}
		if earlier != "" {
			shows += earlier
		} else {
			shows += " and no marriage to them"
		}
	case f.maritalStatus == "" || f.maritalStatus == codes.MaritalUnmarried:
		shows = "shows no marriage to them"
	default:
		shows = "shows marital status " + f.maritalStatus + " (" + codes.Marital[f.maritalStatus] + ")"
	}
	return "names the applicant as spouse on their own marriage record; the applicant's record " + shows + remarried +
		": confirm with the marriage register", true
}

func relationOrder(r string) int {
	return slices.Index([]string{"spouse", "child", "grandchild", "parent", "spouse_parent"}, r)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
