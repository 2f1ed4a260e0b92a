package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"golang.org/x/time/rate"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/internal/bearer"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// RouteEvents is the department gateway's route (adapters/gateway.Route;
// hub does not import adapters, a test keeps the two equal).
const RouteEvents = "POST /v1/events"

// HeaderPurpose names the purpose of every request.
const HeaderPurpose = "X-Purpose"

// Access is one audited request, or one person a request disclosed: who
// asked what, for which purpose, and the answer. A refused request has the
// Status of its refusal and, when the credentials identified nobody, an
// empty Identity.
//
// A request that disclosed several people (a page of GET /v1/persons, an
// eligibility decision listing family) is recorded once for itself and
// once more for each person, with that person's CitizenID, so that the
// audit trail finds every read of a citizen by the citizen alone.
type Access struct {
	Identity  string
	Route     string
	CitizenID citizenid.ID // zero when the route names no person or the ID was malformed
	Sections  []schemas.Section
	Purpose   string
	Status    int
	Time      time.Time
	// Detail says, without personal data, what the request did or why a
	// person was disclosed when the route does not say it ("eligibility
	// decision: listed as family member"); usually empty.
	Detail string
}

// Auditor records accesses. Record is called once per /v1 request on the
// request's goroutine, after the answer is known (except for requests
// suppressed by AuthorizerConfig.Refusals, whose count is recorded once an
// interval, from a timer's goroutine); it must not block for
// long (buffer and write asynchronously) and must be safe for concurrent
// use. It never fails the request: an auditor that cannot write must
// deal with that itself (e.g. fail readiness).
type Auditor interface {
	Record(ctx context.Context, a Access)
}

// AuthorizerConfig configures an Authorizer. Policy is required.
type AuthorizerConfig struct {
	Policy *Policy
	// Auditor receives every access, granted or refused. Nil audits nothing.
	Auditor Auditor
	// Now is the clock of audit records and of Refusals' buckets
	// (default time.Now).
	Now func() time.Time
	// Refusals bounds the audit entries of requests that identify nobody,
	// per client address (see RefusalLimit; the zero value is the
	// defaults).
	Refusals RefusalLimit
	// Meter creates pophub.access.refusals.suppressed. Nil means no
	// metrics.
	Meter metric.Meter
}

// Authorizer is hub/api's Authorizer over a Policy. It is safe for
// concurrent use.
//
// A request authenticates with "Authorization: Bearer <token>", whose
// SHA-256 is compared in constant time with every identity's, or with a
// TLS client certificate whose SHA-256 fingerprint an identity lists (the
// server's tls.Config verifies the chain: ClientAuth
// VerifyClientCertIfGiven with the CA). An identity with both a token and
// a certificate must present both (each is bound to the other): either
// alone answers 401.
// A request whose credentials identify nobody is refused with 401 and
// audited, as long as its client address stays within cfg.Refusals; past
// that, with 429 and only a count (see RefusalLimit).
// Then, in order: the identity's token bucket (429), the X-Purpose header
// (400 when missing or malformed), the route's permission and the
// identity's purpose allow-list (403).
type Authorizer struct {
	cfg AuthorizerConfig
	ids []*principal
	// tokens holds every token hash the policy lists, each with its
	// identity: several for one being rotated.
	tokens   []tokenHash
	refusals *refusalLimiter
	// suppressed counts refusals answered 429 without an audit entry of
	// their own. No address label: addresses are unbounded, and personal.
	suppressed metric.Int64Counter
	// authenticated counts requests by identity and by the credential
	// that authenticated them (credentialLabel).
	authenticated metric.Int64Counter
}

// tokenHash is a token's SHA-256 and whose it is.
type tokenHash struct {
	sum  []byte
	id   *principal
	used []metric.AddOption // the identity and credential, for Authorizer.authenticated
}

// certHash is a client certificate's fingerprint.
type certHash struct {
	sum  []byte
	used []metric.AddOption
}

// credentialLabel names a credential on /metrics by its kind and the
// first 8 hex digits of its hash as the policy lists it: enough to tell
// an old token from its successor during a rotation, and nothing of the
// secret (the hash is of a 256-bit random token, or a certificate).
func credentialLabel(kind, hash string) string { return kind + " sha256:" + hash[:min(8, len(hash))] }

