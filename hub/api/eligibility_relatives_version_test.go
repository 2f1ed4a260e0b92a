package api_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
)

// TestDecisionAfterARelativesLateEventNamesAnotherVersion: a decision
// names the versions of the records it was made from, the listed
// relatives' included, in the answer and in the person's processing
// record. A spouse's hukou migration recorded late, effective before the
// day decided, turns a family-reunion decision from eligible to not
// eligible while the person's own record is unchanged: the two answers
// for the same person, policy and day must be told apart by what they
// name, else the processing record (and an appeal) cannot say which state
// of the records each came from.
func TestDecisionAfterARelativesLateEventNamesAnotherVersion(t *testing.T) {
	cat := loadPolicies(t)
	const pid = "chifeng/central"
	c := eligibility.Case{Name: "joins a registered spouse, living in the spouse's home", AsOf: "2024-07-01",
		Person: eligibility.CasePerson{BirthDate: "1992-03-01", Hukou: "231221100200"},
		Family: []eligibility.CasePerson{{BirthDate: "1990-01-01", Hukou: "150402001001", Household: "H7", MarriedOn: "2020-01-01"}}}
	ids, in, err := c.Inputs()
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore(t)
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	log := &outcomeLog{}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Policies: cat, Authorizer: log}).Handler())
	defer srv.Close()
	u := srv.URL + "/v1/eligibility/" + string(ids[0]) + "?" + url.Values{"policy": {pid}, "as_of": {c.AsOf}}.Encode()

	var before eligibility.Decision
	if code := getInto(t, u, &before); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if !before.Eligible {
		t.Fatalf("premise: eligible by joining the spouse, got %+v", before)
	}
	detailBefore := log.last(t).Detail
	spouse, err := store.Person(context.Background(), ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if got := before.RelativesVersions[ids[1]]; got != spouse.Version || got == 0 {
		t.Errorf("relatives_versions %v: want the listed spouse's record version %d", before.RelativesVersions, spouse.Version)
	}

	// The spouse's move out of Chifeng on 2024-06-01, recorded late.
	data := schemas.HukouMigratedData{FromAddressCode: "150402001001", ToAddressCode: "231221100200", Reason: "family", HouseholdID: "H9"}
	raw, _ := json.Marshal(data)
	at := time.Date(2024, 6, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))
	late := hub.Input{Event: schemas.Event{SpecVersion: schemas.SpecVersion, ID: "late-migration-1",
		Source: schemas.SourceOf(schemas.HukouMigrated), Type: schemas.HukouMigrated, Subject: ids[1], Time: at,
		DataContentType: "application/json", Data: raw, Payload: &data}}
	if _, err := store.Apply(context.Background(), []hub.Input{late}); err != nil {
		t.Fatal(err)
	}

	var after eligibility.Decision
	if code := getInto(t, u, &after); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if after.Eligible {
		t.Fatalf("premise: the spouse left Chifeng before the day, want not eligible, got %+v", after)
	}
	if after.PolicyDigest == before.PolicyDigest && after.RecordVersion == before.RecordVersion &&
		maps.Equal(after.RelativesVersions, before.RelativesVersions) {
		t.Errorf("eligible, then not eligible, for %s as of %s, both naming policy %s, record_version %d and relatives_versions %v: the answers cannot be told apart",
			pid, c.AsOf, after.PolicyDigest, after.RecordVersion, after.RelativesVersions)
	}
	detailAfter := log.last(t).Detail
	same := func(d string) string {
		return strings.TrimSuffix(strings.TrimSuffix(d, ": eligible"), ": not eligible")
	}
	if same(detailBefore) == same(detailAfter) {
		t.Errorf("the processing record names the same decision, %q then %q: the entries cannot be told apart", detailBefore, detailAfter)
	}
}

// TestDecisionNamesNoUnlistedRelative: relatives_versions names only the
// relatives the answer lists. A spouse whose own record names another
// spouse is not listed, though the decision read their record and shows
// a fact of it: their citizen ID must not appear in the answer.
func TestDecisionNamesNoUnlistedRelative(t *testing.T) {
	cat := loadPolicies(t)
	const pid = "chifeng/central"
	c := eligibility.Case{Name: "joins a spouse whose own record does not show the marriage", AsOf: "2024-07-01",
		Person: eligibility.CasePerson{BirthDate: "1992-03-01", Hukou: "231221100200"},
		Family: []eligibility.CasePerson{{BirthDate: "1990-01-01", Hukou: "150402001001", Household: "H7", MarriedOn: "2020-01-01"}}}
	ids, in, err := c.Inputs()
	if err != nil {
		t.Fatal(err)
	}
	// The spouse's own copy of the marriage is followed by a divorce on
	// their record alone.
	data := schemas.MarriageDivorcedData{SpouseID: ids[0]}
	raw, _ := json.Marshal(data)
	at := time.Date(2023, 1, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))
	in = append(in, hub.Input{Event: schemas.Event{SpecVersion: schemas.SpecVersion, ID: "spouse-divorce-1",
		Source: schemas.SourceOf(schemas.MarriageDivorced), Type: schemas.MarriageDivorced, Subject: ids[1], Time: at,
		DataContentType: "application/json", Data: raw, Payload: &data}})
	store := newMemStore(t)
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Policies: cat}).Handler())
	defer srv.Close()
	u := srv.URL + "/v1/eligibility/" + string(ids[0]) + "?" + url.Values{"policy": {pid}, "as_of": {c.AsOf}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var d eligibility.Decision
	if err := json.Unmarshal(body, &d); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if len(d.Family) != 0 || d.Eligible {
		t.Fatalf("premise: the spouse is not listed, the decision not eligible: %+v", d)
	}
	if !strings.Contains(string(body), "the spouse's own marriage record") {
		t.Fatalf("premise: a fact of the spouse's own record is shown: %s", body)
	}
	if strings.Contains(string(body), string(ids[1])) {
		t.Errorf("the answer names the unlisted spouse %s: %s", ids[1].Masked(), body)
	}
	if len(d.RelativesVersions) != 0 {
		t.Errorf("relatives_versions %v, want none: no relative is listed", d.RelativesVersions)
	}
}
