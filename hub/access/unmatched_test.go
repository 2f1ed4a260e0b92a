package access

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pophub/pophub/hub/api"
)

// TestUnmatchedRequestsAnsweredAndAudited: a /v1 request that matches no
// route is answered 404 or 405 to an identity with valid credentials and
// 401 to one without, and either way goes to the audit trail with who
// asked and the answer.
func TestUnmatchedRequestsAnsweredAndAudited(t *testing.T) {
	audit := &auditLog{}
	az, err := NewAuthorizer(AuthorizerConfig{Policy: examplePolicy(t), Auditor: audit})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: fakeStore{fullRecord(t)}, Authorizer: az}).Handler())
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, method, path, token, purpose string
		want                               int
		wantIdentity                       string
	}{
		{"wrong method", http.MethodDelete, "/v1/persons/" + personID, DemoSecret("token:tax"), "tax audit", http.StatusMethodNotAllowed, "tax"},
		{"unknown path", http.MethodGet, "/v1/no-such-route", DemoSecret("token:tax"), "tax audit", http.StatusNotFound, "tax"},
		// The route is what is wrong, not the purpose.
		{"without a purpose", http.MethodDelete, "/v1/persons/" + personID, DemoSecret("token:tax"), "", http.StatusMethodNotAllowed, "tax"},
		{"a purpose outside the allow-list", http.MethodDelete, "/v1/persons/" + personID, DemoSecret("token:si-harbin"), "curiosity", http.StatusMethodNotAllowed, "si-harbin"},
		{"no credentials", http.MethodDelete, "/v1/persons/" + personID, "", "tax audit", http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(audit.got)
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.purpose != "" {
				req.Header.Set(HeaderPurpose, tc.purpose)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
			}
			audit.mu.Lock()
			n := len(audit.got)
			audit.mu.Unlock()
			if n != before+1 {
				t.Fatalf("%d audit entries for one request", n-before)
			}
			if got := audit.last(); got.Identity != tc.wantIdentity || got.Status != tc.want || got.Purpose != tc.purpose {
				t.Errorf("audited %+v, want identity %q, status %d and purpose %q", got, tc.wantIdentity, tc.want, tc.purpose)
			}
		})
	}
}
