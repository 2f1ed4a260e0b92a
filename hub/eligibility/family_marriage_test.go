package eligibility_test

import (
	"slices"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestFamilyMemberOwnMarriage: relations other than the spouse are
// presumed from the household register by age, but a member's own
// marriage record comes first. A member whose own record names the
// applicant as spouse (the applicant's copy late or missing) is listed as
// the spouse, for a clerk to confirm, with a basis saying what the
// applicant's record shows instead, never as a child or parent; not even
// as the spouse when the applicant's own record shows a divorce from them
// that no marriage to them follows, whatever marriages or divorces of the
// applicant come after it, or a marriage to another that their record
// confirms (the member's copy of that divorce is the one missing); a
// basis never says the applicant's record shows no marriage to a member
// it shows a marriage to; and a
// child with no marital section on their own record is an unmarried child
// under 未婚子女 (吉市政发〔2015〕5号), with a basis saying that their own
// record shows no marriage rather than that they are unmarried: a
// marriage whose copy for them has not arrived is not seen.
func TestFamilyMemberOwnMarriage(t *testing.T) {
	me, member, other := storetest.ValidID(71), storetest.ValidID(72), storetest.ValidID(73)
	register := func(who citizenid.ID, eid, name, born, addr, household string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, who, eid, on(1995, 1, 1), schemas.HukouRegisteredData{
			Name: name, Gender: "1", BirthDate: born, Ethnicity: "01", AddressCode: addr, HouseholdID: household, Reason: "birth"})
	}
	marry := func(who, spouse citizenid.ID, eid string) hub.Input {
		return storetest.Event(t, schemas.MarriageRegistered, who, eid, on(2015, 1, 1), schemas.MarriageRegisteredData{SpouseID: spouse})
	}
	divorce := func(who, spouse citizenid.ID, eid string) hub.Input {
		return storetest.Event(t, schemas.MarriageDivorced, who, eid, on(2023, 1, 1), schemas.MarriageDivorcedData{SpouseID: spouse})
	}
	remarry := func(who, spouse citizenid.ID, eid string) hub.Input {
		return storetest.Event(t, schemas.MarriageRegistered, who, eid, on(2024, 1, 1), schemas.MarriageRegisteredData{SpouseID: spouse})
	}
	divorceLater := func(who, spouse citizenid.ID, eid string) hub.Input {
		return storetest.Event(t, schemas.MarriageDivorced, who, eid, on(2024, 3, 1), schemas.MarriageDivorcedData{SpouseID: spouse})
	}
	remarryLate := func(who, spouse citizenid.ID, eid string) hub.Input {
		return storetest.Event(t, schemas.MarriageRegistered, who, eid, on(2024, 6, 1), schemas.MarriageRegisteredData{SpouseID: spouse})
	}
	// third: a third person, married by the applicant after the member.
	third := storetest.ValidID(74)
	const missingCopy = "names the applicant as spouse on their own marriage record; the applicant's record shows no marriage to them: confirm with the marriage register"
	tests := []struct {
		name, policy, addr string
		born, memberBorn   string // the applicant's and the household member's
		marriages          []hub.Input
		want               []eligibility.FamilyMember
	}{
		{"a wife 20 years younger, only her own record shows the marriage", "chifeng/central", chifengAddr,
			"1970-01-01", "1990-01-01", []hub.Input{marry(member, me, "mz-m72")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: missingCopy}}},
		{"a husband 16 years older, only his own record shows the marriage", "chifeng/central", chifengAddr,
			"1990-01-01", "1974-01-01", []hub.Input{marry(member, me, "mz-m72")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: missingCopy}}},
		{"both records show the marriage", "chifeng/central", chifengAddr,
			"1970-01-01", "1990-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: "spouse on the marriage record"}}},
		{"a member names the applicant, whose marriage to another both records show", "chifeng/central", chifengAddr,
			"1970-01-01", "1990-01-01", []hub.Input{marry(me, other, "mz-m71"), marry(other, me, "mz-m73"), marry(member, me, "mz-m72")},
			[]eligibility.FamilyMember{{CitizenID: other, Name: "王强", Relation: "spouse", Basis: "spouse on the marriage record"}}},
		{"a member names the applicant, whose own record names another not naming them", "chifeng/central", chifengAddr,
			"1970-01-01", "1990-01-01", []hub.Input{marry(me, other, "mz-m71"), marry(member, me, "mz-m72")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: "names the applicant as spouse on their own marriage record; " +
				"the applicant's record names " + other.Masked() + " as spouse, whose own record does not name the applicant: confirm with the marriage register"}}},
		{"the applicant's record shows the divorce from the member, the member's copy missing", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"), divorce(me, member, "mz-d71")},
			[]eligibility.FamilyMember{}},
		{"the member's record shows the divorce, the applicant's copy missing", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"), divorce(member, me, "mz-d72")},
			[]eligibility.FamilyMember{}},
		{"the applicant divorced the member and remarried another, the member's copies missing", "chifeng/central", chifengAddr,
			"1970-01-01", "1990-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"), divorce(me, member, "mz-d71"),
				remarry(me, other, "mz-m73"), remarry(other, me, "mz-m74")},
			[]eligibility.FamilyMember{{CitizenID: other, Name: "王强", Relation: "spouse", Basis: "spouse on the marriage record"}}},
		{"the applicant divorced the member and remarried another not naming them, the member's copy of the divorce missing", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"), divorce(me, member, "mz-d71"),
				remarry(me, third, "mz-m75")},
			[]eligibility.FamilyMember{}},
		{"the applicant divorced the member, then married and divorced another, the member's copy of the first divorce missing", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"), divorce(me, member, "mz-d71"),
				remarry(me, third, "mz-m75"), remarry(third, me, "mz-m76"), divorceLater(me, third, "mz-d75"), divorceLater(third, me, "mz-d76")},
			[]eligibility.FamilyMember{}},
		{"the applicant divorced the member, then married them again, the member's copies of both missing", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"), divorce(me, member, "mz-d71"),
				remarry(me, member, "mz-m77")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: "spouse on the marriage record"}}},
		{"a divorce from the member after the applicant married another, which does not end that marriage", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"),
				remarry(me, third, "mz-m75"), divorceLater(me, member, "mz-d71")},
			[]eligibility.FamilyMember{}},
		{"the applicant married the member, then another not naming them, with no divorce from the member", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"), remarry(me, third, "mz-m75")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: "names the applicant as spouse on their own marriage record; " +
				"the applicant's record names " + third.Masked() + " as spouse, whose own record does not name the applicant, " +
				"and an earlier marriage to them (2015-01-01) that no divorce from them ended: confirm with the marriage register"}}},
		{"the applicant married the member, then married and divorced another, with no divorce from the member", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"),
				remarry(me, third, "mz-m75"), remarry(third, me, "mz-m76"), divorceLater(me, third, "mz-d75"), divorceLater(third, me, "mz-d76")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: "names the applicant as spouse on their own marriage record; " +
				"the applicant's record shows a divorce from " + third.Masked() + " (2024-03-01), " +
				"and an earlier marriage to them (2015-01-01) that no divorce from them ended: confirm with the marriage register"}}},
		{"a member names the applicant, whose record shows a divorce from another", "chifeng/central", chifengAddr,
			"1970-01-01", "1990-01-01", []hub.Input{marry(me, other, "mz-m71"), divorce(me, other, "mz-d71"), remarry(member, me, "mz-m72")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: "names the applicant as spouse on their own marriage record; " +
				"the applicant's record shows a divorce from " + other.Masked() + " (2023-01-01) and no marriage to them: confirm with the marriage register"}}},
		{"the applicant divorced the member, whose own record shows them married to the applicant again (复婚), the applicant's copy missing", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"), divorce(me, member, "mz-d71"),
				divorce(member, me, "mz-d72"), remarry(member, me, "mz-m78")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: "names the applicant as spouse on their own marriage record; " +
				"the applicant's record shows a divorce from them (2023-01-01), before the marriage to the applicant their own record shows (2024-01-01): confirm with the marriage register"}}},
		{"the same after the applicant married and divorced another in between", "chifeng/central", chifengAddr,
			"1970-01-01", "1972-01-01", []hub.Input{marry(me, member, "mz-m71"), marry(member, me, "mz-m72"), divorce(me, member, "mz-d71"),
				divorce(member, me, "mz-d72"), remarry(me, third, "mz-m75"), remarry(third, me, "mz-m76"), divorceLater(me, third, "mz-d75"),
				divorceLater(third, me, "mz-d76"), remarryLate(member, me, "mz-m78")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "spouse", Basis: "names the applicant as spouse on their own marriage record; " +
				"the applicant's record shows a divorce from " + third.Masked() + " (2024-03-01) and no marriage to them; " +
				"it shows a divorce from them (2023-01-01) before the marriage to the applicant their own record shows (2024-06-01): confirm with the marriage register"}}},
		{"a child with no marriage on their own record", "jilin/city", jilinCity,
			"1960-01-01", "1990-01-01", nil,
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "child",
				Basis: "same household, born 30 years after the applicant, no marriage on their own record"}}},
		{"a child whose spouse's record alone shows their marriage", "jilin/city", jilinCity,
			"1960-01-01", "1990-01-01", []hub.Input{marry(other, member, "mz-m73")},
			[]eligibility.FamilyMember{{CitizenID: member, Name: "李娜", Relation: "child",
				Basis: "same household, born 30 years after the applicant, no marriage on their own record"}}},
		{"a married child", "jilin/city", jilinCity,
			"1960-01-01", "1990-01-01", []hub.Input{marry(member, other, "mz-m72"), marry(other, member, "mz-m73")},
			[]eligibility.FamilyMember{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]hub.Input{
				register(me, "ps-r71", "张伟", tt.born, tt.addr, "H71"),
				register(member, "ps-r72", "李娜", tt.memberBorn, tt.addr, "H71"),
				register(other, "ps-r73", "王强", "1991-01-01", tt.addr, "H73"),
				register(third, "ps-r74", "赵敏", "1980-01-01", tt.addr, "H74"),
			}, tt.marriages...)
			subj := subjects(t, in)
			p := policy(t, tt.policy)
			relatives := map[string][]eligibility.Subject{
				"with histories": {subj[member], subj[other], subj[third]},
				"records only":   {{Record: subj[member].Record}, {Record: subj[other].Record}, {Record: subj[third].Record}},
			}
			for how, rel := range relatives {
				d := eligibility.Evaluate(p, subj[me], rel, asOfDay(t, "2024-07-01"))
				if !slices.Equal(d.Family, tt.want) {
					t.Errorf("%s: family\n%+v\nwant\n%+v", how, d.Family, tt.want)
				}
			}
		})
	}
}
