package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// adminServer mounts the admin routes on a Server, as the binary does.
func adminServer(t *testing.T, cfg api.AdminConfig) *httptest.Server {
	t.Helper()
	srv := api.New(api.Config{Store: cfg.Store.(hub.Store), Mount: api.AdminHandlers(cfg)})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func adminDo(t *testing.T, method, url, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestAdminKnownEvents(t *testing.T) {
	store := newMemStore(t)
	in := storetest.Population(t, 3, 7)
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	ts := adminServer(t, api.AdminConfig{Store: store, Token: "s3cret"})
	url := ts.URL + "/v1/admin/known-events"
	k := in[0].Event.Key()
	body := fmt.Sprintf(`[{"source":%q,"id":%q},{"source":"housing","id":"never"}]`, k.Source, k.ID)

	tooMany := "[" + strings.Repeat(`{"source":"tax","id":"x"},`, hub.MaxKnownEvents) + `{"source":"tax","id":"x"}]`
	// The most keys of the longest ids, every character escaped as
	// encoding/json writes "<": 12 MB, which reconcile may send.
	longest := `{"source":"marriage","id":"` + strings.Repeat(`\u003c`, schemas.MaxIDLength) + `"}`
	mostLongest := "[" + strings.Repeat(longest+",", hub.MaxKnownEvents-1) + longest + "]"
	allUnknown := "[" + strings.Repeat("false,", hub.MaxKnownEvents-1) + "false]\n"
	tests := []struct {
		name, token, body string
		status            int
		want              string
	}{
		{"known and unknown", "s3cret", body, http.StatusOK, "[true,false]\n"},
		{"empty array", "s3cret", "[]", http.StatusOK, "[]\n"},
		{"no token", "", body, http.StatusUnauthorized, "unauthenticated"},
		{"wrong token", "guess", body, http.StatusUnauthorized, "unauthenticated"},
		{"not JSON", "s3cret", "{", http.StatusBadRequest, "invalid-request"},
		{"unknown source", "s3cret", `[{"source":"nope","id":"x"}]`, http.StatusBadRequest, "invalid-request"},
		{"too many keys", "s3cret", tooMany, http.StatusBadRequest, "invalid-request"},
		{"the most keys of the longest ids", "s3cret", mostLongest, http.StatusOK, allUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, h, b := adminDo(t, http.MethodPost, url, tc.token, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, b)
			}
			if tc.status == http.StatusOK {
				if string(b) != tc.want {
					t.Errorf("body %q, want %q", b, tc.want)
				}
				return
			}
			var p api.Problem
			if ct := h.Get("Content-Type"); ct != api.ProblemContentType {
				t.Errorf("content type %q", ct)
			}
			if err := json.Unmarshal(b, &p); err != nil || p.Type != api.ProblemTypePrefix+tc.want || p.Instance == "" {
				t.Errorf("problem %s (%v), want type %s with an instance", b, err, tc.want)
			}
		})
	}
}

func TestAdminStatus(t *testing.T) {
	store := newMemStore(t)
	in := storetest.Population(t, 2, 8)
	if _, err := store.Apply(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	ts := adminServer(t, api.AdminConfig{
		Store: store,
		Group: "pophub",
		Lag: func() map[string]map[int]int64 {
			return map[string]map[int]int64{"pop.events.tax": {1: 3, 0: 2}, "pop.events.health": {0: 0}}
		},
		Counts: func() api.IngestCounts {
			return api.IngestCounts{Consumed: 10, Applied: 7, Duplicates: 2, Skipped: 4, Rejected: map[string]int64{"not_json": 1},
				Sources: map[string]api.IngestCountsSrc{"tax": {Consumed: 10, Applied: 7, Duplicates: 2, Skipped: 4}}}
		},
		DLQ: func(context.Context) (api.DLQCounts, error) {
			return api.DLQCounts{Records: 1, ByReason: map[string]int64{"not_json": 1}, BySource: map[string]int64{"tax": 1},
				CatchingUp: []api.DLQPartition{{Partition: 2, CountedTo: 5, End: 9}}}, nil
		},
		Stream: func(context.Context) (api.StreamInfo, error) {
			return api.StreamInfo{Name: "POP", Messages: 9, LastSeq: 9, FirstSeq: 1}, nil
		},
		Consumers: func(context.Context) ([]api.ConsumerPosition, error) {
			return nil, errors.New("listing consumers: timeout for 230102199001011230")
		},
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	})
	code, _, b := adminDo(t, http.MethodGet, ts.URL+"/v1/admin/status", "", "")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, b)
	}
	var st api.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if !st.Store.OK || st.Store.Changes == nil || *st.Store.Changes != int64(len(in)) || st.Store.OutboxPending == nil || *st.Store.OutboxPending == 0 {
		t.Errorf("store %+v", st.Store)
	}
	if st.Ingest == nil || st.Ingest.TotalLag != 5 || len(st.Ingest.Lag) != 3 || st.Ingest.Lag[0].Topic != "pop.events.health" ||
		st.Ingest.Lag[2].Partition != 1 || st.Ingest.Counts.Applied != 7 || st.Ingest.Group != "pophub" {
		t.Errorf("ingest %+v", st.Ingest)
	}
	// The transaction markers the consumer skipped are in the answer, in
	// total and per source: they were once dropped, and offsets did not
	// add up to the counts.
	if !strings.Contains(string(b), `"duplicates":2,"skipped":4,`) || st.Ingest.Counts.Sources["tax"].Skipped != 4 {
		t.Errorf("skipped markers missing: %s", b)
	}
	if st.DLQ == nil || st.DLQ.Records != 1 || st.DLQ.ByReason["not_json"] != 1 ||
		!strings.Contains(string(b), `"catching_up":[{"partition":2,"counted_to":5,"end":9}]`) {
		t.Errorf("dlq %+v: %s", st.DLQ, b)
	}
	if st.Stream == nil || st.Stream.LastSeq != 9 || st.Stream.Error != "" || len(st.Stream.Consumers) != 0 ||
		!strings.Contains(st.Stream.ConsumersError, "timeout") || strings.Contains(string(b), "230102199001011230") {
		t.Errorf("stream %+v (the error must be kept, the ID masked)", st.Stream)
	}
	if !st.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("time %v", st.Time)
	}
}

