package access

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pophub/pophub/hub/api"
)

// TestRotatedCredentials lists two tokens for one identity and two
// certificates, bound to two tokens, for another: while a credential is
// rotated each listed one authenticates as its identity, and nothing else
// does.
func TestRotatedCredentials(t *testing.T) {
	certOld, certNew, stranger := selfSigned(t), selfSigned(t), selfSigned(t)
	fp := func(c *x509.Certificate) string { s := sha256.Sum256(c.Raw); return hex.EncodeToString(s[:]) }
	src := strings.Replace(base, "      token_sha256: 0000000000000000000000000000000000000000000000000000000000000001\n",
		"      token_sha256: ["+HashToken("tax-old")+", "+strings.ToUpper(HashToken("tax-new"))+"]\n", 1)
	src = strings.Replace(src, "      token_sha256: 0000000000000000000000000000000000000000000000000000000000000002\n",
		"      token_sha256:\n        - "+HashToken("si-old")+"\n        - "+HashToken("si-new")+
			"\n      cert_sha256: ["+fp(certOld)+", "+fp(certNew)+"]\n", 1)
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	az, err := NewAuthorizer(AuthorizerConfig{Policy: p, Meter: provider.Meter("test")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		cert  *x509.Certificate
		want  string // the identity, or the error's text
	}{
		{"old token", "tax-old", nil, "tax"},
		{"new token, its hash in upper case", "tax-new", nil, "tax"},
		{"a token never listed", "tax-older", nil, errBadToken.Error()},
		{"old certificate with new token", "si-new", certOld, "si"},
		{"new certificate with old token", "si-old", certNew, "si"},
		{"new certificate with new token", "si-new", certNew, "si"},
		{"bound token with an unlisted certificate", "si-new", stranger, errCertRequired.Error()},
		{"bound token without a certificate", "si-old", nil, errCertRequired.Error()},
		{"listed certificate without a token", "", certNew, errTokenRequired.Error()},
		{"another identity's token with a certificate", "tax-new", certNew, "tax"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := az.Identify(requestWith(tc.cert, tc.token))
			got := id.Name
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("authenticated as %q, want %q", got, tc.want)
			}
		})
	}
	// Each credential's requests are counted, the unused ones at zero, so
	// that the operator sees when clients have left the old one.
	label := func(kind, hash string) string { return kind + " sha256:" + strings.ToLower(hash)[:8] }
	want := map[string]int64{
		"tax " + label("token", HashToken("tax-old")):           1,
		"tax " + label("token", HashToken("tax-new")):           2,
		"si " + label("token", HashToken("si-old")):             1,
		"si " + label("token", HashToken("si-new")):             2,
		"si " + label("certificate", fp(certOld)):               1,
		"si " + label("certificate", fp(certNew)):               2,
		"hub-less " + label("token", HashToken("never listed")): -1, // not exported
	}
	got := authenticatedCounts(t, reader)
	for k, n := range want {
		if n < 0 {
			if _, ok := got[k]; ok {
				t.Errorf("pophub.access.authenticated has a series for %s", k)
			}
			continue
		}
		if got[k] != n {
			t.Errorf("pophub.access.authenticated{%s} = %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	// The rotated identity keeps its grants under either token.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer tax-new")
	r.Header.Set(HeaderPurpose, "rotation check")
	if _, err := az.Authorize(r, api.RoutePerson); err != nil {
		t.Errorf("the new token lost the identity's grants: %v", err)
	}
}

// TestRotatedCredentialsChecked: a list is checked value by value, and a
// problem names the value's place in it.
func TestRotatedCredentialsChecked(t *testing.T) {
	one := "0000000000000000000000000000000000000000000000000000000000000001"
	tests := []struct {
		name, replace, want string
	}{
		{"a bad second hash", "[" + one + ", 12ab]",
			`identities[1] "tax": credentials.token_sha256[1]: want the 64 hexadecimal digits of the token's SHA-256`},
		{"the same token twice", "[" + one + ", " + strings.ToUpper(one) + "]",
			`identities[1] "tax": credentials.token_sha256[1]: the same token is listed twice`},
		{"another identity's token in the list", "[" + one + ", 0000000000000000000000000000000000000000000000000000000000000002]",
			`identities[2] "si": credentials.token_sha256: the same token as identities[1]`},
		{"a mapping", "{old: " + one + "}", "want a hash, or a list of hashes while a credential is rotated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, "token_sha256: "+one, "token_sha256: "+tc.replace, 1)
			_, err := Parse([]byte(src))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse: %v, want a ValidationError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse:\n%v\nwant a problem containing %q", err, tc.want)
			}
		})
	}
	// An empty list is no token: the identity has no HTTP credential.
	src := strings.Replace(base, "token_sha256: "+one, "token_sha256: []", 1)
	if _, err := Parse([]byte(src)); err == nil || !strings.Contains(err.Error(), `identities[1] "tax": credentials: reads over HTTP but has neither token_sha256 nor cert_sha256`) {
		t.Errorf("token_sha256: [] on an identity reading over HTTP: %v", err)
	}
}

// TestRotatedCredentialsExplained: policy explain shows each credential
// of a rotation.
func TestRotatedCredentialsExplained(t *testing.T) {
	src := strings.Replace(base, "token_sha256: 0000000000000000000000000000000000000000000000000000000000000001",
		"token_sha256: [aaaaaaaaaaaa0000000000000000000000000000000000000000000000000001, bbbbbbbbbbbb0000000000000000000000000000000000000000000000000001]", 1)
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Explain("tax")
	if err != nil {
		t.Fatal(err)
	}
	want := "2 bearer tokens, each accepted while one is rotated: sha256:aaaaaaaaaaaa…, sha256:bbbbbbbbbbbb…"
	if !strings.Contains(out, want) {
		t.Errorf("explain:\n%s\nwant %q", out, want)
	}
}

