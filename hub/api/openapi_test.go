package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// openAPIFile is the OpenAPI 3.1 document of the HTTP API, relative to this
// package.
var openAPIFile = filepath.Join("..", "..", "schemas", "jsonschema", "openapi.yaml")

// openAPIDoc returns the OpenAPI document as generic YAML.
func openAPIDoc(tb testing.TB) map[string]any {
	tb.Helper()
	b, err := os.ReadFile(openAPIFile)
	if err != nil {
		tb.Fatalf("reading the OpenAPI document: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		tb.Fatalf("parsing %s: %v", openAPIFile, err)
	}
	return doc
}

// openAPIOperations returns the documented operations as "METHOD /path".
func openAPIOperations(tb testing.TB) []string {
	tb.Helper()
	b, err := os.ReadFile(openAPIFile)
	if err != nil {
		tb.Fatalf("reading the OpenAPI document: %v", err)
	}
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		tb.Fatalf("parsing %s: %v", openAPIFile, err)
	}
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			switch m := strings.ToUpper(method); m {
			case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete,
				http.MethodOptions, http.MethodHead, http.MethodPatch, http.MethodTrace:
				ops = append(ops, m+" "+path)
			}
		}
	}
	slices.Sort(ops)
	return ops
}

// TestRoutesMatchOpenAPI checks that the server serves exactly the
// operations the OpenAPI document describes.
func TestRoutesMatchOpenAPI(t *testing.T) {
	store := newMemStore(t)
	// The department gateway (adapters/gateway) is mounted by the binary.
	srv := api.New(api.Config{Store: store, Lister: store, Counter: store, Regions: testRegions{}, Metrics: http.NotFoundHandler(), Policies: loadPolicies(t),
		Mount: mountAll(map[string]http.Handler{"POST /v1/events": http.NotFoundHandler()}, api.AdminHandlers(api.AdminConfig{Store: store}))})
	got := srv.Routes()
	want := openAPIOperations(t)
	for _, r := range got {
		if !slices.Contains(want, r) {
			t.Errorf("route %q is served but not documented in %s", r, openAPIFile)
		}
	}
	for _, op := range want {
		if !slices.Contains(got, op) {
			t.Errorf("operation %q is documented in %s but not served", op, openAPIFile)
		}
	}
}

// mountAll merges handler sets, as the binary mounts the gateway and the
// admin routes.
func mountAll(sets ...map[string]http.Handler) map[string]http.Handler {
	out := map[string]http.Handler{}
	for _, set := range sets {
		for p, h := range set {
			out[p] = h
		}
	}
	return out
}

// refuseAll is an Authorizer that knows nobody.
type refuseAll struct{}

func (refuseAll) Authorize(*http.Request, string) (api.Grant, error) {
	return nil, fmt.Errorf("no credentials: %w", api.ErrUnauthenticated)
}

