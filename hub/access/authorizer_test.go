package access

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/pophub/pophub/adapters/gateway"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

const personID = "11010519491231002X"

type fakeStore struct{ rec hub.Record }

func (f fakeStore) Person(context.Context, citizenid.ID) (hub.Record, error) { return f.rec, nil }
func (f fakeStore) History(context.Context, citizenid.ID) ([]hub.Change, error) {
	return []hub.Change{
		{Version: 1, EventID: "ps-1", Type: schemas.HukouRegistered, Sections: []string{"identity", "hukou"}, Data: json.RawMessage(`{"name":"张三"}`)},
		{Version: 2, EventID: "tax-1", Type: schemas.BusinessRegistered, Sections: []string{"tax"}, Data: json.RawMessage(`{"business_id":"x"}`)},
		{Version: 3, EventID: "si-1", Type: schemas.InsuranceEnrolled, Sections: []string{"social_insurance"}, Data: json.RawMessage(`{}`)},
	}, nil
}

func fullRecord(t testing.TB) hub.Record {
	id, err := citizenid.Parse(personID)
	if err != nil {
		t.Fatal(err)
	}
	return hub.Record{
		CitizenID: id, Version: 3, Status: hub.StatusActive,
		Identity:        &hub.Identity{Name: "张三"},
		Hukou:           &hub.Hukou{AddressCode: "230102001001", RegionCode: "230102"},
		Tax:             &hub.Tax{Businesses: []hub.Business{{BusinessID: "x"}}},
		SocialInsurance: &hub.SocialInsurance{Scheme: "urban_employee"},
		Provenance:      map[string]hub.Provenance{"identity": {EventID: "ps-1"}, "tax": {EventID: "tax-1"}},
	}
}

type auditLog struct {
	mu  sync.Mutex
	got []Access
}

func (l *auditLog) Record(_ context.Context, a Access) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, a)
}

func (l *auditLog) last() Access {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.got) == 0 {
		return Access{}
	}
	return l.got[len(l.got)-1]
}