// usedOption is the attribute set a credential's requests are counted
// under, as the slice Add takes: built once, so counting allocates
// nothing.
func usedOption(identity, credential string) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("identity", identity), attribute.String("credential", credential)))}
}

type principal struct {
	Identity
	mask    sectionMask
	all     bool // reads every section
	limiter *rate.Limiter
	// certs are the client certificate fingerprints that authenticate
	// the identity (several while one is renewed); hasToken says whether
	// it has a bearer token too, which then must come with them.
	certs    []certHash
	hasToken bool
	sections []schemas.Section
	minCell  int
	counties []string // Identity.SubscribedCounties
}

// NewAuthorizer returns the Authorizer of cfg.Policy.
func NewAuthorizer(cfg AuthorizerConfig) (*Authorizer, error) {
	if cfg.Policy == nil {
		return nil, errors.New("access: AuthorizerConfig.Policy is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Meter == nil {
		cfg.Meter = metricnoop.NewMeterProvider().Meter("")
	}
	a := &Authorizer{cfg: cfg}
	a.refusals = newRefusalLimiter(cfg.Refusals, cfg.Now, a.reportSuppressed)
	var err error
	a.suppressed, err = cfg.Meter.Int64Counter("pophub.access.refusals.suppressed",
		metric.WithUnit("{request}"),
		metric.WithDescription("Requests with no valid credentials answered 429 without an audit entry of their own, "+
			"because their client address exceeded its refusal limit; the trail records each address's count once per interval."))
	if err != nil {
		return nil, fmt.Errorf("access: creating metrics: %w", err)
	}
	a.suppressed.Add(context.Background(), 0) // exported before the first
	a.authenticated, err = cfg.Meter.Int64Counter("pophub.access.authenticated",
		metric.WithUnit("{request}"),
		metric.WithDescription("Requests authenticated, by identity and by the credential that did, named by its kind and the first "+
			"8 hex digits of its hash in the policy (credential=\"token sha256:ce0d695d\"): while a credential is rotated, the old "+
			"one's count stops rising once every client uses the new one. Every credential listed is exported from the start, at zero."))
	if err != nil {
		return nil, fmt.Errorf("access: creating metrics: %w", err)
	}
	for _, id := range cfg.Policy.Identities {
		p := &principal{Identity: id, sections: id.Sections(), minCell: cfg.Policy.MinCell(id), counties: id.SubscribedCounties()}
		p.mask = maskOf(p.sections)
		p.all = len(p.sections) == len(schemas.Sections)
		rl := id.RateLimit
		p.limiter = rate.NewLimiter(rate.Limit(rl.RPS), rl.Burst)
		for _, t := range id.Credentials.TokenSHA256 {
			sum, _ := hex.DecodeString(t) // validated by Parse
			used := usedOption(id.Name, credentialLabel("token", t))
			a.tokens = append(a.tokens, tokenHash{sum: sum, id: p, used: used})
			a.authenticated.Add(context.Background(), 0, used...)
			p.hasToken = true
		}
		for _, f := range id.Credentials.CertSHA256 {
			fp, _ := hex.DecodeString(f)
			used := usedOption(id.Name, credentialLabel("certificate", f))
			p.certs = append(p.certs, certHash{sum: fp, used: used})
			a.authenticated.Add(context.Background(), 0, used...)
		}
		if p.hasToken || len(p.certs) > 0 {
			a.ids = append(a.ids, p)
		}
	}
	return a, nil
}

// Errors, wrapping hub/api's kinds; their text is the problem detail.
var (
	errNoCredentials  = fmt.Errorf("a bearer token or client certificate is required: %w", api.ErrUnauthenticated)
	errBadCredential  = fmt.Errorf("the credentials are not valid: %w", api.ErrUnauthenticated)
	errBadToken       = fmt.Errorf("the bearer token is not recognised: %w", api.ErrInvalidToken)
	errNotBearer      = fmt.Errorf(`the Authorization header is not of the form "Bearer <token>": %w`, api.ErrUnauthenticated)
	errTwoCredentials = fmt.Errorf("the request has more than one Authorization header: send one: %w", api.ErrUnauthenticated)
	errCertRequired   = fmt.Errorf("this token is bound to a client certificate, which the request did not present: %w", api.ErrUnauthenticated)
	errTokenRequired  = fmt.Errorf("this client certificate is bound to a bearer token, which the request did not present: %w", api.ErrUnauthenticated)
	errNoPurpose      = fmt.Errorf("the %s header must name the purpose of the request: %w", HeaderPurpose, hub.ErrInvalid)
	errRateLimited    = fmt.Errorf("too many requests for this identity; slow down: %w", api.ErrRateLimited)
	errRefusals       = fmt.Errorf("too many requests without valid credentials from this address; slow down: %w", api.ErrRateLimited)
)

// purposeError is purposeProblem for the X-Purpose header of a request,
// wrapping hub.ErrInvalid (400). A missing or blank header is
// errNoPurpose; one that is sent but malformed says what is wrong with
// it, so that a client sending 80 Chinese characters learns the limit
// rather than that it sent nothing.
func purposeError(purpose string) error {
	switch msg := purposeProblem(purpose); {
	case msg == "":
		return nil
	case strings.TrimSpace(purpose) == "":
		return errNoPurpose
	default:
		return fmt.Errorf("the %s header %s: %w", HeaderPurpose, msg, hub.ErrInvalid)
	}
}

// purposeExtValue is an X-Purpose sent as an RFC 8187 ext-value: the
// charset UTF-8, a language tag (usually empty) between two apostrophes,
// then the text percent-encoded; the only form in which a browser can
// send a purpose outside ISO-8859-1, since fetch refuses such header
// values. The charset and the tag are matched loosely (any letters,
// digits and hyphens), so that a value meant as one is refused when it
// is malformed rather than taken as text; a raw purpose holding
// apostrophes ("rock'n'roll") names no UTF-8 charset and stays text.
var purposeExtValue = regexp.MustCompile(`^(?i:utf-8)'([A-Za-z0-9-]*)'(.*)$`)

// RequestPurpose is the purpose a request declares in its X-Purpose
// header, decoded from an RFC 8187 ext-value (see purposeExtValue) when
// sent as one, so that the policy check and the audit trail see the same
// text whichever form the client used; a raw UTF-8 value, as Go clients
// send, is taken as it is. A value that is an ext-value but not
// percent-encoded UTF-8 (a raw space, a bad escape), or a request with
// more than one X-Purpose header, is returned as sent, with an error
// wrapping hub.ErrInvalid that says what is wrong (never repeating the
// value). A language tag is read past: a purpose has no language.
func RequestPurpose(r *http.Request) (string, error) {
	values := r.Header.Values(HeaderPurpose)
	if len(values) > 1 {
		return strings.Join(values, ", "), fmt.Errorf("the request has %d %s headers: send one: %w", len(values), HeaderPurpose, hub.ErrInvalid)
	}
	raw := r.Header.Get(HeaderPurpose)
	m := purposeExtValue.FindStringSubmatch(raw)
	if m == nil {
		return raw, nil
	}
	s, ok := decodeExtValue(m[2])
	if !ok {
		return raw, fmt.Errorf("the %s header begins with UTF-8'…' but is not a percent-encoded UTF-8 value (RFC 8187): %w", HeaderPurpose, hub.ErrInvalid)
	}
	return s, nil
}

// decodeExtValue decodes the value of an RFC 8187 ext-value: %XX as the
// byte, any other visible ASCII character as it is (RFC 8187 allows
// fewer, but encoders differ: JavaScript's encodeURIComponent leaves
// ' ( ) *, Go's url.PathEscape : and @). A space, a control or non-ASCII
// character or a bad escape says the text was not encoded, and a text
// that is not UTF-8 is none either.
func decodeExtValue(v string) (string, bool) {
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return "", false
		}
	}
	s, err := url.PathUnescape(v)
	if err != nil || !utf8.ValidString(s) {
		return "", false
	}
	return s, true
}

