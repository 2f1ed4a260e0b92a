package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestStoreOutage: while PostgreSQL cannot be reached, every route that
// reads the store answers 503 urn:pophub:problem:unavailable with
// Retry-After, as the OpenAPI document promises, and logs it as a warning,
// not as an internal error; once PostgreSQL is back, the routes answer
// again.
func TestStoreOutage(t *testing.T) {
	pgURL, proxy := testenv.PostgresThroughProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := postgres.Open(ctx, postgres.Config{URL: pgURL, Schema: testenv.Schema(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := registration(t, 1, "230102001001", time.Date(2020, 1, 1, 10, 0, 0, 0, cst))
	if _, err := store.Apply(ctx, []hub.Input{reg}); err != nil {
		t.Fatal(err)
	}
	id := reg.Event.Subject

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cat := loadPolicies(t)
	h := api.New(api.Config{
		Store: store, Lister: store, Counter: store, Regions: testRegions{}, Policies: cat, Logger: logger,
		Mount: api.AdminHandlers(api.AdminConfig{Store: store, Logger: logger}),
	}).Handler()

	known := `[{"source":"public_security","id":"` + reg.Event.ID + `"}]`
	routes := []struct{ method, target, body string }{
		{"GET", "/v1/persons/" + string(id), ""},
		{"GET", "/v1/persons/" + string(id) + "/history", ""},
		{"GET", "/v1/persons?region=23", ""},
		{"GET", "/v1/stats/urban-rural?region=23&children=true", ""},
		{"GET", "/v1/stats/residence-permits?region=23&children=true", ""},
		{"GET", "/v1/eligibility/" + string(id) + "?policy=" + url.QueryEscape(cat.Policies()[0].ID), ""},
		{"POST", "/v1/admin/known-events", known},
	}
	serve := func(method, target, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, r := range routes {
		if rec := serve(r.method, r.target, r.body); rec.Code != http.StatusOK {
			t.Fatalf("%s %s before the outage: status %d: %s", r.method, citizenid.MaskText(r.target), rec.Code, rec.Body)
		}
	}

	proxy.SetDown(true)
	proxy.Cut()
	logs.Reset()
	for _, r := range routes {
		rec := serve(r.method, r.target, r.body)
		name := r.method + " " + citizenid.MaskText(r.target)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s during the outage: status %d, want 503: %s", name, rec.Code, rec.Body)
			continue
		}
		if p := decodeProblem(t, rec); p.Type != api.ProblemTypePrefix+"unavailable" {
			t.Errorf("%s during the outage: problem type %q, want unavailable", name, p.Type)
		}
		if ra := rec.Header().Get("Retry-After"); ra == "" {
			t.Errorf("%s during the outage: no Retry-After", name)
		}
	}
	warnings := 0
	sc := bufio.NewScanner(&logs)
	for sc.Scan() {
		var line struct{ Level, Msg string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %s: %v", sc.Bytes(), err)
		}
		switch line.Level {
		case "WARN":
			warnings++
		case "ERROR":
			t.Errorf("the outage was logged as an error: %s", sc.Bytes())
		}
	}
	if warnings != len(routes) {
		t.Errorf("%d warnings logged for %d requests during the outage:\n%s", warnings, len(routes), logs.String())
	}

	proxy.SetDown(false)
	for _, r := range routes {
		if rec := serve(r.method, r.target, r.body); rec.Code != http.StatusOK {
			t.Errorf("%s %s after the outage: status %d: %s", r.method, citizenid.MaskText(r.target), rec.Code, rec.Body)
		}
	}
}