func examplePolicy(t testing.TB) *Policy {
	t.Helper()
	p, err := Load("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRouteEventsIsTheGateway(t *testing.T) {
	if RouteEvents != gateway.Route {
		t.Errorf("RouteEvents = %q, gateway.Route = %q", RouteEvents, gateway.Route)
	}
}

func TestAuthorizerOverHTTP(t *testing.T) {
	p := examplePolicy(t)
	audit := &auditLog{}
	az, err := NewAuthorizer(AuthorizerConfig{Policy: p, Auditor: audit})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: fakeStore{fullRecord(t)}, Authorizer: az}).Handler())
	t.Cleanup(srv.Close)

	tok := func(name string) string { return DemoSecret("token:" + name) }
	tests := []struct {
		name       string
		path       string
		token      string
		scheme     string // of the Authorization header; default "Bearer"
		purpose    string
		wantStatus int
		wantHas    []string
		wantLacks  []string
		// wantChallenge begins the WWW-Authenticate header of a 401.
		wantChallenge string
	}{
		{name: "scheme in lower case (RFC 9110: case-insensitive)", path: "/v1/persons/" + personID, scheme: "bearer", token: tok("tax"), purpose: "tax audit", wantStatus: 200},
		// RFC 6750 §3.1: a request without a bearer token gets no error
		// code; invalid_token is for a token presented and not valid.
		{name: "another scheme", path: "/v1/persons/" + personID, scheme: "Basic", token: tok("tax"), purpose: "tax audit", wantStatus: 401,
			wantHas: []string{`not of the form \"Bearer \u003ctoken\u003e\"`}, wantLacks: []string{"not recognised"}, wantChallenge: "Bearer"},
		{name: "no token", path: "/v1/persons/" + personID, purpose: "x", wantStatus: 401, wantHas: []string{"urn:pophub:problem:unauthenticated"}},
		{name: "wrong token", path: "/v1/persons/" + personID, token: "nope", purpose: "x", wantStatus: 401,
			wantHas: []string{"the bearer token is not recognised"}, wantChallenge: `Bearer error="invalid_token"`},
		{name: "missing purpose", path: "/v1/persons/" + personID, token: tok("tax"), wantStatus: 400, wantHas: []string{"X-Purpose"}},
		{name: "blank purpose", path: "/v1/persons/" + personID, token: tok("tax"), purpose: "   ", wantStatus: 400,
			wantHas: []string{"the X-Purpose header must name the purpose of the request"}},
		// A purpose sent but malformed is refused for what is wrong with
		// it, not as if it were missing.
		{name: "purpose over 200 bytes (80 Chinese characters)", path: "/v1/persons/" + personID, token: tok("tax"), purpose: strings.Repeat("社会保险关系转移", 10), wantStatus: 400,
			wantHas: []string{"urn:pophub:problem:invalid-request", "the X-Purpose header is at most 200 bytes (got 240)"}, wantLacks: []string{"must name the purpose", "社会保险"}},
		{name: "purpose with a control character", path: "/v1/persons/" + personID, token: tok("tax"), purpose: "case\t17", wantStatus: 400,
			wantHas: []string{"urn:pophub:problem:invalid-request", "the X-Purpose header must not contain control characters"}, wantLacks: []string{"must name the purpose", "case"}},
		{name: "sections filtered", path: "/v1/persons/" + personID, token: tok("tax"), purpose: "tax audit", wantStatus: 200,
			wantHas: []string{`"identity"`, `"tax"`, `"businesses"`, `"hukou"`}, wantLacks: []string{`"social_insurance"`, `"urban_employee"`}},
		{name: "health sees no tax", path: "/v1/persons/" + personID, token: tok("health"), purpose: "death certification", wantStatus: 200,
			wantHas: []string{`"identity"`, `"status":"active"`}, wantLacks: []string{`"tax"`, `"tax-1"`, `"social_insurance"`}},
		{name: "history filtered", path: "/v1/persons/" + personID + "/history", token: tok("tax"), purpose: "tax audit", wantStatus: 200,
			wantHas: []string{`"tax-1"`, `"ps-1"`, "张三"}, wantLacks: []string{`"si-1"`}},
		{name: "history without data of partly readable changes", path: "/v1/persons/" + personID + "/history", token: tok("stats-bureau"), purpose: "official population statistics", wantStatus: 403},
		// The two 403s have their own problem types, so that a client
		// knows whether the credentials or the purpose are to change
		// without reading the detail (which quotes the policy's purposes).
		{name: "stats forbidden", path: "/v1/persons/" + personID, token: tok("stats-bureau"), purpose: "official population statistics", wantStatus: 403, wantHas: []string{`"type":"urn:pophub:problem:forbidden"`}},
		{name: "stats forbidden, whatever the purpose", path: "/v1/persons/" + personID, token: tok("stats-bureau"), purpose: "curiosity", wantStatus: 403,
			wantHas: []string{`"type":"urn:pophub:problem:forbidden"`, "may not use"}, wantLacks: []string{"may not act for this purpose"}},
		{name: "purpose not allowed", path: "/v1/persons/" + personID, token: tok("si-harbin"), purpose: "curiosity", wantStatus: 403,
			wantHas: []string{`"type":"urn:pophub:problem:forbidden-purpose"`, "may not act for this purpose"}},
		{name: "admin reads all", path: "/v1/persons/" + personID, token: tok("admin"), purpose: "operations", wantStatus: 200, wantHas: []string{`"hukou"`, `"social_insurance"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			if tc.token != "" {
				scheme := cmp.Or(tc.scheme, "Bearer")
				req.Header.Set("Authorization", scheme+" "+tc.token)
			}
			if tc.purpose != "" {
				req.Header.Set(HeaderPurpose, tc.purpose)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			body := string(raw)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantStatus >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("Content-Type %q, want problem+json", resp.Header.Get("Content-Type"))
			}
			if tc.wantStatus == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			// RFC 6750 §3.1: a token presented and not valid is invalid_token.
			if got := resp.Header.Get("WWW-Authenticate"); tc.wantChallenge != "" && got != tc.wantChallenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.wantChallenge)
			}
			for _, w := range tc.wantHas {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %s: %s", w, body)
				}
			}
			for _, w := range tc.wantLacks {
				if strings.Contains(body, w) {
					t.Errorf("body has %s: %s", w, body)
				}
			}
			if a := audit.last(); a.Status != tc.wantStatus {
				t.Errorf("audit status %d, want %d", a.Status, tc.wantStatus)
			}
		})
	}
	a := audit.got
	var granted *Access
	for i := range a {
		if a[i].Status == 200 && a[i].Identity == "tax" {
			granted = &a[i]
			break
		}
	}
	if granted == nil || granted.CitizenID.String() == "" || len(granted.Sections) != 5 || granted.Purpose != "tax audit" || granted.Time.IsZero() {
		t.Errorf("granted access audited as %+v", granted)
	}
}

func TestAuthorizeRateLimit(t *testing.T) {
	p := examplePolicy(t)
	az, _ := NewAuthorizer(AuthorizerConfig{Policy: p})
	rl := mustID(t, p, "researcher").RateLimit // 2/s, burst 5
	var codes []int
	for range rl.Burst + 2 {
		r := httptest.NewRequest(http.MethodGet, "/v1/stats/urban-rural?region=23", nil)
		r.Header.Set("Authorization", "Bearer "+DemoSecret("token:researcher"))
		r.Header.Set(HeaderPurpose, "research project 2026-017")
		_, err := az.Authorize(r, api.RouteUrbanRural)
		codes = append(codes, statusOf(err))
	}
	if codes[rl.Burst-1] != 200 || codes[rl.Burst] != 429 {
		t.Errorf("statuses %v, want %d × 200 then 429", codes, rl.Burst)
	}
}

func statusOf(err error) int {
	switch {
	case err == nil:
		return 200
	case errorsIs(err, api.ErrUnauthenticated):
		return 401
	case errorsIs(err, api.ErrForbidden):
		return 403
	case errorsIs(err, api.ErrRateLimited):
		return 429
	case errorsIs(err, hub.ErrInvalid):
		return 400
	}
	return 500
}

func TestAuthorizeRoutes(t *testing.T) {
	p := examplePolicy(t)
	az, _ := NewAuthorizer(AuthorizerConfig{Policy: p})
	tests := []struct {
		identity, route, purpose string
		want                     int
	}{
		{"stats-bureau", api.RouteUrbanRural, "official population statistics", 200},
		{"stats-bureau", api.RouteResidencePermits, "official population statistics", 200},
		{"tax", api.RouteUrbanRural, "x", 403},
		{"tax", RouteEvents, "x", 200},
		{"si-harbin", RouteEvents, "benefit termination on death", 403},
		{"si-harbin", api.RoutePersons, "benefit termination on death", 200},
		{"tax", "GET /v1/unknown", "x", 403},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+DemoSecret("token:"+tc.identity))
		r.Header.Set(HeaderPurpose, tc.purpose)
		g, err := az.Authorize(r, tc.route)
		if got := statusOf(err); got != tc.want {
			t.Errorf("%s %s: %d (%v), want %d", tc.identity, tc.route, got, err, tc.want)
		}
		if tc.identity == "stats-bureau" && g != nil {
			if m := g.(interface{ MinCell() int }).MinCell(); m != 0 {
				t.Errorf("bureau MinCell %d", m)
			}
		}
	}
}

func TestAuthorizeMTLS(t *testing.T) {
	certA, certB := selfSigned(t), selfSigned(t)
	fp := func(c *x509.Certificate) string { s := sha256.Sum256(c.Raw); return hex.EncodeToString(s[:]) }
	src := strings.Replace(base, "      token_sha256: 0000000000000000000000000000000000000000000000000000000000000002\n",
		"      cert_sha256: "+fp(certA)+"\n", 1)
	// tax: token bound to certificate B.
	src = strings.Replace(src, "      token_sha256: 0000000000000000000000000000000000000000000000000000000000000001\n",
		"      token_sha256: "+HashToken("tax-token")+"\n      cert_sha256: "+fp(certB)+"\n", 1)
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	az, _ := NewAuthorizer(AuthorizerConfig{Policy: p})
	tests := []struct {
		name  string
		cert  *x509.Certificate
		token string
		want  int
	}{
		{"certificate alone", certA, "", 200},
		{"unknown certificate", selfSigned(t), "", 401},
		{"bound token without certificate", nil, "tax-token", 401},
		{"bound token with the wrong certificate", certA, "tax-token", 401},
		{"bound token with its certificate", certB, "tax-token", 200},
		{"bound certificate without its token", certB, "", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := requestWith(tc.cert, tc.token)
			r.Header.Set(HeaderPurpose, "x")
			_, err := az.Authorize(r, api.RoutePerson)
			if got := statusOf(err); got != tc.want {
				t.Errorf("status %d (%v), want %d", got, err, tc.want)
			}
		})
	}
}

func selfSigned(t testing.TB) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: n, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFilterHistoryKeepsInput(t *testing.T) {
	in, _ := fakeStore{}.History(context.Background(), fullRecord(t).CitizenID)
	out := FilterHistory(in, []schemas.Section{schemas.SecIdentity})
	if len(out) != 1 || out[0].Data != nil || len(out[0].Sections) != 1 || in[0].Data == nil || len(in[0].Sections) != 2 {
		t.Errorf("FilterHistory = %+v; input now %+v", out, in[0])
	}
}

func BenchmarkAuthorize(b *testing.B) {
	p := examplePolicy(b)
	rec := fullRecord(b)
	for _, bc := range []struct {
		name string
		az   api.Authorizer
	}{{"none", nil}, {"policy", mustAuthorizer(b, p)},
		// As the hub runs it: its metrics recorded by the SDK.
		{"policy metered", mustAuthorizer(b, p, sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())).Meter("bench"))}} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/v1/persons/"+personID, nil)
			r.Header.Set("Authorization", "Bearer "+DemoSecret("token:tax"))
			r.Header.Set(HeaderPurpose, "tax audit")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if bc.az == nil {
					_ = rec
					continue
				}
				g, err := bc.az.Authorize(r, api.RoutePerson)
				if err != nil {
					b.Fatal(err)
				}
				_ = g.Record(ctx, rec)
				g.Done(ctx, api.Outcome{Route: api.RoutePerson, Status: 200})
			}
		})
	}
}

func mustAuthorizer(b *testing.B, p *Policy, meter ...metric.Meter) *Authorizer {
	// No rate limit in the benchmark: measure the checks, not the refusals.
	q := *p
	q.Identities = append([]Identity(nil), p.Identities...)
	for i := range q.Identities {
		q.Identities[i].RateLimit = &RateLimit{RPS: 1e12, Burst: 1 << 30}
	}
	cfg := AuthorizerConfig{Policy: &q, Auditor: &auditLog{}}
	if len(meter) > 0 {
		cfg.Meter = meter[0]
	}
	az, err := NewAuthorizer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return az
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// TestDoneAuditsEveryDisclosedPerson: a request that disclosed other
// people (a page of GET /v1/persons, an eligibility decision's family) is
// audited once for itself and once per person, under that person's ID,
// with the sections disclosed and the detail the outcome gives.
func TestDoneAuditsEveryDisclosedPerson(t *testing.T) {
	az, err := NewAuthorizer(AuthorizerConfig{Policy: examplePolicy(t), Auditor: &auditLog{}})
	if err != nil {
		t.Fatal(err)
	}
	other := citizenid.ID("110105194912310037")
	family := []schemas.Section{schemas.SecIdentity, schemas.SecHukou}
	decision := []schemas.Section{schemas.SecHousing, schemas.SecStatus}
	tax, _ := examplePolicy(t).Identity("tax")
	taxSections := tax.Sections()
	tests := []struct {
		name    string
		token   string
		purpose string
		out     api.Outcome
		want    []Access
	}{
		{"a page of persons", "tax", "tax audit",
			api.Outcome{Route: api.RoutePersons, Status: 200, Others: []api.Disclosure{{CitizenID: personID}, {CitizenID: other}}},
			[]Access{
				{Identity: "tax", Route: api.RoutePersons, Purpose: "tax audit", Status: 200, Sections: taxSections},
				{Identity: "tax", Route: api.RoutePersons, Purpose: "tax audit", Status: 200, Sections: taxSections, CitizenID: personID},
				{Identity: "tax", Route: api.RoutePersons, Purpose: "tax audit", Status: 200, Sections: taxSections, CitizenID: other},
			}},
		{"an eligibility decision with family", "public_security", "settlement application",
			api.Outcome{Route: api.RouteEligibility, CitizenID: personID, Sections: decision, Status: 200,
				Others: []api.Disclosure{{CitizenID: other, Sections: family, Detail: "listed as family member"}}},
			[]Access{
				{Identity: "public_security", Route: api.RouteEligibility, Purpose: "settlement application", Status: 200, Sections: decision, CitizenID: personID},
				{Identity: "public_security", Route: api.RouteEligibility, Purpose: "settlement application", Status: 200, Sections: family, CitizenID: other, Detail: "listed as family member"},
			}},
		{"an eligibility decision naming its policy and day", "public_security", "settlement application",
			api.Outcome{Route: api.RouteEligibility, CitizenID: personID, Sections: decision, Status: 200, Detail: "eligibility decision chifeng/central as of 2026-05-01",
				Others: []api.Disclosure{{CitizenID: other, Sections: family, Detail: "eligibility decision chifeng/central as of 2026-05-01: listed as family member"}}},
			[]Access{
				{Identity: "public_security", Route: api.RouteEligibility, Purpose: "settlement application", Status: 200, Sections: decision, CitizenID: personID,
					Detail: "eligibility decision chifeng/central as of 2026-05-01"},
				{Identity: "public_security", Route: api.RouteEligibility, Purpose: "settlement application", Status: 200, Sections: family, CitizenID: other,
					Detail: "eligibility decision chifeng/central as of 2026-05-01: listed as family member"},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &auditLog{}
			az.cfg.Auditor = log
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer "+DemoSecret("token:"+tc.token))
			r.Header.Set(HeaderPurpose, tc.purpose)
			g, err := az.Authorize(r, tc.out.Route)
			if err != nil {
				t.Fatal(err)
			}
			g.Done(context.Background(), tc.out)
			if len(log.got) != len(tc.want) {
				t.Fatalf("audited %d accesses, want %d: %+v", len(log.got), len(tc.want), log.got)
			}
			for i, a := range log.got {
				a.Time = time.Time{}
				if !reflect.DeepEqual(a, tc.want[i]) {
					t.Errorf("access %d = %+v, want %+v", i, a, tc.want[i])
				}
			}
		})
	}
}

// TestRegionFilterNeedsHukou: GET /v1/persons?region= answers who is
// registered at an address even when the records shown omit the hukou
// section, so a region filter needs the hukou read grant (403 naming it,
// audited); a walk without one is served, narrowed as any read.
func TestRegionFilterNeedsHukou(t *testing.T) {
	raw, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const taxReads = `read: ["identity", "hukou", "status", "tax", "employment"]`
	if !strings.Contains(string(raw), taxReads) {
		t.Fatalf("the example policy no longer has %s", taxReads)
	}
	text := strings.Replace(string(raw), taxReads, `read: ["identity", "tax"]`, 1)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	audit := &auditLog{}
	az, err := NewAuthorizer(AuthorizerConfig{Policy: p, Auditor: audit})
	if err != nil {
		t.Fatal(err)
	}
	store, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	var in []hub.Input
	for n, addr := range []string{"230102001001", "230103001001"} {
		id := storetest.ValidID(n + 1)
		in = append(in, storetest.Event(t, schemas.HukouRegistered, id, fmt.Sprintf("r%d", n), at,
			schemas.HukouRegisteredData{Name: "李娜", Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly), Ethnicity: "01", AddressCode: addr, HouseholdID: "H1", Reason: "birth"}))
	}
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Authorizer: az}).Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		name     string
		identity string
		purpose  string
		query    string
		status   int
		persons  int
	}{
		{"region without hukou", "tax", "tax audit", "region=230102001001", http.StatusForbidden, 0},
		{"province without hukou", "tax", "tax audit", "region=23", http.StatusForbidden, 0},
		{"everyone without hukou", "tax", "tax audit", "limit=10", http.StatusOK, 2},
		{"region with hukou", "health", "death certification", "region=230102001001", http.StatusOK, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := walkPersons(t, srv.URL, tc.identity, tc.purpose, tc.query, tc.status)
			if tc.status == http.StatusForbidden {
				var pr api.Problem
				if err := json.Unmarshal(body, &pr); err != nil || !strings.Contains(pr.Detail, "hukou") {
					t.Errorf("problem %s does not name the hukou grant", body)
				}
				if strings.Contains(string(body), "2301020") || strings.Contains(string(body), "李娜") {
					t.Errorf("refusal discloses a person: %s", body)
				}
				if a := audit.last(); a.Status != http.StatusForbidden || a.Identity != tc.identity || a.Route != api.RoutePersons {
					t.Errorf("refusal audited as %+v", a)
				}
				return
			}
			var page api.PersonsPage
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Persons) != tc.persons {
				t.Fatalf("%d persons, want %d", len(page.Persons), tc.persons)
			}
			id, _ := p.Identity(tc.identity)
			for _, r := range page.Persons {
				if (r.Hukou != nil) != id.CanRead(schemas.SecHukou) {
					t.Errorf("hukou section shown %v to %s", r.Hukou != nil, tc.identity)
				}
			}
		})
	}
}

// TestRegionWalkOfSubscribedCounty: a subscriber without the hukou grant
// whose subscriptions are fixed to one county (as the policy validator
// allows) bootstraps with GET /v1/persons?region=<county>, as its SDK
// does: the walk is served within that county, and refused elsewhere with
// a detail naming the grant and the county, never sending it to walk the
// whole country. With the hukou grant (the example policy's si-harbin)
// its city is walked as before.
func TestRegionWalkOfSubscribedCounty(t *testing.T) {
	raw, err := os.ReadFile("../../ops/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	oneCounty := string(raw)
	for old, repl := range map[string]string{
		`read: ["identity", "hukou", "status", "social_insurance"]`:                                                   `read: ["identity", "status", "social_insurance"]`,
		"      - pop.migration.23.2301.*.*.*.*\n      - pop.migration.*.*.*.23.2301.*\n      - pop.death.23.2301.*\n": "      - pop.death.23.2301.230102\n",
		"      - pop.changed.23.2301.*.status\n":                                                                      "      - pop.changed.23.2301.230102.status\n",
	} {
		if !strings.Contains(oneCounty, old) {
			t.Fatalf("the example policy no longer has %q", old)
		}
		oneCounty = strings.Replace(oneCounty, old, repl, 1)
	}
	store, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	var in []hub.Input
	for n, addr := range []string{"230102001001", "230102019200", "230103001001"} {
		id := storetest.ValidID(n + 1)
		in = append(in, storetest.Event(t, schemas.HukouRegistered, id, fmt.Sprintf("r%d", n), at,
			schemas.HukouRegisteredData{Name: "李娜", Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly), Ethnicity: "01", AddressCode: addr, HouseholdID: "H1", Reason: "birth"}))
	}
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	servers := map[string]string{}
	for name, text := range map[string]string{"example": string(raw), "one county": oneCounty} {
		path := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := Load(path) // the validator accepts both
		if err != nil {
			t.Fatalf("%s policy: %v", name, err)
		}
		az, err := NewAuthorizer(AuthorizerConfig{Policy: p, Auditor: &auditLog{}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Authorizer: az}).Handler())
		t.Cleanup(srv.Close)
		servers[name] = srv.URL
	}

	tests := []struct {
		name    string
		policy  string
		query   string
		status  int
		persons int
	}{
		{"its county, as the SDK bootstraps it", "one county", "region=230102&limit=1000", http.StatusOK, 2},
		// Finer than the county its subjects name: who lives there is
		// the hukou address it may not read.
		{"a village of its county", "one county", "region=230102019200", http.StatusForbidden, 0},
		{"another county", "one county", "region=230103", http.StatusForbidden, 0},
		{"its city", "one county", "region=2301", http.StatusForbidden, 0},
		{"its city in six digits", "one county", "region=230100", http.StatusForbidden, 0},
		{"the city, with hukou", "example", "region=2301&limit=1000", http.StatusOK, 3},
		{"the city in six digits, with hukou", "example", "region=230100", http.StatusOK, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := walkPersons(t, servers[tc.policy], "si-harbin", "benefit termination on death", tc.query, tc.status)
			if tc.status == http.StatusForbidden {
				var pr api.Problem
				if err := json.Unmarshal(body, &pr); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(pr.Detail, `"hukou" read grant`) || !strings.Contains(pr.Detail, "230102") {
					t.Errorf("detail %q names neither the hukou grant nor the county it may walk", pr.Detail)
				}
				if strings.Contains(pr.Detail, "without region") {
					t.Errorf("detail %q sends it to walk the whole country", pr.Detail)
				}
				return
			}
			var page api.PersonsPage
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Persons) != tc.persons {
				t.Errorf("%d persons, want %d", len(page.Persons), tc.persons)
			}
		})
	}
}

// walkPersons asks GET /v1/persons?query of the hub at base as identity
// for purpose, fails the test unless it answers status, and returns the
// body.
func walkPersons(t *testing.T, base, identity, purpose, query string, status int) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/persons?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+DemoSecret("token:"+identity))
	req.Header.Set(HeaderPurpose, purpose)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	return body
}

// TestAuthorizePurposeExtValue: a browser cannot put Chinese into a header
// (fetch refuses anything outside ISO-8859-1), so the statistics page sends
// such a purpose as an RFC 8187 ext-value. The hub checks and audits the
// decoded text; Go clients keep sending raw UTF-8; a value that only looks
// like an ext-value is refused with a detail saying what is wrong.
func TestAuthorizePurposeExtValue(t *testing.T) {
	p := examplePolicy(t)
	audit := &auditLog{}
	az, err := NewAuthorizer(AuthorizerConfig{Policy: p, Auditor: audit})
	if err != nil {
		t.Fatal(err)
	}
	const transfer = "social-insurance transfer (社会保险关系转移)"
	tests := []struct {
		name, header string
		want         int
		wantAudited  string
		wantDetail   string
	}{
		{"raw UTF-8 from a Go client", transfer, 200, transfer, ""},
		{"ext-value from the page", "UTF-8''" + url.PathEscape(transfer), 200, transfer, ""},
		{"charset in lower case (RFC 8187: case-insensitive)", "utf-8''" + url.PathEscape(transfer), 200, transfer, ""},
		{"ext-value of a purpose not allowed", "UTF-8''" + url.PathEscape("好奇"), 403, "好奇", ""},
		{"truncated percent escape", "UTF-8''%E7%A4", 400, "UTF-8''%E7%A4", "is not a percent-encoded UTF-8 value"},
		{"bad percent escape", "UTF-8''%zz", 400, "UTF-8''%zz", "is not a percent-encoded UTF-8 value"},
		{"decodes to a control character", "UTF-8''case%0A17", 400, "case\n17", "must not contain control characters"},
		{"decodes to nothing", "UTF-8''", 400, "", "must name the purpose"},
		{"ext-value with a language tag", "UTF-8'zh-CN'" + url.PathEscape(transfer), 200, transfer, ""},
		{"as encodeURIComponent writes it", "UTF-8''social-insurance%20transfer%20(%E7%A4%BE%E4%BC%9A%E4%BF%9D%E9%99%A9%E5%85%B3%E7%B3%BB%E8%BD%AC%E7%A7%BB)", 200, transfer, ""},
		{"spaces after UTF-8'': not encoded", "UTF-8''benefit termination", 400, "UTF-8''benefit termination", "is not a percent-encoded UTF-8 value"},
		{"Chinese after UTF-8'': not encoded", "UTF-8''社会保险", 400, "UTF-8''社会保险", "is not a percent-encoded UTF-8 value"},
		{"raw Latin-1, as Python's http.client sends café", "caf\xe9", 400, "caf\xe9", "must be UTF-8"},
		{"apostrophes in a raw purpose", "rock'n'roll (社会保险关系转移)", 403, "rock'n'roll (社会保险关系转移)", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer "+DemoSecret("token:si-harbin"))
			r.Header.Set(HeaderPurpose, tc.header)
			g, err := az.Authorize(r, api.RoutePersons)
			if got := statusOf(err); got != tc.want {
				t.Fatalf("status %d (%v), want %d", got, err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantDetail) {
				t.Errorf("detail %q, want it to say %q", err, tc.wantDetail)
			}
			if g != nil {
				g.Done(r.Context(), api.Outcome{Route: api.RoutePersons, Status: 200})
			}
			if got := audit.last().Purpose; got != tc.wantAudited {
				t.Errorf("audited purpose %q, want %q", got, tc.wantAudited)
			}
		})
	}
}

// TestOneCredentialOnePurpose: a request carrying two Authorization
// headers (two identities: which one acts?) is refused as unauthenticated,
// and one carrying two X-Purpose headers as malformed, rather than
// running and being audited as the first of each.
func TestOneCredentialOnePurpose(t *testing.T) {
	p := examplePolicy(t)
	az, err := NewAuthorizer(AuthorizerConfig{Policy: p, Auditor: &auditLog{}})
	if err != nil {
		t.Fatal(err)
	}
	const purpose = "social-insurance transfer (社会保险关系转移)"
	tests := []struct {
		name     string
		tokens   []string
		purposes []string
		want     int
	}{
		{"one of each", []string{"token:si-harbin"}, []string{purpose}, 200},
		{"two identities", []string{"token:si-harbin", "token:stats-bureau"}, []string{purpose}, 401},
		{"the same token twice", []string{"token:si-harbin", "token:si-harbin"}, []string{purpose}, 401},
		{"two purposes", []string{"token:si-harbin"}, []string{purpose, "benefit termination on death"}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, tok := range tc.tokens {
				r.Header.Add("Authorization", "Bearer "+DemoSecret(tok))
			}
			for _, p := range tc.purposes {
				r.Header.Add(HeaderPurpose, p)
			}
			g, err := az.Authorize(r, api.RoutePersons)
			if got := statusOf(err); got != tc.want {
				t.Fatalf("status %d (%v), want %d", got, err, tc.want)
			}
			if g != nil {
				g.Done(r.Context(), api.Outcome{Route: api.RoutePersons, Status: 200})
			}
		})
	}
}