// Authorize implements api.Authorizer. A refusal is audited with the
// X-Purpose header as sent, after RequestPurpose's decoding (README:
// refused requests included), also when the credentials fail (401) or the
// identity is over its rate limit
// (429): the stated reason of a failed attempt is part of what the trail
// is for, and so is a malformed one (400), which is what was refused. The
// audit store masks citizen IDs in it and bounds its length (hub/audit).
func (a *Authorizer) Authorize(r *http.Request, route string) (api.Grant, error) {
	purpose, badPurpose := RequestPurpose(r)
	p, err := a.authenticate(r)
	if err != nil {
		if !a.refusals.allow(r.RemoteAddr, route) {
			a.suppressed.Add(r.Context(), 1)
			return nil, errRefusals
		}
		a.refuse(r, nil, route, purpose, http.StatusUnauthorized)
		return nil, err
	}
	if !p.limiter.Allow() {
		a.refuse(r, p, route, purpose, http.StatusTooManyRequests)
		return nil, errRateLimited
	}
	if route == api.RouteUnmatched {
		// A wrong method or path: the answer is its 404 or 405, audited
		// with who asked and what purpose they gave, not a complaint
		// about a purpose that reads nothing.
		return &grant{a: a, p: p, purpose: purpose}, nil
	}
	if badPurpose != nil {
		a.refuse(r, p, route, purpose, http.StatusBadRequest)
		return nil, badPurpose
	}
	if err := purposeError(purpose); err != nil {
		a.refuse(r, p, route, purpose, http.StatusBadRequest)
		return nil, err
	}
	if err := p.permit(route, purpose); err != nil {
		a.refuse(r, p, route, purpose, http.StatusForbidden)
		return nil, err
	}
	g := &grant{a: a, p: p, purpose: purpose}
	if personRoute(route) {
		g.sections = p.sections
	}
	return g, nil
}

