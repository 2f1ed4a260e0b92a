package api_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
)

// TestGuardedRoute: a Config.Guarded handler runs only when authorised,
// finds its Grant, and the status it answered reaches the audit trail
// exactly once.
func TestGuardedRoute(t *testing.T) {
	const route = "POST /v1/events"
	tests := []struct {
		name    string
		token   string
		handler func(w http.ResponseWriter)
		// wantRun is whether the handler ran (with a Grant).
		wantRun      bool
		wantStatus   int
		wantOutcomes []api.Outcome
	}{
		{name: "accepted", token: "Bearer good", wantRun: true,
			handler:      func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) },
			wantStatus:   http.StatusAccepted,
			wantOutcomes: []api.Outcome{{Route: route, Status: http.StatusAccepted}}},
		{name: "handler fails", token: "Bearer good", wantRun: true,
			handler:      func(w http.ResponseWriter) { http.Error(w, "broker unavailable", http.StatusServiceUnavailable) },
			wantStatus:   http.StatusServiceUnavailable,
			wantOutcomes: []api.Outcome{{Route: route, Status: http.StatusServiceUnavailable}}},
		{name: "handler rejects the request", token: "Bearer good", wantRun: true,
			handler:      func(w http.ResponseWriter) { http.Error(w, "bad event", http.StatusBadRequest) },
			wantStatus:   http.StatusBadRequest,
			wantOutcomes: []api.Outcome{{Route: route, Status: http.StatusBadRequest}}},
		{name: "body without a status is 200", token: "Bearer good", wantRun: true,
			handler:      func(w http.ResponseWriter) { _, _ = w.Write([]byte("ok")) },
			wantStatus:   http.StatusOK,
			wantOutcomes: []api.Outcome{{Route: route, Status: http.StatusOK}}},
		{name: "nothing written is 200", token: "Bearer good", wantRun: true,
			handler:      func(http.ResponseWriter) {},
			wantStatus:   http.StatusOK,
			wantOutcomes: []api.Outcome{{Route: route, Status: http.StatusOK}}},
		{name: "handler panics", token: "Bearer good", wantRun: true,
			handler:    func(http.ResponseWriter) { panic("bug") },
			wantStatus: http.StatusInternalServerError,
			wantOutcomes: []api.Outcome{{Route: route, Status: http.StatusInternalServerError,
				Err: errors.New("internal error: the handler panicked")}}},
		// A refusal is the Authorizer's to audit: no Grant, no Outcome.
		{name: "refused", token: "Bearer bad",
			handler:    func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) },
			wantStatus: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := &fakeAuth{}
			ran, hadGrant := false, false
			h := api.New(api.Config{Store: newFixture(t).reader, Authorizer: auth, Guarded: map[string]http.Handler{
				route: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, hadGrant = api.GrantOf(r.Context())
					ran = true
					tt.handler(w)
				}),
			}}).Handler()

			rec := do(t, h, "POST", "/v1/events", http.Header{"Authorization": {tt.token}})
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if ran != tt.wantRun || hadGrant != tt.wantRun {
				t.Errorf("handler ran = %t with a Grant = %t, want %t", ran, hadGrant, tt.wantRun)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			auth.mu.Lock()
			defer auth.mu.Unlock()
			if !reflect.DeepEqual(auth.outcomes, tt.wantOutcomes) {
				t.Errorf("outcomes = %+v, want %+v", auth.outcomes, tt.wantOutcomes)
			}
		})
	}
}

// panicLister is a store whose region walk panics.
type panicLister struct{}

func (panicLister) Persons(context.Context, hub.PersonQuery) ([]hub.Record, string, error) {
	panic("bug in the store")
}

// TestQueryRoutePanicAudited: a granted walk of a region whose store
// panics answers 500 and still reaches the audit trail, once.
func TestQueryRoutePanicAudited(t *testing.T) {
	auth := &fakeAuth{}
	h := api.New(api.Config{Store: newFixture(t).reader, Authorizer: auth, Lister: panicLister{}}).Handler()
	rec := do(t, h, "GET", "/v1/persons?region=23", http.Header{"Authorization": {"Bearer good"}})
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", rec.Code)
	}
	auth.mu.Lock()
	defer auth.mu.Unlock()
	want := []api.Outcome{{Route: "GET /v1/persons", Status: http.StatusInternalServerError, Err: errors.New("internal error: the handler panicked")}}
	if !reflect.DeepEqual(auth.outcomes, want) {
		t.Errorf("outcomes = %+v, want %+v", auth.outcomes, want)
	}
}
