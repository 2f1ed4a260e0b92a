package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/hub/api"
)

// openAPIFile is the OpenAPI 3.1 document of the HTTP API, relative to this
// package.
var openAPIFile = filepath.Join("..", "..", "schemas", "jsonschema", "openapi.yaml")

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
	b, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
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