// Identify authenticates a request without a route: the identity its
// credentials name, or an error wrapping api.ErrUnauthenticated. For
// handlers outside the /v1 read routes (the gateway) that check their own
// permissions.
func (a *Authorizer) Identify(r *http.Request) (Identity, error) {
	p, err := a.authenticate(r)
	if err != nil {
		return Identity{}, err
	}
	return p.Identity, nil
}

func (a *Authorizer) authenticate(r *http.Request) (*principal, error) {
	var byToken, byCert *principal
	var tokenUsed, certUsed []metric.AddOption
	if len(r.Header.Values("Authorization")) > 1 {
		// Two credentials name whom? The audit trail must not guess.
		return nil, errTwoCredentials
	}
	h := r.Header.Get("Authorization")
	if h != "" {
		tok, ok := bearer.Token(h)
		if !ok || tok == "" {
			return nil, errNotBearer
		}
		sum := sha256.Sum256([]byte(tok))
		for _, t := range a.tokens { // every hash, no early exit
			if subtle.ConstantTimeCompare(sum[:], t.sum) == 1 {
				byToken, tokenUsed = t.id, t.used
			}
		}
		if byToken == nil {
			return nil, errBadToken
		}
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		fp := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		for _, p := range a.ids {
			for _, c := range p.certs {
				if subtle.ConstantTimeCompare(fp[:], c.sum) == 1 {
					byCert, certUsed = p, c.used
				}
			}
		}
	}
	// Each credential that authenticated counts: a token bound to a
	// certificate, both.
	count := func(p *principal) *principal {
		ctx := r.Context()
		if byToken == p && tokenUsed != nil {
			a.authenticated.Add(ctx, 1, tokenUsed...)
		}
		if byCert == p && certUsed != nil {
			a.authenticated.Add(ctx, 1, certUsed...)
		}
		return p
	}
	switch {
	case byToken != nil && len(byToken.certs) > 0 && byCert != byToken:
		return nil, errCertRequired
	case byToken != nil:
		return count(byToken), nil
	case byCert != nil && byCert.hasToken:
		// Both listed, both required: a stolen certificate alone is not
		// the identity.
		return nil, errTokenRequired
	case byCert != nil:
		return count(byCert), nil
	case h == "" && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0):
		return nil, errNoCredentials
	}
	return nil, errBadCredential
}

func personRoute(route string) bool {
	switch route {
	case api.RoutePerson, api.RouteHistory, api.RoutePersons:
		return true
	}
	return false
}

// permit checks the route against the identity's grants and its purpose
// against the allow-list. Unknown routes are refused (api.ErrForbidden); a
// purpose outside the allow-list is api.ErrForbiddenPurpose, whose own
// problem type tells a client which of the two to correct.
func (p *principal) permit(route, purpose string) error {
	var ok bool
	switch route {
	case api.RoutePerson, api.RouteHistory, api.RoutePersons:
		ok = len(p.sections) > 0
	case api.RouteUrbanRural, api.RouteResidencePermits:
		ok = p.Stats
	case RouteEvents:
		ok = len(p.Publish) > 0
	case api.RouteEligibility:
		ok = p.Eligibility
	case api.RoutePolicies:
		ok = true // the policies are public rules
	case api.RouteKnownEvents, api.RouteStatus:
		ok = p.Kind == KindAdmin // operators: reconciliation and status
	}
	if !ok {
		return fmt.Errorf("identity %s may not use %s: %w", p.Name, route, api.ErrForbidden)
	}
	if len(p.Purposes) > 0 && !slices.Contains(p.Purposes, purpose) {
		return fmt.Errorf("identity %s may not act for this purpose (allowed: %s): %w", p.Name, strings.Join(p.Purposes, "; "), api.ErrForbiddenPurpose)
	}
	return nil
}

