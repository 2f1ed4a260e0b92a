package access

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pophub/pophub/hub/api"
)

// TestRefusalsKeepPurpose: the X-Purpose header of every request is in
// the audit trail, refused ones included (README, Privacy): a request
// without valid credentials (401), one over its identity's rate limit
// (429) and one outside its grants (403) are each audited with the
// purpose they sent. The audit store masks citizen IDs in it and bounds
// its length (hub/audit), so the authorizer passes it as sent.
func TestRefusalsKeepPurpose(t *testing.T) {
	p := examplePolicy(t)
	burst := mustID(t, p, "researcher").RateLimit.Burst
	tests := []struct {
		name       string
		token      string // "" sends no Authorization header
		route      string
		path       string
		purpose    string
		before     int // requests that must succeed first, to empty the bucket
		wantStatus int
		wantID     string
	}{
		{name: "no credentials", route: api.RoutePerson, path: "/v1/persons/" + personID,
			purpose: "tax audit", wantStatus: http.StatusUnauthorized},
		{name: "unknown token", token: DemoSecret("token:nobody"), route: api.RoutePerson, path: "/v1/persons/" + personID,
			purpose: "case 2026-017", wantStatus: http.StatusUnauthorized},
		{name: "unknown token at the gateway", token: DemoSecret("token:nobody"), route: RouteEvents, path: "/v1/events",
			purpose: "death certification", wantStatus: http.StatusUnauthorized},
		{name: "over the rate limit", token: DemoSecret("token:researcher"), route: api.RouteUrbanRural, path: "/v1/stats/urban-rural?region=23",
			purpose: "research project 2026-017", before: burst, wantStatus: http.StatusTooManyRequests, wantID: "researcher"},
		{name: "a purpose with a control character", token: DemoSecret("token:tax"), route: api.RoutePerson, path: "/v1/persons/" + personID,
			purpose: "case\t2026-017", wantStatus: http.StatusBadRequest, wantID: "tax"},
		{name: "outside its grants", token: DemoSecret("token:researcher"), route: api.RoutePerson, path: "/v1/persons/" + personID,
			purpose: "research project 2026-017", wantStatus: http.StatusForbidden, wantID: "researcher"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &auditLog{}
			az, err := NewAuthorizer(AuthorizerConfig{Policy: p, Auditor: log})
			if err != nil {
				t.Fatal(err)
			}
			status := func() int {
				r := httptest.NewRequest(http.MethodGet, tc.path, nil)
				if tc.token != "" {
					r.Header.Set("Authorization", "Bearer "+tc.token)
				}
				r.Header.Set(HeaderPurpose, tc.purpose)
				_, err := az.Authorize(r, tc.route)
				return statusOf(err)
			}
			for i := range tc.before {
				if got := status(); got != http.StatusOK {
					t.Fatalf("request %d before the refusal: status %d, want 200", i+1, got)
				}
			}
			if got := status(); got != tc.wantStatus {
				t.Fatalf("status %d, want %d", got, tc.wantStatus)
			}
			got := log.last()
			if got.Status != tc.wantStatus || got.Identity != tc.wantID || got.Route != tc.route || got.Purpose != tc.purpose {
				t.Errorf("audited %+v, want status %d, identity %q, route %s, purpose %q", got, tc.wantStatus, tc.wantID, tc.route, tc.purpose)
			}
		})
	}
}
