package api

import (
	"context"
	"net/http"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Authorizer decides who may read what. It is the seam for the security
// issue (bearer tokens or client certificates, the X-Purpose header,
// per-identity rate limits, section filtering, the audit trail); the API
// itself enforces nothing.
//
// Authorize is called once per /v1 request, before the citizen ID in the
// path is parsed, with the route pattern (RoutePerson, RouteHistory). It
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

// Outcome is the result of an authorised request.
type Outcome struct {
	Route string // the route pattern
	// CitizenID is the person the request was about; zero when the path
	// held a malformed ID.
	CitizenID citizenid.ID
	Status    int   // the HTTP status answered
	Err       error // the error behind a non-2xx status, or nil
}

// allowAll is the Grant when no Authorizer is configured.
type allowAll struct{}

func (allowAll) Record(_ context.Context, rec hub.Record) hub.Record     { return rec }
func (allowAll) History(_ context.Context, ch []hub.Change) []hub.Change { return ch }
func (allowAll) Done(context.Context, Outcome)                           {}