// TestAdminStatusMinimal: with only a store, the other parts are left out.
func TestAdminStatusMinimal(t *testing.T) {
	ts := adminServer(t, api.AdminConfig{Store: newMemStore(t)})
	code, _, b := adminDo(t, http.MethodGet, ts.URL+"/v1/admin/status", "", "")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, b)
	}
	for _, part := range []string{`"ingest"`, `"dlq"`, `"stream"`} {
		if strings.Contains(string(b), part) {
			t.Errorf("%s present in %s", part, b)
		}
	}
	if !strings.Contains(string(b), `"ok":true`) {
		t.Errorf("store not ok: %s", b)
	}
}

// failingStore is a store whose Ping fails, and its Stats too when
// statsErr is set.
type failingStore struct {
	hub.Store
	statsErr error
}

func (s failingStore) Ping(context.Context) error {
	return errors.New("write-ahead log failed: no space left on device")
}

func (s failingStore) Stats(ctx context.Context) (hub.StoreStats, error) {
	if s.statsErr != nil {
		return hub.StoreStats{}, s.statsErr
	}
	return s.Store.Stats(ctx)
}

// TestAdminStatusStoreFailing: a failing store's totals are asked for all
// the same, and shown when it answers (memdb answers from memory while its
// log fails); when it cannot answer they are left out, unknown, where
// they once read 0 persons, 0 changes and nothing pending, the picture of
// an empty store. The answer keeps to the OpenAPI document's schema.
func TestAdminStatusStoreFailing(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		statsErr error
		counted  bool
	}{
		{"totals still read", nil, true},
		{"totals unreadable", errors.New("pinging PostgreSQL: unavailable"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemStore(t)
			in := storetest.Population(t, 2, 8)
			if _, err := store.Apply(ctx, in); err != nil {
				t.Fatal(err)
			}
			ts := adminServer(t, api.AdminConfig{Store: failingStore{Store: store, statsErr: tc.statsErr}})
			code, _, b := adminDo(t, http.MethodGet, ts.URL+"/v1/admin/status", "", "")
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, b)
			}
			var st api.Status
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			if st.Store.OK || !strings.Contains(st.Store.Error, "no space left on device") {
				t.Errorf("store %+v: want it failing with Ping's error", st.Store)
			}
			var raw struct {
				Store map[string]any `json:"store"`
			}
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			for _, field := range []string{"persons", "changes", "outbox_pending"} {
				if _, ok := raw.Store[field]; ok != tc.counted {
					t.Errorf("store.%s present %v, want %v: %s", field, ok, tc.counted, b)
				}
			}
			if tc.counted && (st.Store.Changes == nil || *st.Store.Changes != int64(len(in))) {
				t.Errorf("store %+v: want %d changes", st.Store, len(in))
			}
			for _, field := range openAPIStoreRequired(t) {
				if _, ok := raw.Store[field]; !ok {
					t.Errorf("store.%s is required by the OpenAPI document and missing: %s", field, b)
				}
			}
		})
	}
}

// openAPIStoreRequired returns the fields the OpenAPI document requires of
// the admin status's store.
func openAPIStoreRequired(t *testing.T) []string {
	t.Helper()
	var cur any = openAPIDoc(t)
	for _, key := range []string{"paths", "/v1/admin/status", "get", "responses", "200", "content", "application/json", "schema", "properties", "store", "required"} {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("the OpenAPI document has no admin status store schema (at %q)", key)
		}
		cur = m[key]
	}
	list, ok := cur.([]any)
	if !ok {
		t.Fatalf("the admin status store schema's required is %T, want a list", cur)
	}
	var out []string
	for _, f := range list {
		out = append(out, fmt.Sprint(f))
	}
	return out
}

// TestAdminKnownEventsTakesNoQuery: the reconciliation route reads its
// keys from the body only; a query parameter is refused, not ignored.
func TestAdminKnownEventsTakesNoQuery(t *testing.T) {
	ts := adminServer(t, api.AdminConfig{Store: newMemStore(t), Token: "s3cret"})
	code, _, b := adminDo(t, http.MethodPost, ts.URL+"/v1/admin/known-events?source=tax", "s3cret", "[]")
	var p api.Problem
	if err := json.Unmarshal(b, &p); err != nil || code != http.StatusBadRequest || !strings.Contains(p.Detail, `"source"`) {
		t.Errorf("status %d, body %s; want 400 naming the parameter", code, b)
	}
}