// TestGuardedRoutesMatchOpenAPI: every route the Authorizer guards, as the
// binary wires it under a policy, documents the X-Purpose header, the
// security schemes, and 401 (with WWW-Authenticate), 403 and 429 (with
// Retry-After) as problem details; no other route documents X-Purpose.
func TestGuardedRoutesMatchOpenAPI(t *testing.T) {
	doc := openAPIDoc(t)
	// ref follows a local $ref ("#/components/responses/forbidden").
	ref := func(v any) map[string]any {
		m, _ := v.(map[string]any)
		r, ok := m["$ref"].(string)
		if !ok || !strings.HasPrefix(r, "#/") {
			return m
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(r, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		m, _ = cur.(map[string]any)
		return m
	}

	store := newMemStore(t)
	srv := api.New(api.Config{Store: store, Lister: store, Counter: store, Regions: testRegions{}, Metrics: http.NotFoundHandler(),
		Policies: loadPolicies(t), Authorizer: refuseAll{},
		Mount:   api.AdminHandlers(api.AdminConfig{Store: store, Authorizer: refuseAll{}}),
		Guarded: map[string]http.Handler{"POST /v1/events": http.NotFoundHandler()}})
	guarded := 0
	for _, route := range srv.Routes() {
		method, path, _ := strings.Cut(route, " ")
		t.Run(route, func(t *testing.T) {
			url := strings.NewReplacer("{citizen_id}", "11010519491231002X", "{asset}", "stats.js").Replace(path)
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, httptest.NewRequest(method, url, nil))
			op, _ := pointerOf(doc, "paths", path, strings.ToLower(method)).(map[string]any)
			if op == nil {
				t.Fatalf("not documented")
			}
			hasPurpose := false
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				if ref(p)["name"] == "X-Purpose" && ref(p)["in"] == "header" {
					hasPurpose = true
				}
			}
			if rec.Code != http.StatusUnauthorized {
				if hasPurpose {
					t.Errorf("documents X-Purpose, but the Authorizer is not asked (HTTP %d)", rec.Code)
				}
				return
			}
			guarded++
			if !hasPurpose {
				t.Error("guarded, but X-Purpose is not documented")
			}
			if sec, _ := op["security"].([]any); len(sec) == 0 {
				t.Error("guarded, but no security requirement is documented")
			}
			responses, _ := op["responses"].(map[string]any)
			for code, header := range map[string]string{"401": "WWW-Authenticate", "403": "", "429": "Retry-After"} {
				resp := ref(responses[code])
				if resp == nil {
					t.Errorf("guarded, but %s is not documented", code)
					continue
				}
				if _, ok := pointerOf(resp, "content", api.ProblemContentType).(map[string]any); !ok {
					t.Errorf("%s is not documented as %s", code, api.ProblemContentType)
				}
				if header != "" && pointerOf(resp, "headers", header) == nil {
					t.Errorf("%s does not document the %s header", code, header)
				}
			}
		})
	}
	if guarded < 9 {
		t.Errorf("only %d routes were guarded", guarded)
	}
}

// pointerOf walks nested maps by key; nil when a key is missing.
func pointerOf(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestOpenAPIPolicyExamplesAreServed: the policies the OpenAPI examples
// of /v1/policies and /v1/eligibility name are policies the hub serves
// (ops/policies), under their titles; the decision's place is one of its
// policy's places, and each condition's id, text, seed and note are the
// ones the hub answers for that clause. The policy files change; their
// examples must follow.
func TestOpenAPIPolicyExamplesAreServed(t *testing.T) {
	doc := openAPIDoc(t)
	cat := loadPolicies(t)
	store := newMemStore(t)
	example := func(path string) map[string]any {
		ex, _ := pointerOf(doc, "paths", path, "get", "responses", "200", "content", "application/json", "example").(map[string]any)
		if ex == nil {
			t.Fatalf("%s has no example of its 200 answer", path)
		}
		return ex
	}

	// Every policy /v1/policies shows is served under the title shown.
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Policies: cat}).Handler())
	defer srv.Close()
	var served api.PolicyList
	if code := getInto(t, srv.URL+"/v1/policies", &served); code != http.StatusOK {
		t.Fatalf("GET /v1/policies: status %d", code)
	}
	titles := map[string]string{}
	for _, p := range served.Policies {
		titles[p.ID] = p.Title
	}
	listed, _ := example("/v1/policies")["policies"].([]any)
	if len(listed) == 0 {
		t.Fatal("the /v1/policies example lists no policy")
	}
	for _, v := range listed {
		p, _ := v.(map[string]any)
		id, _ := p["id"].(string)
		if title, ok := titles[id]; !ok || p["title"] != title {
			t.Errorf("/v1/policies example: %s titled %v; the hub serves %q (served: %v)", id, p["title"], title, ok)
		}
	}
	params, _ := pointerOf(doc, "paths", "/v1/eligibility/{citizen_id}", "get", "parameters").([]any)
	for _, v := range params {
		if p, _ := v.(map[string]any); p["name"] == "policy" {
			if _, ok := titles[fmt.Sprint(p["example"])]; !ok {
				t.Errorf("/v1/eligibility: the policy parameter's example %v is not a served policy", p["example"])
			}
		}
	}

	// The decision's policy, title and place; each condition as the hub
	// answers it for a person on record.
	d := example("/v1/eligibility/{citizen_id}")
	id, _ := d["policy"].(string)
	p, ok := cat.Policy(id)
	if !ok {
		t.Fatalf("/v1/eligibility example: policy %q is not served", id)
	}
	if d["title"] != p.Title {
		t.Errorf("/v1/eligibility example: title %v, the hub serves %q", d["title"], p.Title)
	}
	if !slices.ContainsFunc(p.Places, func(pl eligibility.Place) bool { return pl.Name == d["place"] }) {
		t.Errorf("/v1/eligibility example: place %v is not a place of %s (%+v)", d["place"], id, p.Places)
	}
	citizen := citizenid.ID(fmt.Sprint(d["citizen_id"]))
	storetest.ApplyAll(t, store, []hub.Input{storetest.Event(t, schemas.HukouRegistered, citizen, "ps-example", time.Date(2015, 1, 1, 10, 0, 0, 0, cst),
		schemas.HukouRegisteredData{Name: "王伟", Gender: "1", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "230102001001", HouseholdID: "H1", Reason: "birth"})}, 1)
	var decision eligibility.Decision
	u := srv.URL + "/v1/eligibility/" + string(citizen) + "?" + url.Values{"policy": {id}, "as_of": {fmt.Sprint(d["as_of"])}}.Encode()
	if code := getInto(t, u, &decision); code != http.StatusOK {
		t.Fatalf("deciding the example's person: status %d", code)
	}
	conds, _ := d["conditions"].([]any)
	if len(conds) == 0 {
		t.Fatal("/v1/eligibility example has no conditions")
	}
	for _, v := range conds {
		c, _ := v.(map[string]any)
		i := slices.IndexFunc(decision.Conditions, func(cr eligibility.ConditionResult) bool { return cr.ID == c["id"] })
		if i < 0 {
			t.Errorf("/v1/eligibility example: condition %v is not a clause of %s", c["id"], id)
			continue
		}
		want := decision.Conditions[i]
		note, _ := c["note"].(string)
		if c["text"] != want.Text || c["seed"] != want.Seed || note != strings.TrimSpace(want.Note) {
			t.Errorf("/v1/eligibility example: condition %s reads\ntext %v\nseed %v\nnote %q\nthe hub answers\ntext %s\nseed %s\nnote %q",
				want.ID, c["text"], c["seed"], note, want.Text, want.Seed, strings.TrimSpace(want.Note))
		}
	}
}

