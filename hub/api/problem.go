package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Error kinds an Authorizer returns (wrapped) to refuse a request. They map
// to status codes in the same table as the hub's kinds.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrInvalidToken is an ErrUnauthenticated for a bearer token that was
	// presented and is not valid: its 401 names RFC 6750's invalid_token
	// error, so that a client knows to fetch another token rather than
	// retry.
	ErrInvalidToken = fmt.Errorf("invalid token: %w", ErrUnauthenticated)
	ErrForbidden    = errors.New("forbidden")
	// ErrForbiddenPurpose is an ErrForbidden for a purpose the identity
	// may not act for, on a route it may use: its 403 is typed
	// forbidden-purpose rather than forbidden, so that a client (the
	// statistics page) knows the purpose is what to change, not the
	// credentials, without reading the detail, which quotes the policy's
	// free text.
	ErrForbiddenPurpose = fmt.Errorf("purpose %w", ErrForbidden)
	ErrRateLimited      = errors.New("rate limited")
)

// ProblemContentType is the media type of error responses (RFC 9457).
const ProblemContentType = "application/problem+json"

// ProblemTypePrefix prefixes every problem type URI; the rest is the slug
// listed in the table of kindOf ("not-found", "invalid-request", ...).
const ProblemTypePrefix = "urn:pophub:problem:"

// Problem is an RFC 9457 problem details body. Instance identifies the
// request ("urn:pophub:request:<id>", also sent as the X-Request-Id header
// and logged), never its path, which may carry a citizen ID.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// kind is one row of the error table.
type kind struct {
	err    error // matched with errors.Is; nil matches everything
	status int
	slug   string
	// detail is the fixed detail; empty means the error's own text, which
	// only kinds whose errors are written for the caller use (and which is
	// scrubbed of anything shaped like a citizen ID all the same).
	detail string
}

// kindOf is the one table mapping error kinds to problems. The last row
// catches everything else: a 500 whose detail says nothing of the cause.
func kindOf(err error) kind {
	for _, k := range [...]kind{
		{hub.ErrInvalid, http.StatusBadRequest, "invalid-request", ""},
		{hub.ErrNotFound, http.StatusNotFound, "not-found", "nothing is known under this identifier"},
		{hub.ErrConflict, http.StatusConflict, "conflict", "the record changed concurrently; retry"},
		{hub.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "a dependency of the hub is unavailable; retry later"},
		{ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated", ""},
		{ErrForbiddenPurpose, http.StatusForbidden, "forbidden-purpose", ""},
		{ErrForbidden, http.StatusForbidden, "forbidden", ""},
		{ErrRateLimited, http.StatusTooManyRequests, "rate-limited", ""},
		{nil, http.StatusInternalServerError, "internal", "internal error; the request was logged under its instance id"},
	} {
		if k.err == nil || errors.Is(err, k.err) {
			return k
		}
	}
	panic("unreachable")
}

// fail answers err as a problem. 5xx errors are logged (scrubbed of citizen
// IDs) at serverErrorLevel; the caller sees only the table's generic detail.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	k := kindOf(err)
	detail := k.detail
	if detail == "" {
		var ce *citizenid.Error
		if errors.As(err, &ce) {
			detail = ce.Error()
		} else {
			detail = citizenid.MaskText(err.Error())
		}
	}
	if k.status >= 500 {
		s.cfg.Logger.LogAttrs(r.Context(), serverErrorLevel(k.status), "serving request",
			slog.String("route", routeOf(r)),
			slog.String("request_id", requestID(r.Context())),
			slog.String("err", citizenid.MaskText(err.Error())))
	}
	setProblemHeaders(w.Header(), k.status, err)
	s.writeProblem(w, r, k.status, k.slug, detail)
}

// setProblemHeaders sets the headers a problem of status for err carries
// on every route: the bearer challenge of a 401 (RFC 6750: a token no
// identity lists is invalid_token, so that a client fetches another rather
// than sending the same again) and a Retry-After for 503 and 429.
func setProblemHeaders(h http.Header, status int, err error) {
	switch status {
	case http.StatusUnauthorized:
		challenge := "Bearer"
		if errors.Is(err, ErrInvalidToken) {
			challenge = `Bearer error="invalid_token"`
		}
		h.Set("WWW-Authenticate", challenge)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		if h.Get("Retry-After") == "" {
			h.Set("Retry-After", "1")
		}
	}
}

// serverErrorLevel is the level a 5xx answer is logged at. A dependency
// that is unavailable (503) is a warning: the caller was told to retry,
// /readyz reports the dependency, and the request itself did nothing
// wrong. Anything else is an error.
func serverErrorLevel(status int) slog.Level {
	if status == http.StatusServiceUnavailable {
		return slog.LevelWarn
	}
	return slog.LevelError
}

// writeProblem writes a problem body with the request's instance id.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, status int, slug, detail string) {
	p := Problem{
		Type:     ProblemTypePrefix + slug,
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: instanceOf(r.Context()),
	}
	b, err := json.Marshal(p)
	if err != nil { // cannot happen: Problem holds strings and an int
		b = []byte(`{"type":"` + ProblemTypePrefix + `internal","title":"Internal Server Error","status":500}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeJSON writes v as application/json, or a 500 problem when v cannot be
// encoded.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
