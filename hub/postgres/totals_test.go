package postgres

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// historyTuplesRead is how many rows of schema's history PostgreSQL's
// statistics say were read so far (sequential and index scans).
func historyTuplesRead(t *testing.T, schema string) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, `SELECT (SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'history')
		+ (SELECT coalesce(sum(idx_tup_read), 0)::bigint FROM pg_stat_user_indexes WHERE schemaname = $1 AND relname = 'history')`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStatusTotalsDoNotScanHistory: GET /v1/admin/status (and so `pophub
// status`) reads the store's totals under a 5 s probe timeout. Counted
// with count(*), a province's history (billions of rows, hundreds of
// gigabytes) never finishes in time: the status reported a healthy store
// as failing and left the totals out, and every poll started a parallel
// full scan of history, cancelled 5 s later. The status's totals of a
// large table are PostgreSQL's estimate, marked as such; reading them must
// not read history's rows.
func TestStatusTotalsDoNotScanHistory(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	s := openTestStore(t, schema)
	in := storetest.Population(t, 2000, 3)
	l := s.NewLoader()
	if err := l.Load(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, "VACUUM ANALYZE history"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // statistics are flushed at most once a second
	before := historyTuplesRead(t, schema)
	st, estimated, err := s.StatusTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Let the pool's sessions flush their statistics.
	time.Sleep(1500 * time.Millisecond)
	s.Pool().Exec(ctx, "SELECT 1")
	time.Sleep(1500 * time.Millisecond)
	read := historyTuplesRead(t, schema) - before
	exact, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status totals %+v (estimated %v), exact %+v; history rows read: %d", st, estimated, exact, read)
	if read >= exact.Changes/2 {
		t.Fatalf("reading the status totals read %d of the %d history rows", read, exact.Changes)
	}
	if !slices.Equal(estimated, []string{"changes"}) {
		t.Errorf("estimated %v for %d persons and a %d-row history, want [changes]: persons are counted", estimated, exact.Persons, exact.Changes)
	}
	if st.Persons != exact.Persons || st.OutboxPending != exact.OutboxPending {
		t.Errorf("status totals %+v, want persons and pending notifications exact: %+v", st, exact)
	}
	if d := st.Changes - exact.Changes; d < -exact.Changes/10 || d > exact.Changes/10 {
		t.Errorf("estimated %d changes, counted %d: off by more than a tenth", st.Changes, exact.Changes)
	}

	// The status page says so.
	rec := httptest.NewRecorder()
	api.AdminHandlers(api.AdminConfig{Store: s})[api.RouteStatus].ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/admin/status", nil))
	var page api.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
		t.Fatalf("status %d: %v: %s", rec.Code, err, rec.Body)
	}
	if !page.Store.OK || !slices.Equal(page.Store.Estimated, []string{"changes"}) || page.Store.Changes == nil || *page.Store.Changes != st.Changes {
		t.Errorf("GET /v1/admin/status: %s, want the store ok with its estimated totals", rec.Body)
	}
}

func TestEstimatedRows(t *testing.T) {
	tests := []struct {
		name                  string
		relTuples             float64
		relPages, pages, live int64
		want                  int64
	}{
		{"measured, unchanged since", 30_000, 1_000, 1_000, 0, 30_000},
		{"measured, grown since", 30_000, 1_000, 1_500, 0, 45_000},
		{"never measured", -1, 0, 1_500, 44_000, 44_000},
		{"never measured, no statistics", -1, 0, 1_500, 0, 0},
		{"measured while empty", 0, 0, 1_500, 44_000, 44_000},
		{"empty", 0, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := estimatedRows(tc.relTuples, tc.relPages, tc.pages, tc.live); got != tc.want {
				t.Errorf("estimatedRows(%v, %d, %d, %d) = %d, want %d", tc.relTuples, tc.relPages, tc.pages, tc.live, got, tc.want)
			}
		})
	}
}

// TestStatusTotalsWithoutStatistics: a large history PostgreSQL has no
// statistics for (restored, not analysed yet, its counters reset by a
// crash) is still estimated, from the rows per page of the first rows,
// not counted to the end; a small table is counted exactly.
func TestStatusTotalsWithoutStatistics(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, testenv.Schema(t))
	if _, err := s.Pool().Exec(ctx, "ALTER TABLE history SET (autovacuum_enabled = off)"); err != nil {
		t.Fatal(err)
	}
	l := s.NewLoader()
	if err := l.Load(ctx, storetest.Population(t, 2000, 3)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, "SELECT pg_stat_reset_single_table_counters('history'::regclass)"); err != nil {
		t.Fatal(err)
	}
	exact, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, estimated, err := s.StatusTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status totals %+v (estimated %v), exact %+v", st, estimated, exact)
	if !slices.Equal(estimated, []string{"changes"}) || st.Persons != exact.Persons || st.OutboxPending != exact.OutboxPending {
		t.Errorf("status totals %+v (estimated %v), want persons and pending notifications exact (%+v) and changes estimated", st, estimated, exact)
	}
	if d := st.Changes - exact.Changes; d < -exact.Changes/5 || d > exact.Changes/5 {
		t.Errorf("estimated %d changes, counted %d: off by more than a fifth", st.Changes, exact.Changes)
	}
}
