package access

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestCertificateDepartmentGateway: a department that signs in with a
// client certificate instead of a token may publish through POST
// /v1/events, as the authorizer lets it. policy explain used to leave the
// gateway out for it, so a security officer approving the policy was told
// the department could not write over HTTP; and the policy check refused
// such a department without a Kafka credential, as if it could not
// publish at all.
func TestCertificateDepartmentGateway(t *testing.T) {
	b, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t)
	sum := sha256.Sum256(cert.Raw)
	const healthToken = "      token_sha256: 0bdb39387ca3236516235fd357529b65c891d33b01027393198485438cc418a5\n"
	if !strings.Contains(string(b), healthToken) {
		t.Fatal("the example policy no longer has health's token")
	}
	withCert := strings.Replace(string(b), healthToken, "      cert_sha256: "+hex.EncodeToString(sum[:])+"\n", 1)

	tests := []struct {
		name   string
		policy string
	}{
		{"with a Kafka credential", withCert},
		// health's kafka block, up to its server_key, removed: the
		// certificate is its only credential.
		{"without a Kafka credential", regexp.MustCompile(`(?s)(cert_sha256: [0-9a-f]+\n)      kafka:\n.*?server_key: [^\n]+\n`).
			ReplaceAllString(withCert, "$1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.policy))
			if err != nil {
				t.Fatalf("the policy is refused: %v", err)
			}
			az, err := NewAuthorizer(AuthorizerConfig{Policy: p})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
			r.Header.Set(HeaderPurpose, "death certificates")
			if _, err := az.Authorize(r, RouteEvents); err != nil {
				t.Fatalf("the certificate's holder may not publish through the gateway: %v", err)
			}
			text, err := p.Explain("health")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text, "POST /v1/events (gateway): health events") {
				t.Errorf("policy explain does not list the gateway the authorizer lets health use:\n%s", text)
			}
		})
	}
}