// TestReadyzTimeoutDocumented: the OpenAPI description of /readyz and the
// README's give the one bound the hub applies to every readiness check
// (DefaultReadyTimeout: the binary sets no other), and the OpenAPI 503
// example shows what the hub says of a check that does not answer in it.
func TestReadyzTimeoutDocumented(t *testing.T) {
	doc := openAPIDoc(t)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The README's sentence on /readyz: from its mention to the end of
	// the parenthesis that lists the checks.
	_, after, ok := strings.Cut(string(readme), "`/readyz` (")
	readyz, _, _ := strings.Cut(after, ") and `/metrics`")
	if !ok || readyz == "" {
		t.Fatal("README.md has no sentence on `/readyz` (…)")
	}
	desc, _ := pointerOf(doc, "paths", "/readyz", "get", "description").(string)
	want := strconv.Itoa(int(api.DefaultReadyTimeout / time.Second))
	within := regexp.MustCompile(`within (?:about )?(\d+) ?s\b`)
	for name, text := range map[string]string{openAPIFile: desc, "README.md": readyz} {
		bounds := within.FindAllStringSubmatch(strings.Join(strings.Fields(text), " "), -1)
		if len(bounds) == 0 {
			t.Errorf("%s: /readyz names no bound (want within %s s)", name, want)
		}
		for _, m := range bounds {
			if m[1] != want {
				t.Errorf("%s: /readyz says %q; every check is cut at %v", name, m[0], api.DefaultReadyTimeout)
			}
		}
	}

	slow := api.Check{Name: "kafka", Probe: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	h := api.New(api.Config{Store: &memReader{}, Ready: []api.Check{slow}}).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var got api.Health
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if ex := pointerOf(doc, "paths", "/readyz", "get", "responses", "503", "content", "application/json", "example", "checks", "kafka"); ex != got.Checks["kafka"] {
		t.Errorf("the 503 example's kafka check reads %v; the hub answers %q", ex, got.Checks["kafka"])
	}
}
