package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/eligibility"
)

// TestDecisionNamesPolicyAndRecordVersions: GET /v1/policies lists each
// policy's digest, a decision names the digest of the policy it was made
// under and the version of the person's record it was made from, and the
// person's processing record says both, with the outcome the clerk was
// shown; a relative's says which decision disclosed them, not its outcome.
func TestDecisionNamesPolicyAndRecordVersions(t *testing.T) {
	cat := loadPolicies(t)
	const pid = "heilongjiang/daqing"
	p, _ := cat.Policy(pid)
	c := eligibility.Case{Name: "married, renting in Daqing", AsOf: "2025-03-01",
		Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "231221100200", Household: "H1"},
		Family: []eligibility.CasePerson{{BirthDate: "1991-01-01", Hukou: "231221100200", Household: "H1", MarriedOn: "2018-01-01"}},
		Events: []eligibility.CaseEvent{
			{Type: "housing.rental_registered", Time: "2023-01-01", Data: map[string]any{"lease_id": "L1", "address_code": "230602013001", "start": "2023-01-01"}},
		}}
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

	var list api.PolicyList
	if code := getInto(t, srv.URL+"/v1/policies", &list); code != http.StatusOK {
		t.Fatalf("GET /v1/policies: status %d", code)
	}
	for _, s := range list.Policies {
		q, _ := cat.Policy(s.ID)
		if !strings.HasPrefix(s.Digest, "sha256:") || s.Digest != q.Digest() {
			t.Errorf("policy %s listed with digest %q, want %q", s.ID, s.Digest, q.Digest())
		}
	}

	var d eligibility.Decision
	u := srv.URL + "/v1/eligibility/" + string(ids[0]) + "?" + url.Values{"policy": {pid}, "as_of": {c.AsOf}}.Encode()
	if code := getInto(t, u, &d); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if d.PolicyDigest != p.Digest() {
		t.Errorf("policy_digest %q, want %q", d.PolicyDigest, p.Digest())
	}
	rec, err := store.Person(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.RecordVersion == 0 || d.RecordVersion != rec.Version {
		t.Errorf("record_version %d, want the record's version %d", d.RecordVersion, rec.Version)
	}
	if d.Eligible || len(d.Family) == 0 {
		t.Fatalf("premise: not eligible (no contract), the spouse listed: %+v", d)
	}
	o := log.last(t)
	for _, want := range []string{pid, "as of " + c.AsOf, p.Digest(), "record version", ": not eligible"} {
		if !strings.Contains(o.Detail, want) {
			t.Errorf("the processing record %q does not say %q", o.Detail, want)
		}
	}
	for _, other := range o.Others {
		if !strings.Contains(other.Detail, p.Digest()) || strings.Contains(other.Detail, "eligible,") || strings.HasSuffix(other.Detail, "eligible") {
			t.Errorf("a relative's record %q: want the decision named, not its outcome", other.Detail)
		}
	}
}

// TestDecisionAndPolicyListMatchOpenAPI: the members of a served decision
// and of a served policy list are the ones the OpenAPI schemas describe,
// the required ones present, policy_digest, record_version and
// relatives_versions included.
func TestDecisionAndPolicyListMatchOpenAPI(t *testing.T) {
	doc := openAPIDoc(t)
	cat := loadPolicies(t)
	c := eligibility.Case{Name: "married, renting in Daqing", AsOf: "2025-03-01",
		Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "231221100200", Household: "H1"},
		Family: []eligibility.CasePerson{{BirthDate: "1991-01-01", Hukou: "231221100200", Household: "H1", MarriedOn: "2018-01-01"}},
		Events: []eligibility.CaseEvent{
			{Type: "housing.rental_registered", Time: "2023-01-01", Data: map[string]any{"lease_id": "L1", "address_code": "230602013001", "start": "2023-01-01"}},
		}}
	ids, in, err := c.Inputs()
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore(t)
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Policies: cat}).Handler())
	defer srv.Close()
	raw := func(u string) map[string]any {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
		}
		return m
	}
	check := func(what string, got map[string]any, schema ...string) {
		t.Helper()
		props, _ := pointerOf(doc, append(schema, "properties")...).(map[string]any)
		required, _ := pointerOf(doc, append(schema, "required")...).([]any)
		if props == nil {
			t.Fatalf("%s: no schema at %v", what, schema)
		}
		for k := range got {
			if _, ok := props[k]; !ok {
				t.Errorf("%s: member %q is not in the OpenAPI schema", what, k)
			}
		}
		for _, k := range required {
			if _, ok := got[k.(string)]; !ok {
				t.Errorf("%s: required member %q is missing", what, k)
			}
		}
	}
	d := raw(srv.URL + "/v1/eligibility/" + string(ids[0]) + "?" + url.Values{"policy": {"heilongjiang/daqing"}, "as_of": {c.AsOf}}.Encode())
	if _, ok := d["record_version"]; !ok {
		t.Errorf("the decision %v has no record_version", d)
	}
	if v, ok := d["relatives_versions"].(map[string]any); !ok || v[string(ids[1])] == nil {
		t.Errorf("the decision %v names no version of the listed spouse's record", d)
	}
	check("decision", d, "components", "schemas", "decision")
	list := raw(srv.URL + "/v1/policies")
	check("policy list", list, "paths", "/v1/policies", "get", "responses", "200", "content", "application/json", "schema")
	items, _ := list["policies"].([]any)
	if len(items) == 0 {
		t.Fatal("no policy listed")
	}
	for _, it := range items {
		check("listed policy", it.(map[string]any), "paths", "/v1/policies", "get", "responses", "200", "content", "application/json", "schema", "properties", "policies", "items")
	}
}
