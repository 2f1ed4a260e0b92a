package api_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

func loadPolicies(t testing.TB) *eligibility.Catalog {
	t.Helper()
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// TestEligibilityFromStore runs every shipped example case through a real
// store and the HTTP API: the case's events are applied as departments
// would send them, and GET /v1/eligibility must reach the case's expected
// decision, family members included (found by the household walk, not
// handed over as in the pure engine's tests).
func TestEligibilityFromStore(t *testing.T) {
	cat := loadPolicies(t)
	n := 0
	err := fs.WalkDir(policies.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(name, eligibility.CasesSuffix) {
			return err
		}
		b, err := fs.ReadFile(policies.FS(), name)
		if err != nil {
			return err
		}
		var file eligibility.CaseFile
		if err := yaml.Unmarshal(b, &file); err != nil {
			return err
		}
		pid := strings.TrimSuffix(name, eligibility.CasesSuffix)
		for _, c := range file.Cases {
			if c.Status != "" {
				continue // a status set by hand, not by events
			}
			n++
			t.Run(pid+"/"+c.Name, func(t *testing.T) {
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
				var d eligibility.Decision
				u := srv.URL + "/v1/eligibility/" + string(ids[0]) + "?" + url.Values{"policy": {pid}, "as_of": {c.AsOf}}.Encode()
				if code := getInto(t, u, &d); code != http.StatusOK {
					t.Fatalf("status %d", code)
				}
				if d.Eligible != c.Expect.Eligible {
					t.Errorf("eligible = %v, want %v (conditions %+v)", d.Eligible, c.Expect.Eligible, d.Conditions)
				}
				for id, want := range c.Expect.Conditions {
					found := false
					for _, cr := range d.Conditions {
						if cr.ID == id {
							found = true
							if cr.Met != want {
								t.Errorf("condition %s met = %v, want %v (%+v)", id, cr.Met, want, cr)
							}
						}
					}
					if !found {
						t.Errorf("condition %s not in the decision", id)
					}
				}
				if c.Expect.Family != nil {
					var got []string
					for _, m := range d.Family {
						got = append(got, m.Relation)
					}
					if strings.Join(got, ",") != strings.Join(c.Expect.Family, ",") {
						t.Errorf("family = %v, want %v", got, c.Expect.Family)
					}
				}
				checkDecisionAudit(t, log.last(t), cat, pid, d)
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 30 {
		t.Fatalf("only %d example cases ran", n)
	}
}

// TestEligibilityErrors: every bad request is a specific 400 or 404.
func TestEligibilityErrors(t *testing.T) {
	store := newMemStore(t)
	if _, err := store.Apply(context.Background(), []hub.Input{registration(t, 1, "230102001001", cstDay(2020, 1, 1))}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Policies: loadPolicies(t)}).Handler())
	defer srv.Close()
	known := registration(t, 1, "230102001001", cstDay(2020, 1, 1)).Event.Subject
	tests := []struct {
		name, path string
		status     int
		detail     string
	}{
		{"no policy", "/v1/eligibility/" + string(known), 400, "policy parameter is required"},
		{"unknown policy", "/v1/eligibility/" + string(known) + "?policy=heilongjiang/nowhere", 400, `no policy "heilongjiang/nowhere"`},
		{"bad as_of", "/v1/eligibility/" + string(known) + "?policy=heilongjiang/daqing&as_of=2026-13-01", 400, "not a date"},
		{"future as_of", "/v1/eligibility/" + string(known) + "?policy=heilongjiang/daqing&as_of=2999-01-01", 400, "in the future"},
		{"malformed id", "/v1/eligibility/230102199001011231?policy=heilongjiang/daqing", 400, "check character"},
		{"unknown person", "/v1/eligibility/" + string(storetest.ValidID(99)) + "?policy=heilongjiang/daqing", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if code := getInto(t, srv.URL+tc.path, &p); code != tc.status || p.Status != tc.status {
				t.Fatalf("status %d (problem %d), want %d: %s", code, p.Status, tc.status, p.Detail)
			}
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not say %q", p.Detail, tc.detail)
			}
		})
	}
}

// TestPoliciesList: GET /v1/policies names every shipped policy with its
// title.
func TestPoliciesList(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Config{Store: newMemStore(t), Policies: loadPolicies(t)}).Handler())
	defer srv.Close()
	var list api.PolicyList
	if code := getInto(t, srv.URL+"/v1/policies", &list); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	ids := map[string]bool{}
	for _, p := range list.Policies {
		if p.Title == "" {
			t.Errorf("policy %s has no title", p.ID)
		}
		ids[p.ID] = true
	}
	for _, want := range []string{"heilongjiang/nine-cities", "heilongjiang/daqing", "heilongjiang/qiqihar", "heilongjiang/harbin",
		"jilin/counties", "jilin/city", "jilin/talent", "chifeng/central", "shaoxing/city", "hunan/chang-zhu-tan",
		"residence-permit/heilongjiang", "residence-permit/jilin", "residence-permit/chifeng", "residence-permit/shaoxing", "residence-permit/hunan"} {
		if !ids[want] {
			t.Errorf("policy %s is not listed", want)
		}
	}
}

