package api_test

import (
	"net/http"
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