func (a *Authorizer) refuse(r *http.Request, p *principal, route, purpose string, status int) {
	if a.cfg.Auditor == nil {
		return
	}
	acc := Access{Route: route, Purpose: purpose, Status: status, Time: a.cfg.Now()}
	if p != nil {
		acc.Identity = p.Name
	}
	if v := r.PathValue("citizen_id"); v != "" {
		acc.CitizenID, _ = citizenid.Parse(v)
	}
	a.cfg.Auditor.Record(r.Context(), acc)
}

// FlushRefusals audits now every count of suppressed refusals (see
// RefusalLimit) that would otherwise wait for the end of its interval.
// Call it when shutting down, before the Auditor is closed, so that the
// last interval's counts are kept.
func (a *Authorizer) FlushRefusals() { a.refusals.flushAll() }

// reportSuppressed audits, once per address and interval, the refusals
// that were answered 429 without an entry of their own. The entry is
// unidentified like the refusals, on the route of the first of them, and
// names the address: the count alone would not say whom to block.
func (a *Authorizer) reportSuppressed(addr, route string, n int) {
	if a.cfg.Auditor == nil {
		return
	}
	a.cfg.Auditor.Record(context.Background(), Access{Route: route, Status: http.StatusTooManyRequests, Time: a.cfg.Now(),
		Detail: fmt.Sprintf("%d refused requests from %s suppressed in the last %s (no valid credentials; each answered 429)",
			n, addr, a.refusals.cfg.Interval)})
}

// grant is one authorised request.
type grant struct {
	a        *Authorizer
	p        *principal
	purpose  string
	sections []schemas.Section
}

func (g *grant) Record(_ context.Context, rec hub.Record) hub.Record {
	if g.p.all {
		return rec
	}
	return filterRecord(rec, g.p.mask)
}

func (g *grant) History(_ context.Context, changes []hub.Change) []hub.Change {
	if g.p.all {
		return changes
	}
	return filterHistory(changes, g.p.mask)
}

func (g *grant) Done(ctx context.Context, o api.Outcome) {
	if g.a.cfg.Auditor == nil {
		return
	}
	acc := Access{Identity: g.p.Name, Route: o.Route, CitizenID: o.CitizenID, Purpose: g.purpose, Status: o.Status, Time: g.a.cfg.Now(),
		Detail: o.Detail}
	if o.Status < 300 {
		acc.Sections = g.sections
		if o.Sections != nil {
			acc.Sections = o.Sections
		}
	}
	g.a.cfg.Auditor.Record(ctx, acc)
	for _, d := range o.Others {
		other := acc
		other.CitizenID, other.Detail, other.Sections = d.CitizenID, d.Detail, d.Sections
		if other.Sections == nil {
			other.Sections = g.p.sections
		}
		g.a.cfg.Auditor.Record(ctx, other)
	}
}

// CanRead implements api.SectionGrant: a region filter on GET /v1/persons
// is refused to a caller without the hukou section, whose answer would
// say who is registered where.
func (g *grant) CanRead(s schemas.Section) bool { return g.p.all || g.p.mask.has(s) }

// SubscribedCounties implements api.CountyGrant: a caller without the
// hukou section may walk GET /v1/persons?region= of the counties its
// notification subscriptions are fixed to, as a whole, whose subjects
// already say who is registered there (not in which township or village).
func (g *grant) SubscribedCounties() []string { return g.p.counties }

// Identity is the identity the request authenticated as.
func (g *grant) Identity() string { return g.p.Name }

// MinCell is the smallest statistics cell the caller may see (0: every
// cell); see Suppress. hub/api reaches it through an interface assertion:
//
//	if m, ok := g.(interface{ MinCell() int }); ok { … }
func (g *grant) MinCell() int { return g.p.minCell }