func cstDay(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 10, 0, 0, 0, cst) }

// checkDecisionAudit: the outcome of an eligibility decision names the
// sections it read of the person (at least those the policy depends on),
// the policy and the day decided, and each family member it lists as a
// disclosure of their own.
func checkDecisionAudit(t *testing.T, o api.Outcome, cat *eligibility.Catalog, pid string, d eligibility.Decision) {
	t.Helper()
	p, _ := cat.Policy(pid)
	for _, sec := range eligibility.RelevantSections(p) {
		if !slices.Contains(o.Sections, sec) {
			t.Errorf("outcome sections %v lack %s, which the policy reads", o.Sections, sec)
		}
	}
	which := "eligibility decision " + pid + " as of " + d.AsOf + ", policy " + p.Digest()
	if d.PolicyDigest != p.Digest() {
		t.Errorf("policy_digest %q, want the served policy's %q", d.PolicyDigest, p.Digest())
	}
	if d.RecordVersion > 0 {
		which += fmt.Sprintf(", record version %d", d.RecordVersion)
	}
	var versions []string
	for _, m := range d.Family {
		if v, ok := d.RelativesVersions[m.CitizenID]; ok {
			versions = append(versions, fmt.Sprint(v))
		}
	}
	if len(versions) > 0 {
		which += ", relatives' record versions " + strings.Join(versions, ", ")
	}
	outcome := "not eligible"
	switch {
	case d.Eligible:
		outcome = "eligible"
	case d.QualifiesOn != "":
		outcome = "not eligible, qualifies on " + d.QualifiesOn
	}
	if want := which + ": " + outcome; o.Detail != want {
		t.Errorf("outcome detail %q, want %q", o.Detail, want)
	}
	if len(o.Others) < len(d.Family) {
		t.Fatalf("outcome discloses %d people, the decision lists %d family members", len(o.Others), len(d.Family))
	}
	for i, m := range d.Family {
		if got := o.Others[i]; got.CitizenID != m.CitizenID || !slices.Contains(got.Sections, schemas.SecIdentity) ||
			got.Detail != which+": listed as family member" {
			t.Errorf("family member %d disclosed as %+v", i, got)
		}
	}
	// The rest are relatives whose own records gave a fact, each once.
	for _, got := range o.Others[len(d.Family):] {
		if got.Detail != which+": own record cited as a relative" ||
			slices.ContainsFunc(d.Family, func(m eligibility.FamilyMember) bool { return m.CitizenID == got.CitizenID }) {
			t.Errorf("a relative cited disclosed as %+v", got)
		}
	}
}
