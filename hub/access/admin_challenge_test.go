package access

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/memdb"
)

// TestAdminRoutesChallengeAnUnknownTokenAsInvalid: an operator's tool or
// a generated client tells a revoked token (fetch another) from none sent
// by the challenge: the admin routes answer a token no identity lists with
// WWW-Authenticate: Bearer error="invalid_token" (RFC 6750), as the other
// routes do and as the OpenAPI document's 401 says.
func TestAdminRoutesChallengeAnUnknownTokenAsInvalid(t *testing.T) {
	p := examplePolicy(t)
	az, err := NewAuthorizer(AuthorizerConfig{Policy: p, Auditor: &auditLog{}})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	srv := httptest.NewServer(api.New(api.Config{Store: fakeStore{fullRecord(t)}, Authorizer: az,
		Mount: api.AdminHandlers(api.AdminConfig{Store: mem, Authorizer: az})}).Handler())
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v1/persons/" + personID}, // the reference: passes
		{http.MethodGet, "/v1/admin/status"},
		{http.MethodPost, "/v1/admin/known-events"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			req.Header.Set("Authorization", "Bearer not-a-token-anyone-has")
			req.Header.Set(HeaderPurpose, "operations")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
			}
			if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`; got != want {
				t.Errorf("WWW-Authenticate %q, want %q (openapi.yaml components/responses/unauthenticated); body %s", got, want, body)
			}
		})
	}
}
