package api_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/pophub/pophub/hub/api"
)

// routeLog is a fakeAuth that also records the route of every Authorize
// call.
type routeLog struct {
	fakeAuth
	routes []string
}

func (a *routeLog) Authorize(r *http.Request, route string) (api.Grant, error) {
	a.mu.Lock()
	a.routes = append(a.routes, route)
	a.mu.Unlock()
	return a.fakeAuth.Authorize(r, route)
}

// TestUnmatchedV1RequestsAuthorized: a /v1 request that matches no route
// (a wrong method, a trailing slash, an unknown path) is a /v1 request
// like any other: the Authorizer is asked (with api.RouteUnmatched), so
// that a refused one is audited and counted as its refusals are, and a
// granted one is answered 404 or 405 and reported to its Grant. Requests
// outside /v1 are answered as before, without the Authorizer.
func TestUnmatchedV1RequestsAuthorized(t *testing.T) {
	f := newFixture(t)
	person := "/v1/persons/" + string(f.known)
	tests := []struct {
		name, method, path, token string
		wantStatus                int
		wantSlug                  string
		wantAllow                 string
		wantAsked                 bool     // the Authorizer was asked, for RouteUnmatched
		wantRoutes                []string // else the routes it was asked for
		wantOutcome               *api.Outcome
	}{
		{name: "wrong method, no credentials", method: "DELETE", path: person,
			wantStatus: 401, wantSlug: "unauthenticated", wantAsked: true},
		{name: "wrong method, refused", method: "DELETE", path: person, token: "Bearer bad",
			wantStatus: 403, wantSlug: "forbidden", wantAsked: true},
		{name: "wrong method, rate limited", method: "PUT", path: person, token: "Bearer busy",
			wantStatus: 429, wantSlug: "rate-limited", wantAsked: true},
		{name: "wrong method, granted", method: "DELETE", path: person, token: "Bearer good",
			wantStatus: 405, wantSlug: "method-not-allowed", wantAllow: "GET, HEAD", wantAsked: true,
			wantOutcome: &api.Outcome{Route: api.RouteUnmatched, Status: 405}},
		{name: "trailing slash, no credentials", method: "GET", path: person + "/",
			wantStatus: 401, wantSlug: "unauthenticated", wantAsked: true},
		{name: "trailing slash, granted", method: "GET", path: person + "/", token: "Bearer good",
			wantStatus: 404, wantSlug: "not-found", wantAsked: true,
			wantOutcome: &api.Outcome{Route: api.RouteUnmatched, Status: 404}},
		{name: "unknown /v1 path", method: "GET", path: "/v1/x", token: "Bearer good",
			wantStatus: 404, wantSlug: "not-found", wantAsked: true,
			wantOutcome: &api.Outcome{Route: api.RouteUnmatched, Status: 404}},
		{name: "a path the mux cleans", method: "GET", path: "/v1//persons", token: "Bearer good",
			wantStatus: 307, wantAsked: true,
			wantOutcome: &api.Outcome{Route: api.RouteUnmatched, Status: 307}},
		// For a cleanable path on a route with a variable part the mux
		// hands back the cleaned route's pattern with its redirect: still
		// no route's request.
		{name: "a person path the mux cleans, no credentials", method: "GET", path: "/v1//persons/" + string(f.known),
			wantStatus: 401, wantSlug: "unauthenticated", wantAsked: true},
		{name: "a dot-dot person path, no credentials", method: "GET", path: "/v1/stats/../persons/" + string(f.known),
			wantStatus: 401, wantSlug: "unauthenticated", wantAsked: true},
		{name: "a dot person path, granted", method: "GET", path: "/v1/./persons/" + string(f.known), token: "Bearer good",
			wantStatus: 307, wantAsked: true,
			wantOutcome: &api.Outcome{Route: api.RouteUnmatched, Status: 307}},
		// Encoded dots and slashes are no path segments to the mux: the
		// route answers (its citizen ID is malformed), asked once.
		{name: "an encoded dot-dot citizen ID", method: "GET", path: "/v1/persons/%2E%2E/history", token: "Bearer good",
			wantStatus: 400, wantRoutes: []string{api.RouteHistory}},
		{name: "an encoded slash in a citizen ID", method: "GET", path: "/v1/persons/%2F" + string(f.known), token: "Bearer good",
			wantStatus: 400, wantRoutes: []string{api.RoutePerson}},
		{name: "/v1 itself", method: "GET", path: "/v1",
			wantStatus: 401, wantSlug: "unauthenticated", wantAsked: true},
		{name: "outside /v1", method: "GET", path: "/v2/things",
			wantStatus: 404, wantSlug: "not-found"},
		{name: "wrong method on a probe", method: "DELETE", path: "/healthz",
			wantStatus: 405, wantSlug: "method-not-allowed", wantAllow: "GET, HEAD"},
		{name: "a prefix of /v1 only", method: "GET", path: "/v1x",
			wantStatus: 404, wantSlug: "not-found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := &routeLog{}
			h := api.New(api.Config{Store: f.reader, Authorizer: auth}).Handler()
			hdr := http.Header{}
			if tt.token != "" {
				hdr.Set("Authorization", tt.token)
			}
			rec := do(t, h, tt.method, tt.path, hdr)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantSlug != "" {
				if p := decodeProblem(t, rec); p.Type != api.ProblemTypePrefix+tt.wantSlug {
					t.Errorf("type = %q, want slug %q", p.Type, tt.wantSlug)
				}
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			wantRoutes := tt.wantRoutes
			if tt.wantAsked {
				wantRoutes = []string{api.RouteUnmatched}
				if got := rec.Header().Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", got)
				}
			}
			auth.mu.Lock()
			defer auth.mu.Unlock()
			if !reflect.DeepEqual(auth.routes, wantRoutes) {
				t.Errorf("Authorize asked with %q, want %q", auth.routes, wantRoutes)
			}
			if tt.wantRoutes != nil {
				// A route's own outcome: one, of that route and status.
				if len(auth.outcomes) != 1 || auth.outcomes[0].Route != tt.wantRoutes[0] || auth.outcomes[0].Status != tt.wantStatus {
					t.Errorf("outcomes = %+v, want one of %s with status %d", auth.outcomes, tt.wantRoutes[0], tt.wantStatus)
				}
				return
			}
			var want []api.Outcome
			if tt.wantOutcome != nil {
				want = []api.Outcome{*tt.wantOutcome}
			}
			for i := range auth.outcomes {
				if (auth.outcomes[i].Err != nil) != (auth.outcomes[i].Status >= 400) {
					t.Errorf("outcome %d: status %d with error %v", i, auth.outcomes[i].Status, auth.outcomes[i].Err)
				}
				auth.outcomes[i].Err = nil
			}
			if !reflect.DeepEqual(auth.outcomes, want) {
				t.Errorf("outcomes = %+v, want %+v", auth.outcomes, want)
			}
		})
	}
}