// TestDigestsJSON: one value is written as the plain string the field
// held before it took lists, so that the policy digests the audit trail
// recorded under earlier releases still match an unchanged policy.
func TestDigestsJSON(t *testing.T) {
	for _, tc := range []struct {
		d    Digests
		want string
	}{
		{nil, `""`},
		{Digests{"ab"}, `"ab"`},
		{Digests{"ab", "cd"}, `["ab","cd"]`},
	} {
		b, err := json.Marshal(struct{ T Digests }{tc.d})
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"T":` + tc.want + `}`; string(b) != want {
			t.Errorf("%v encodes as %s, want %s", tc.d, b, want)
		}
	}
}

// requestWith is a request presenting the client certificate and the
// bearer token, each when given.
func requestWith(cert *x509.Certificate, token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if cert != nil {
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// TestOneSecretPerIdentity: a Kafka or NATS credential copied from
// another identity's entry — mid-rotation, meant to be edited — is
// refused, as a shared token is: with one password for both, whoever
// holds one identity's publishes or subscribes as the other.
func TestOneSecretPerIdentity(t *testing.T) {
	b, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	block := func(name, next string) string {
		from, to := strings.Index(s, "  - name: "+name+"\n"), strings.Index(s, "  - name: "+next+"\n")
		if from < 0 || to < from {
			t.Fatalf("the example policy no longer has %s before %s", name, next)
		}
		return s[from:to]
	}
	tail := func(blk, from string) string {
		i := strings.Index(blk, from)
		if i < 0 {
			t.Fatalf("no %q in\n%s", from, blk)
		}
		return blk[i:]
	}
	health, tax := block("health", "employment"), block("tax", "marriage")
	copied := strings.Replace(tax, tail(tax, "      kafka:\n"), tail(health, "      kafka:\n"), 1)
	_, err = Parse([]byte(strings.Replace(s, tax, copied, 1)))
	for _, want := range []string{
		`identities[7] "tax": credentials.kafka.password: the same Kafka password reference as identities[2]`,
		`identities[7] "tax": credentials.kafka.scram_sha512: the same Kafka SCRAM keys as identities[2]`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tax given health's Kafka credential: %v\nwant %q", err, want)
		}
	}

	// The same for a NATS password hash.
	si := block("si-harbin", "stats-bureau")
	bcryptLine := func(blk string) string {
		for _, l := range strings.Split(blk, "\n") {
			if strings.Contains(l, "password_bcrypt:") {
				return l
			}
		}
		t.Fatalf("no password_bcrypt in\n%s", blk)
		return ""
	}
	hubBlock := block("hub", "public_security")
	copiedSI := strings.Replace(si, bcryptLine(si), bcryptLine(hubBlock), 1)
	_, err = Parse([]byte(strings.Replace(s, si, copiedSI, 1)))
	if err == nil || !strings.Contains(err.Error(), `"si-harbin": credentials.nats.password_bcrypt: the same NATS password hash as identities[0]`) {
		t.Errorf("si-harbin given the hub's NATS password hash: %v", err)
	}
}

// authenticatedCounts reads pophub.access.authenticated by "identity
// credential".
func authenticatedCounts(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "pophub.access.authenticated" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				id, _ := dp.Attributes.Value("identity")
				cred, _ := dp.Attributes.Value("credential")
				out[id.AsString()+" "+cred.AsString()] = dp.Value
			}
		}
	}
	return out
}

// TestRotatedListItemMissing: a "-" line added for the new hash and never
// filled in, or a template's "~", is refused with its line, as an empty
// string is, not dropped: the file would otherwise check as valid and the
// mistake show only as 401s once clients move to the new token.
func TestRotatedListItemMissing(t *testing.T) {
	one := "0000000000000000000000000000000000000000000000000000000000000001"
	for _, list := range []string{"[" + one + ", null]", "[" + one + ", ~]", "\n        - " + one + "\n        -", "[" + one + `, ""]`, "[" + one + ", [x]]"} {
		src := strings.Replace(base, "token_sha256: "+one, "token_sha256: "+list, 1)
		_, err := Parse([]byte(src))
		if err == nil || !strings.Contains(err.Error(), "an empty or malformed item in a list of hashes") {
			t.Errorf("token_sha256: %s: %v", strings.TrimSpace(list), err)
		}
	}
}

// TestHubNeedsANATSPassword: the hub logs in to NATS with a password, so
// a policy giving it an nkey is refused, rather than a refused login
// being explained by a password hash the policy does not have.
func TestHubNeedsANATSPassword(t *testing.T) {
	src := strings.Replace(base, `nats: {password_bcrypt: "$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy"}`,
		"nats: {nkey: UAXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4}", 1)
	if src == base {
		t.Fatal("the test policy no longer gives the hub that password hash")
	}
	_, err := Parse([]byte(src))
	if err == nil || !strings.Contains(err.Error(), `identities[0] "hub": credentials.nats: the hub logs in to NATS with a password (--nats-password): give password_bcrypt, not an nkey`) {
		t.Errorf("a hub with an nkey: %v", err)
	}
	hub := Identity{Name: "hub", Credentials: Credentials{NATS: &NATSCredential{Nkey: "UAXU"}}}
	if err := hub.CheckNATSPassword("anything"); err == nil {
		t.Error("an identity without a password hash takes any NATS password as its own")
	}
}
