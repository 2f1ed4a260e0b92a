package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// openFoldingStore opens a store on schema that folds counter changes
// every `every` (negative: only when asked).
func openFoldingStore(t testing.TB, schema string, every time.Duration) *Store {
	t.Helper()
	return openStoreWith(t, Config{Schema: schema, foldEvery: every})
}

// tableRows counts the rows of a table of s's schema.
func tableRows(t testing.TB, s *Store, table string) int64 {
	t.Helper()
	var n int64
	if err := s.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// countsOf reads the counts of every province, today and on a past day,
// as one comparable string.
func countsOf(t testing.TB, s *Store) string {
	t.Helper()
	var provinces []string
	for p := 11; p <= 82; p++ {
		provinces = append(provinces, fmt.Sprint(p))
	}
	out := ""
	for _, asOf := range []string{time.Now().Format(time.DateOnly), "2025-06-30"} {
		c, err := s.Counts(context.Background(), hub.CountQuery{Regions: provinces, AsOf: asOf})
		if err != nil {
			t.Fatalf("Counts as of %q: %v", asOf, err)
		}
		out += fmt.Sprint(c)
	}
	return out
}

// TestCounterChangesFolded: a batch's counter changes are counted at once,
// before any fold, and a fold moves them into the counters without
// changing a count.
func TestCounterChangesFolded(t *testing.T) {
	ctx := context.Background()
	s := openFoldingStore(t, testenv.Schema(t), -1)
	storetest.ApplyAll(t, s, storetest.Population(t, 60, 41), 25)
	pending := tableRows(t, s, "stats_counter_deltas")
	if pending == 0 || tableRows(t, s, "stats_counters") != 0 {
		t.Fatalf("before a fold: %d changes pending and %d counters, want changes only", pending, tableRows(t, s, "stats_counters"))
	}
	before := countsOf(t, s)
	if diffs, err := s.VerifyCounters(ctx); err != nil || len(diffs) != 0 {
		t.Fatalf("before a fold: %d differences (%v): %v", len(diffs), err, diffs)
	}
	folded, _, err := s.foldCounters(ctx)
	if err != nil || folded != pending {
		t.Fatalf("foldCounters = %d, %v; want the %d pending changes", folded, err, pending)
	}
	if n := tableRows(t, s, "stats_counter_deltas"); n != 0 {
		t.Errorf("after a fold: %d changes still pending", n)
	}
	if after := countsOf(t, s); after != before {
		t.Errorf("counts changed by the fold:\nbefore %s\nafter  %s", before, after)
	}
	if diffs, err := s.VerifyCounters(ctx); err != nil || len(diffs) != 0 {
		t.Fatalf("after a fold: %d differences (%v): %v", len(diffs), err, diffs)
	}
	// Changes that cancel out leave no counter behind.
	if _, err := s.Pool().Exec(ctx, `INSERT INTO stats_counter_deltas VALUES ('4301', 'p', 'D19990101', 1), ('4301', 'p', 'D19990101', -1)`); err != nil {
		t.Fatal(err)
	}
	if folded, _, err := s.foldCounters(ctx); err != nil || folded != 2 {
		t.Fatalf("folding changes that cancel out: %d, %v", folded, err)
	}
	var zero int64
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM stats_counters WHERE (region, class, bucket) = ('4301', 'p', 'D19990101')").Scan(&zero); err != nil || zero != 0 {
		t.Errorf("changes that cancel out left %d counters (%v)", zero, err)
	}
}

