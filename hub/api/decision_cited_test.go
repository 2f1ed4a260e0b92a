package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestDecisionCitingSpouseRecordDisclosesSpouse: a family-reunion decision
// (chifeng/central) that shows a fact of the spouse's own record — their
// marriage naming someone else, their death — discloses the spouse even
// when it does not list them as family, so the outcome reports the spouse
// once, with the sections cited; a spouse listed as family is reported
// once, as family member.
func TestDecisionCitingSpouseRecordDisclosesSpouse(t *testing.T) {
	const daoli, chifeng = "230102001001", "150402001001"
	me, sp, other := storetest.ValidID(61), storetest.ValidID(62), storetest.ValidID(63)
	registered := func(id citizenid.ID, name, gender, addr string) hub.Input {
		return storetest.Event(t, schemas.HukouRegistered, id, "ps-r"+string(id[16:]), cstDay(2010, 1, 1), schemas.HukouRegisteredData{
			Name: name, Gender: gender, BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: addr, HouseholdID: "H" + string(id[16:]), Reason: "birth"})
	}
	married := func(id, to citizenid.ID, eventID string) hub.Input {
		return storetest.Event(t, schemas.MarriageRegistered, id, eventID, cstDay(2023, 1, 1), schemas.MarriageRegisteredData{SpouseID: to})
	}
	base := []hub.Input{
		registered(me, "王芳", "2", daoli),
		registered(sp, "张伟", "1", chifeng),
		registered(other, "李娜", "2", chifeng),
		married(me, sp, "mz-m61"),
	}
	for _, tc := range []struct {
		name   string
		more   []hub.Input
		fact   string // a fact of the spouse's own record the decision shows
		listed bool   // the spouse is listed as family
	}{
		{"the spouse's own record names someone else", []hub.Input{married(sp, other, "mz-m62")}, "the spouse's own marriage record", false},
		{"the spouse is deceased", []hub.Input{married(sp, me, "mz-m62"),
			storetest.Event(t, schemas.DeathCertified, sp, "hl-d62", cstDay(2024, 1, 1),
				schemas.DeathCertifiedData{DateOfDeath: "2024-01-01", CertificateNo: "D62"})}, "the spouse is deceased", false},
		{"the spouse is confirmed and listed", []hub.Input{married(sp, me, "mz-m62")}, "spouse's hukou registered at", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newMemStore(t)
			applyEach(t, s, base, tc.more)
			log := &outcomeLog{}
			srv := httptest.NewServer(api.New(api.Config{Store: s, Lister: s, Policies: loadPolicies(t), Authorizer: log}).Handler())
			defer srv.Close()
			var d eligibility.Decision
			u := srv.URL + "/v1/eligibility/" + string(me) + "?" + url.Values{"policy": {"chifeng/central"}}.Encode()
			if code := getInto(t, u, &d); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			o := log.last(t)
			c, _ := condition(d, "family_reunion")
			if !slices.ContainsFunc(c.Facts, func(f eligibility.Fact) bool { return strings.Contains(f.Text, tc.fact) }) {
				t.Fatalf("setup: the decision does not show %q: %+v", tc.fact, c.Facts)
			}
			if listed := slices.ContainsFunc(d.Family, func(m eligibility.FamilyMember) bool { return m.CitizenID == sp }); listed != tc.listed {
				t.Fatalf("setup: the spouse listed as family: %t, want %t (%+v)", listed, tc.listed, d.Family)
			}
			var got []api.Disclosure
			for _, x := range o.Others {
				if x.CitizenID == sp {
					got = append(got, x)
				}
				if x.CitizenID == other {
					t.Errorf("the outcome discloses the spouse's spouse, whose record the decision did not read: %+v", x)
				}
			}
			if len(got) != 1 {
				t.Fatalf("the outcome discloses the spouse %d times, want once: %+v", len(got), o.Others)
			}
			// A relative's entry names the decision (o.Detail without the
			// outcome, which is the person's).
			which := o.Detail[:strings.LastIndex(o.Detail, ": ")]
			want := which + ": own record cited as a relative"
			if tc.listed {
				want = which + ": listed as family member"
			}
			if got[0].Detail != want || !slices.Contains(got[0].Sections, schemas.SecMarital) || !slices.Contains(got[0].Sections, schemas.SecStatus) {
				t.Errorf("the spouse disclosed as %+v, want detail %q with the marital and status sections", got[0], want)
			}
		})
	}
}