// TestUnmatchedV1AsTheMuxReadsIt: whether an unmatched request is a /v1
// request (authorised and audited as api.RouteUnmatched) is decided on the
// path as the mux routes it, escaped, as the cleanable check now is: an
// encoded dot segment is no segment to the mux, so /v1/%2E%2E/... is a /v1
// request (it was answered 404 without credentials, unaudited), and
// /stats/..%2Fv1%2F... is none (it was refused 401 and audited).
func TestUnmatchedV1AsTheMuxReadsIt(t *testing.T) {
	f := newFixture(t)
	store := newMemStore(t)
	id := string(f.known)
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantAsked          bool
	}{
		{"encoded dot-dot after /v1", "GET", "/v1/%2E%2E/persons/" + id, 401, true},
		{"encoded dot-dots climbing out", "DELETE", "/v1/persons/" + id + "/%2E%2E/%2E%2E/%2E%2E/x", 401, true},
		{"lower-case encoded dots", "GET", "/v1/%2e%2e/%2e%2e/stats", 401, true},
		{"a stats asset holding ..%2Fv1", "DELETE", "/stats/..%2Fv1%2Fpersons", 405, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := &routeLog{}
			h := api.New(api.Config{Store: f.reader, Counter: store, Regions: testRegions{}, Authorizer: auth}).Handler()
			rec := do(t, h, tt.method, tt.path, http.Header{}) // no credentials
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			var want []string
			if tt.wantAsked {
				want = []string{api.RouteUnmatched}
			}
			auth.mu.Lock()
			defer auth.mu.Unlock()
			if !reflect.DeepEqual(auth.routes, want) {
				t.Errorf("Authorize asked with %q, want %q", auth.routes, want)
			}
		})
	}
}
