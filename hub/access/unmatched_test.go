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
		name, method, path, token string
		want                      int
		wantIdentity              string
	}{
		{"wrong method", http.MethodDelete, "/v1/persons/" + personID, DemoSecret("token:tax"), http.StatusMethodNotAllowed, "tax"},
		{"unknown path", http.MethodGet, "/v1/no-such-route", DemoSecret("token:tax"), http.StatusNotFound, "tax"},
		{"no credentials", http.MethodDelete, "/v1/persons/" + personID, "", http.StatusUnauthorized, ""},
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
			req.Header.Set(HeaderPurpose, "tax audit")
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
			if got := audit.last(); got.Identity != tc.wantIdentity || got.Status != tc.want {
				t.Errorf("audited %+v, want identity %q and status %d", got, tc.wantIdentity, tc.want)
			}
		})
	}
}
