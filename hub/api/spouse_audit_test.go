package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// maritalHidden is an outcomeLog whose grant keeps the marital section
// and the changes' data from the caller.
type maritalHidden struct{ *outcomeLog }

func (m maritalHidden) Authorize(*http.Request, string) (api.Grant, error) {
	return maritalHiddenGrant{outcomeGrant{m.outcomeLog}}, nil
}

type maritalHiddenGrant struct{ outcomeGrant }

func (maritalHiddenGrant) Record(_ context.Context, r hub.Record) hub.Record {
	r.Marital = nil
	return r
}

func (maritalHiddenGrant) History(_ context.Context, cs []hub.Change) []hub.Change {
	out := make([]hub.Change, len(cs))
	for i, c := range cs {
		c.Data = nil
		out[i] = c
	}
	return out
}

// TestSpouseNamedInAnswerIsDisclosed: GET /v1/persons/{id} and its
// /history answer the spouse's full citizen ID (marital.spouse_id, the
// marriage and divorce events' data), so the spouse is reported as a
// disclosure of the marital section of their own, once per request however
// many changes name them, and so does a page of GET /v1/persons listing
// the person; a caller who is not shown the spouse's ID discloses nobody
// else.
func TestSpouseNamedInAnswerIsDisclosed(t *testing.T) {
	const daoli = "230102001001"
	s := newMemStore(t)
	me, sp := storetest.ValidID(71), storetest.ValidID(72)
	applyEach(t, s, []hub.Input{
		storetest.Event(t, schemas.HukouRegistered, me, "ps-r71", cstDay(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: daoli, HouseholdID: "H71", Reason: "birth"}),
		storetest.Event(t, schemas.MarriageRegistered, me, "mz-m71", cstDay(2021, 1, 1), schemas.MarriageRegisteredData{SpouseID: sp}),
		storetest.Event(t, schemas.MarriageDivorced, me, "mz-d71", cstDay(2022, 1, 1), schemas.MarriageDivorcedData{SpouseID: sp}),
		storetest.Event(t, schemas.MarriageRegistered, me, "mz-m72", cstDay(2023, 1, 1), schemas.MarriageRegisteredData{SpouseID: sp}),
	})
	shown, hidden := &outcomeLog{}, &outcomeLog{}
	for _, tc := range []struct {
		name       string
		log        *outcomeLog
		authorizer api.Authorizer
		path       string
		detail     string // "" when no one else is disclosed
		times      int    // how many times the answer names the spouse
	}{
		{"record", shown, shown, "/v1/persons/" + string(me), "named as spouse in another person's record", 1},
		{"history", shown, shown, "/v1/persons/" + string(me) + "/history", "named as spouse in another person's history", 3},
		{"record without the marital section", hidden, maritalHidden{hidden}, "/v1/persons/" + string(me), "", 0},
		{"history without the events' data", hidden, maritalHidden{hidden}, "/v1/persons/" + string(me) + "/history", "", 0},
		{"a page of persons", shown, shown, "/v1/persons?region=230102", "named as spouse in another person's record", 1},
		{"a page of persons without the marital section", hidden, maritalHidden{hidden}, "/v1/persons?region=230102", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(api.New(api.Config{Store: s, Lister: s, Authorizer: tc.authorizer}).Handler())
			defer srv.Close()
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if n := strings.Count(string(body), string(sp)); n != tc.times {
				t.Fatalf("setup: the answer names the spouse %d times, want %d", n, tc.times)
			}
			o := tc.log.last(t)
			// A page discloses the person listed (me) first, then the spouse.
			others := slices.DeleteFunc(slices.Clone(o.Others), func(d api.Disclosure) bool { return d.CitizenID == me })
			if tc.detail == "" {
				if len(others) != 0 {
					t.Errorf("the answer names no one else, but the outcome discloses %+v", others)
				}
				return
			}
			if len(others) != 1 {
				t.Fatalf("the outcome discloses %d other people, want the spouse once: %+v", len(others), o.Others)
			}
			got := others[0]
			if got.CitizenID != sp || got.Detail != tc.detail || len(got.Sections) != 1 || got.Sections[0] != schemas.SecMarital {
				t.Errorf("disclosure %+v, want the spouse %s, marital, %q", got, sp.Masked(), tc.detail)
			}
			if strings.Contains(got.Detail, string(sp)) || strings.Contains(got.Detail, string(me)) {
				t.Errorf("the detail names a citizen: %q", got.Detail)
			}
		})
	}
}

// TestSpouseNamedWithEscapedKeyIsDisclosed: the decoder accepts a
// marriage whose data spells the key with a JSON escape
// ("spouse\u005fid"); the history answers the data as sent, so the caller
// receives the spouse's full ID, and the spouse is recorded as for any
// other history naming them (the text "spouse_id" was looked for, and
// this data lacks it).
func TestSpouseNamedWithEscapedKeyIsDisclosed(t *testing.T) {
	const daoli = "230102001001"
	s := newMemStore(t)
	me, sp := storetest.ValidID(81), storetest.ValidID(82)
	applyEach(t, s, []hub.Input{
		storetest.Event(t, schemas.HukouRegistered, me, "ps-r81", cstDay(2010, 1, 1), schemas.HukouRegisteredData{
			Name: "王芳", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: daoli, HouseholdID: "H81", Reason: "birth"}),
		storetest.Event(t, schemas.MarriageRegistered, me, "mz-m81", cstDay(2021, 1, 1), json.RawMessage(`{"spouse\u005fid":"`+string(sp)+`"}`)),
	})
	log := &outcomeLog{}
	srv := httptest.NewServer(api.New(api.Config{Store: s, Lister: s, Authorizer: log}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/persons/" + string(me) + "/history")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var changes []struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &changes); err != nil {
		t.Fatal(err)
	}
	names := false
	for _, c := range changes {
		var d struct {
			SpouseID string `json:"spouse_id"`
		}
		if json.Unmarshal(c.Data, &d) == nil && d.SpouseID == string(sp) {
			names = true
			t.Logf("history data as answered: %s", c.Data)
		}
	}
	if !names || !strings.Contains(string(body), string(sp)) {
		t.Fatalf("setup: the history does not answer the spouse's ID: %s", body)
	}
	o := log.last(t)
	for _, d := range o.Others {
		if d.CitizenID == sp {
			return
		}
	}
	t.Errorf("the history answered the spouse's full citizen ID (%s), but the outcome discloses %+v", sp.Masked(), o.Others)
}
