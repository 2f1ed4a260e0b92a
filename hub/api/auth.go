package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Authorizer decides who may read what. It is the seam for the security
// issue (bearer tokens or client certificates, the X-Purpose header,
// per-identity rate limits, section filtering, the audit trail); the API
// itself enforces nothing.
//
// Authorize is called once per /v1 request, before the citizen ID in the
// path is parsed, with the route pattern (RoutePerson, RouteHistory), or
// RouteUnmatched for a /v1 request no route matches (a wrong method, an
// unknown path): granted, that request is answered 404 or 405 (or the
// mux's redirect) and reported to Done; refused, it gets the refusal. It
// returns the caller's Grant, or an error wrapping ErrUnauthenticated (401,
// with WWW-Authenticate: Bearer), ErrForbidden (403), ErrRateLimited (429)
// or hub.ErrInvalid (400, e.g. a missing X-Purpose); the error's text is
// shown to the caller as the problem detail, so it must not reveal secrets.
// A refused request is the Authorizer's to audit: no Grant exists for it.
// Implementations are safe for concurrent use and must honour r.Context().
type Authorizer interface {
	Authorize(r *http.Request, route string) (Grant, error)
}

// Grant is what one authorised request may see. Its methods are called on
// the request's goroutine, in this order: Record or History (only when the
// store answered), then Done exactly once.
type Grant interface {
	// Record narrows a golden record to the sections the caller may read
	// (absent sections are nil/empty and so omitted from the JSON).
	Record(ctx context.Context, rec hub.Record) hub.Record
	// History narrows history entries the same way (for example dropping
	// the data of changes to sections the caller may not read).
	History(ctx context.Context, changes []hub.Change) []hub.Change
	// Done reports the outcome, for the audit trail.
	Done(ctx context.Context, o Outcome)
}

// SectionGrant is implemented by a Grant whose caller may read only some
// sections of a record. A route that selects records by a section's
// content asks it first, since its answer discloses that content even
// when the records shown omit the section: GET /v1/persons?region= selects
// by the hukou address and needs schemas.SecHukou (403 otherwise, unless
// CountyGrant allows the region). A Grant without it reads every section.
type SectionGrant interface {
	// CanRead reports whether the caller may read the section.
	CanRead(s schemas.Section) bool
}

// CountyGrant is implemented by a SectionGrant whose caller, without the
// hukou section, is subscribed to notifications fixed to some counties
// (pop.death.23.2301.230102): their subjects already say who is
// registered in those counties, so GET /v1/persons?region= within one of
// them discloses nothing more, and is how the subscriber's SDK
// bootstraps the subscription. A walk elsewhere still needs
// schemas.SecHukou.
type CountyGrant interface {
	// SubscribedCounties lists the 6-digit county codes the caller's
	// subscriptions are fixed to; none when there are none. The caller
	// must not modify the slice.
	SubscribedCounties() []string
}

// Outcome is the result of an authorised request.
type Outcome struct {
	Route string // the route pattern
	// CitizenID is the person the request was about; zero when the path
	// held a malformed ID.
	CitizenID citizenid.ID
	// Sections, when not nil, are the sections of CitizenID's record the
	// answer was built from, where the route knows them better than the
	// Grant (an eligibility decision reads what its policy needs, not what
	// the caller may read). Nil leaves them to the Grant.
	Sections []schemas.Section
	// Others are the other people whose records the answer disclosed (each
	// person of a GET /v1/persons page, the family an eligibility decision
	// lists). Each is audited under its own citizen, so that "who read my
	// data" finds reads that did not name the person in the path.
	Others []Disclosure
	// Detail says, in words with no personal data, what the request did
	// when the route does not say it (an eligibility decision: its policy
	// and the day decided); empty leaves it to the auditor.
	Detail string
	Status int   // the HTTP status answered
	Err    error // the error behind a non-2xx status, or nil
}

// Disclosure is one person whose record an answer disclosed besides the
// person the path names.
type Disclosure struct {
	CitizenID citizenid.ID
	// Sections disclosed; nil means the sections the Grant lets the
	// caller read.
	Sections []schemas.Section
	// Detail says why, in words with no personal data ("listed as family
	// member"); empty when the route says enough.
	Detail string
}

// allowAll is the Grant when no Authorizer is configured.
type allowAll struct{}

func (allowAll) Record(_ context.Context, rec hub.Record) hub.Record     { return rec }
func (allowAll) History(_ context.Context, ch []hub.Change) []hub.Change { return ch }
func (allowAll) Done(context.Context, Outcome)                           {}

type grantKey struct{}

// GrantOf returns the Grant of a request served by a Config.Guarded
// handler, and false when no Authorizer is configured.
func GrantOf(ctx context.Context) (Grant, bool) {
	g, ok := ctx.Value(grantKey{}).(Grant)
	return g, ok
}

// guardedRoute wraps a Config.Guarded handler: Authorize, serve with the
// Grant in the context, report the status to the Grant.
func (s *Server) guardedRoute(route string, h http.Handler) http.Handler {
	if s.cfg.Authorizer == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, ok := s.authorize(w, r, route)
		if !ok {
			return
		}
		defer doneOnPanic(r.Context(), g, func() Outcome { return Outcome{Route: route} })
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), grantKey{}, g)))
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		g.Done(r.Context(), Outcome{Route: route, Status: status})
	})
}

// doneOnPanic, deferred by a route that holds a Grant, reports a handler's
// panic to the Grant as a 500 before the middleware recovers it: the
// access still reaches the audit trail, as every granted access must.
// base gives the route and citizen the handler was serving.
func doneOnPanic(ctx context.Context, g Grant, base func() Outcome) {
	v := recover()
	if v == nil {
		return
	}
	o := base()
	o.Status, o.Err = http.StatusInternalServerError, errors.New("internal error: the handler panicked")
	g.Done(ctx, o)
	panic(v)
}