// TestCounterChangesFoldedWhileApplying: two instances on one schema apply
// their batches while both fold every few milliseconds; no change is
// counted twice or lost, and a rebuild in the middle leaves the counters
// right too.
func TestCounterChangesFoldedWhileApplying(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	a := openFoldingStore(t, schema, 3*time.Millisecond)
	b := openFoldingStore(t, schema, 5*time.Millisecond)
	in := storetest.Population(t, 300, 43)
	// One person's events stay with one instance, in their order.
	var halves [2][]hub.Input
	for _, e := range in {
		h := int(e.Event.Subject[16]-'0') % 2
		halves[h] = append(halves[h], e)
	}
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Go(func() {
			for j := 0; j < len(halves[i]); j += 40 {
				if _, err := s.Apply(ctx, halves[i][j:min(j+40, len(halves[i]))]); err != nil {
					t.Error(err)
					return
				}
				if i == 0 && j == 40*20 {
					if _, err := s.RebuildCounters(ctx); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if diffs, err := a.VerifyCounters(ctx); err != nil || len(diffs) != 0 {
		t.Fatalf("%d differences (%v): %v", len(diffs), err, diffs)
	}
	if _, _, err := a.foldCounters(ctx); err != nil {
		t.Fatal(err)
	}
	if n := tableRows(t, a, "stats_counter_deltas"); n != 0 {
		t.Errorf("after the last fold: %d changes still pending", n)
	}
	if diffs, err := a.VerifyCounters(ctx); err != nil || len(diffs) != 0 {
		t.Fatalf("after the last fold: %d differences (%v): %v", len(diffs), err, diffs)
	}
}

// TestFoldWaitsOutARebuild: while a rebuild holds the counters (for as
// long as it scans every person, 45 s for 400,000), a fold neither waits
// for it nor warns that folding fails; it folds once the rebuild is done.
func TestFoldWaitsOutARebuild(t *testing.T) {
	ctx := context.Background()
	rec := &logRecorder{}
	s := openStoreWith(t, Config{Schema: testenv.Schema(t), Logger: slog.New(rec), foldEvery: 10 * time.Millisecond})
	// Changes the background fold must not take while the tables are held.
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE stats_counter_deltas, stats_counters IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO stats_counter_deltas VALUES ('2301', 'u', 'D20260101', 4)"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	folded, skipped, err := s.foldCounters(fctx)
	if err != nil || folded != 0 || !skipped || time.Since(start) > 2*time.Second {
		t.Fatalf("fold while the tables are held: %d rows, skipped %v, %v after %s; want nothing folded at once, the round skipped", folded, skipped, err, time.Since(start))
	}
	time.Sleep(300 * time.Millisecond) // some thirty background rounds
	if warned := rec.logged("not being folded"); len(warned) > 0 {
		t.Errorf("a fold during a rebuild warned: %q", warned)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tableRows(t, s, "stats_counter_deltas") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the change was not folded after the tables were released")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var n int64
	if err := s.Pool().QueryRow(ctx, "SELECT n FROM stats_counters WHERE (region, class, bucket) = ('2301', 'u', 'D20260101')").Scan(&n); err != nil || n != 4 {
		t.Errorf("folded counter = %d (%v), want 4", n, err)
	}
}

// TestFoldSaysWhoHoldsItsTables: a session holding a lock on the
// counters (a DBA's maintenance left open, anything but a moment's) made
// every fold give way, silently and for good, while the changes' table
// grew. The store now exports how long ago folds last caught up
// (pophub.stats.fold.age, the alert PophubStatsFoldStalled), warns once
// the wait is long, naming the sessions that hold the locks, and says
// when folds go on again.
func TestFoldSaysWhoHoldsItsTables(t *testing.T) {
	tests := []struct {
		name string
		// block makes folds give way, in sessions named dba-maintenance,
		// and returns what ends it.
		block func(t *testing.T, s *Store) (release func())
		names string // what the warning must name
	}{
		{"a lock held", func(t *testing.T, s *Store) func() {
			tx := namedTx(t, s, "dba-maintenance")
			if _, err := tx.Exec(context.Background(), "LOCK TABLE stats_counters IN SHARE MODE"); err != nil {
				t.Fatal(err)
			}
			return func() { tx.Rollback(context.Background()) }
		}, "ShareLock"},
		{"an ALTER TABLE queued behind a reader", func(t *testing.T, s *Store) func() {
			reader := namedTx(t, s, "report")
			if _, err := reader.Exec(context.Background(), "SELECT count(*) FROM stats_counters"); err != nil {
				t.Fatal(err)
			}
			alter := namedTx(t, s, "dba-maintenance")
			actx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				alter.Exec(actx, "ALTER TABLE stats_counters ADD COLUMN note text") // waits for the reader; cancelled
			}()
			return func() {
				cancel()
				<-done
				alter.Rollback(context.Background())
				reader.Rollback(context.Background())
			}
		}, "AccessExclusiveLock waiting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			reader := sdkmetric.NewManualReader()
			provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			t.Cleanup(func() { provider.Shutdown(context.Background()) })
			rec := &logRecorder{}
			s := openStoreWith(t, Config{Schema: testenv.Schema(t), Logger: slog.New(rec), Meter: provider.Meter("test"),
				foldEvery: 10 * time.Millisecond, foldWaitWarning: 300 * time.Millisecond})
			age := func() float64 {
				var rm metricdata.ResourceMetrics
				if err := reader.Collect(ctx, &rm); err != nil {
					t.Fatal(err)
				}
				for _, sm := range rm.ScopeMetrics {
					for _, m := range sm.Metrics {
						if m.Name == "pophub.stats.fold.age" {
							return m.Data.(metricdata.Gauge[float64]).DataPoints[0].Value
						}
					}
				}
				t.Fatal("no pophub.stats.fold.age exported")
				return 0
			}
			time.Sleep(100 * time.Millisecond)
			if a := age(); a > 0.5 {
				t.Fatalf("fold age %.2f s while folds keep up, want under half a second", a)
			}

			release := tc.block(t, s)
			time.Sleep(800 * time.Millisecond)
			if a := age(); a < 0.6 {
				t.Errorf("fold age %.2f s after 0.8 s of folds giving way, want it to grow", a)
			}
			warned := rec.logged("WARN the statistics counters' changes have not been folded")
			if len(warned) != 1 || !strings.Contains(warned[0], "dba-maintenance") || !strings.Contains(warned[0], tc.names) {
				t.Errorf("warned %q, want one warning naming the session dba-maintenance and %s", warned, tc.names)
			}
			release()
			deadline := time.Now().Add(5 * time.Second)
			for age() > 0.2 || len(rec.logged("INFO folding the statistics counters' changes again")) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("fold age %.2f s and logged %q after the lock went, want folds caught up and said so", age(), rec.logged("folding"))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// namedTx begins a transaction on a connection of its own whose
// application_name is name; the test's end rolls it back and closes it.
func namedTx(t *testing.T, s *Store, name string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "SET application_name = '"+name+"'; SET search_path = "+pgx.Identifier{s.Schema()}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	return tx
}

// addPending appends n counter changes of +1 to stats_counter_deltas,
// spread over Xinjiang's villages and the days of 2026, as batches leave
// them when no fold has taken them yet.
func addPending(t testing.TB, s *Store, n int) {
	t.Helper()
	if _, err := s.Pool().Exec(context.Background(), `INSERT INTO stats_counter_deltas (region, class, bucket, n)
		SELECT '65' || lpad((i % 250000)::text, 10, '0'), (ARRAY['u','r','p'])[1 + i % 3]::"char",
			'D2026' || lpad((1 + i % 12)::text, 2, '0') || lpad((1 + i % 28)::text, 2, '0'), 1
		FROM generate_series(1, $1::int) AS i`, n); err != nil {
		t.Fatal(err)
	}
}

// waitFolded waits until no change is pending, failing after d.
func waitFolded(t testing.TB, s *Store, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); tableRows(t, s, "stats_counter_deltas") != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d counter changes still pending after %s", tableRows(t, s, "stats_counter_deltas"), d)
		}
	}
}

// TestFoldDrainsABacklog: changes that piled up while folds were held up
// (a DBA's lock on the counters, a registration load faster than a fold a
// second) are folded once folds can go on, however many there are.
// Before, one transaction took them all and, past about 600,000 on this
// machine, outlasted its deadline and rolled back every second for good,
// while the table grew.
func TestFoldDrainsABacklog(t *testing.T) {
	schema := testenv.Schema(t)
	openFoldingStore(t, schema, -1).Close() // the schema, without a fold
	const backlog = 1_200_000
	s := openStoreWith(t, Config{Schema: schema}) // folds every second, as a hub does
	addPending(t, s, backlog)
	waitFolded(t, s, 40*time.Second)
	var sum int64
	if err := s.Pool().QueryRow(context.Background(), "SELECT coalesce(sum(n), 0) FROM stats_counters").Scan(&sum); err != nil || sum != backlog {
		t.Errorf("the counters sum to %d (%v), want the %d changes folded once each", sum, err, backlog)
	}
}

// TestFoldKeepsItsTableSmall: rows folded out of stats_counter_deltas
// leave their space unusable until a vacuum, and every count reads the
// whole table; the folding store vacuums it, so that with autovacuum off
// or behind, round after round of changes does not make it grow.
func TestFoldKeepsItsTableSmall(t *testing.T) {
	s := openStoreWith(t, Config{Schema: testenv.Schema(t), foldEvery: 20 * time.Millisecond, vacuumEvery: 50 * time.Millisecond})
	size := func() int64 {
		var n int64
		if err := s.Pool().QueryRow(context.Background(), "SELECT pg_relation_size('stats_counter_deltas')").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var first int64
	for round := range 6 {
		vacuums, _ := deltaVacuums(t, s)
		addPending(t, s, 50_000)
		waitFolded(t, s, 30*time.Second)
		// Another test's transaction on the server may keep the rows a
		// while: the store vacuums until they are gone.
		waitVacuumed(t, s, vacuums, time.Minute)
		if round == 0 {
			first = size()
		}
	}
	if last := size(); last > 2*first {
		t.Errorf("after 6 rounds of 50,000 changes the table takes %d kB, after the first %d kB: its space is not reused", last>>10, first>>10)
	}
}

// TestVacuumAfterALongTransaction: a transaction older than a fold (a
// long report, a backup) keeps the rows the fold deleted, and the vacuum
// after the fold has to leave them. The store vacuumed again only after
// the next fold, so with autovacuum off and no more changes, their space
// stayed unusable. It now vacuums again while rows are left.
func TestVacuumAfterALongTransaction(t *testing.T) {
	ctx := context.Background()
	s := openStoreWith(t, Config{Schema: testenv.Schema(t), foldEvery: 20 * time.Millisecond, vacuumEvery: 50 * time.Millisecond})
	if _, err := s.Pool().Exec(ctx, "ALTER TABLE stats_counter_deltas SET (autovacuum_enabled = false)"); err != nil {
		t.Fatal(err)
	}
	conn, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	report, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer report.Rollback(ctx)
	if _, err := report.Exec(ctx, "SELECT count(*) FROM stats_counters"); err != nil { // takes its snapshot
		t.Fatal(err)
	}
	vacuums, _ := deltaVacuums(t, s)
	addPending(t, s, 10_000)
	waitFolded(t, s, 30*time.Second)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, dead := deltaVacuums(t, s); n > vacuums && dead > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no vacuum after the fold reported the rows the report keeps")
		}
	}
	if err := report.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ := deltaVacuums(t, s)
	waitVacuumed(t, s, n, 10*time.Second)
}

// deltaVacuums reads how many vacuums of stats_counter_deltas ran and
// how many dead rows the statistics count in it.
func deltaVacuums(t testing.TB, s *Store) (vacuums, dead int64) {
	t.Helper()
	if err := s.Pool().QueryRow(context.Background(),
		"SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relid = 'stats_counter_deltas'::regclass").Scan(&vacuums, &dead); err != nil {
		t.Fatal(err)
	}
	return vacuums, dead
}

// waitVacuumed waits until a vacuum of stats_counter_deltas ran after
// the first `after` and the statistics count no dead rows in it, failing
// after d.
func waitVacuumed(t testing.TB, s *Store, after int64, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		n, dead := deltaVacuums(t, s)
		if n > after && dead == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead rows of counter changes left after %s (%d vacuums ran)", dead, d, n-after)
		}
	}
}
