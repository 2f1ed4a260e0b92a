package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas"
)

// TestAuthenticationAnswers: a request without a bearer token, one with a
// malformed Authorization header and one with a token the gateway does not
// know are each refused with a 401 that says which it is, without echoing
// what was sent; the configured token is accepted.
func TestAuthenticationAnswers(t *testing.T) {
	const secret = "housing-secret"
	body := encodeAll(t, housingEvents(t, 1))[0]
	tests := []struct {
		name          string
		authorization string // "" sends no header
		code          int
		detail        string // a substring of the problem's detail
		challenge     string // the WWW-Authenticate header
	}{
		{"no header", "", http.StatusUnauthorized, "a department bearer token is required", "Bearer"},
		{"another scheme", "Basic aG91c2luZzpzZWNyZXQ=", http.StatusUnauthorized, "a department bearer token is required", "Bearer"},
		{"bearer without a token", "Bearer ", http.StatusUnauthorized, "a department bearer token is required", "Bearer"},
		{"wrong token", "Bearer nope-guessed-token", http.StatusUnauthorized, "not recognised", `Bearer error="invalid_token"`},
		{"right token", "Bearer " + secret, http.StatusAccepted, "", ""},
		{"right token, lower-case scheme", "bearer " + secret, http.StatusAccepted, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sender := &recordingSender{}
			h, err := New(Config{Sender: sender, Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken(secret)}}})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", bytes.NewReader(body))
			req.Header.Set("Content-Type", ContentTypeEvent)
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var raw bytes.Buffer
			raw.ReadFrom(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tc.code, raw.String())
			}
			if tc.code == http.StatusAccepted {
				if len(sender.got) != 1 {
					t.Errorf("%d events sent, want 1", len(sender.got))
				}
				return
			}
			if len(sender.got) != 0 {
				t.Errorf("%d events sent on a refusal", len(sender.got))
			}
			var p Problem
			if err := json.Unmarshal(raw.Bytes(), &p); err != nil {
				t.Fatalf("decoding the problem: %v", err)
			}
			if p.Type != "urn:pophub:problem:unauthenticated" || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("problem %+v, want unauthenticated with detail containing %q", p, tc.detail)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, tc.challenge) ||
				(tc.challenge == "Bearer" && strings.Contains(got, "error=")) {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tok := strings.TrimSpace(strings.TrimPrefix(tc.authorization, "Bearer")); tok != "" &&
				(strings.Contains(raw.String(), tok) || strings.Contains(resp.Header.Get("WWW-Authenticate"), tok)) {
				t.Errorf("the answer echoes the credential %q", tok)
			}
		})
	}
}
