package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// openTestStore opens a store on a schema of its own.
func openTestStore(t testing.TB, schema string) *Store {
	t.Helper()
	return openStoreWith(t, Config{Schema: schema})
}

// openStoreWith opens a store of cfg on the test server (cfg.URL filled
// in), closed when the test ends.
func openStoreWith(t testing.TB, cfg Config) *Store {
	t.Helper()
	cfg.URL = testenv.PostgresURL()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("opening PostgreSQL store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) hub.Store { return openTestStore(t, testenv.Schema(t)) })
}

// TestTwoInstances runs two stores on one schema, as two hub instances in
// one consumer group would, applying the events of the same persons from
// different "topics" at once: the result equals one instance's.
func TestTwoInstances(t *testing.T) {
	schema := testenv.Schema(t)
	a, b := openTestStore(t, schema), openTestStore(t, schema)
	in := storetest.Population(t, 120, 31)
	want := storetest.Expected(in)
	// Split by source, as partitions of different topics would be.
	var forA, forB []hub.Input
	for _, e := range in {
		if e.Event.Source == "social_insurance" || e.Event.Source == "housing" || e.Event.Source == "tax" {
			forA = append(forA, e)
		} else {
			forB = append(forB, e)
		}
	}
	// And a redelivery after a rebalance: some events go to both.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(in)/10; i++ {
		forA = append(forA, in[r.IntN(len(in))])
	}
	applyConcurrently(t, []applyJob{{a, forA, 0, 50, 50}, {b, forB, 0, 50, 50}})
	storetest.CompareRecords(t, a, want)
	st, _ := b.Stats(context.Background())
	if st.Changes != int64(len(in)) {
		t.Errorf("%d history rows, want %d", st.Changes, len(in))
	}
}

// TestConcurrentBatchesDoNotDeadlock applies a population's events as the
// consumer does with several batches in flight: consecutive batches at
// once, each holding persons stored by earlier batches and persons new to
// the store, some of them being created by a batch still in flight. Every
// batch must lock its persons without a deadlock (each costs its batch
// PostgreSQL's deadlock_timeout) and nothing may be lost.
func TestConcurrentBatchesDoNotDeadlock(t *testing.T) {
	s := openTestStore(t, testenv.Schema(t))
	in := storetest.Population(t, 400, 41)
	const workers, size = 4, 60
	var jobs []applyJob
	for w := range workers {
		jobs = append(jobs, applyJob{s, in, w * size, size, workers * size})
	}
	applyConcurrently(t, jobs)
	if r := s.Retries(); r.Deadlocks != 0 {
		t.Errorf("%d batches deadlocked (retries %+v)", r.Deadlocks, r)
	}
	storetest.CompareRecords(t, s, storetest.Expected(in))
	if st, _ := s.Stats(context.Background()); st.Changes != int64(len(in)) {
		t.Errorf("%d history rows, want %d", st.Changes, len(in))
	}
}

// TestRetriesCounted re-sends a batch, as a redelivery after a rebalance
// does: the store retries it once, leaving the applied events out, and
// pophub.store.retries{cause="repeat"} says so.
func TestRetriesCounted(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	s, err := Open(context.Background(), Config{URL: testenv.PostgresURL(), Schema: testenv.Schema(t), Meter: provider.Meter("test")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	in := storetest.Population(t, 5, 43)
	ctx := context.Background()
	if _, err := s.Apply(ctx, in); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || res.Duplicates != len(in) {
		t.Errorf("again: applied %d duplicates %d, want 0 and %d", res.Applied, res.Duplicates, len(in))
	}
	if r := s.Retries(); r != (Retries{Repeats: 1}) {
		t.Errorf("retries %+v, want one repeat", r)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "pophub.store.retries" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				cause, _ := dp.Attributes.Value("cause")
				got[cause.AsString()] = dp.Value
			}
		}
	}
	if want := map[string]int64{"repeat": 1, "deadlock": 0, "serialization": 0, "unique": 0}; !maps.Equal(got, want) {
		t.Errorf("pophub.store.retries %v, want %v", got, want)
	}
}

// applyJob applies the batches in[first:first+size], in[first+step:…], … to
// s, in order.
type applyJob struct {
	s                 *Store
	in                []hub.Input
	first, size, step int
}

// applyConcurrently runs the jobs at once and fails on the first error.
func applyConcurrently(t *testing.T, jobs []applyJob) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	for _, job := range jobs {
		wg.Go(func() {
			for i := job.first; i < len(job.in); i += job.step {
				if _, err := job.s.Apply(context.Background(), job.in[i:min(i+job.size, len(job.in))]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Apply: %v", err)
	}
}

// TestMigrationsIdempotent opens the same schema twice, concurrently.
func TestMigrationsIdempotent(t *testing.T) {
	schema := testenv.Schema(t)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), Config{URL: testenv.PostgresURL(), Schema: schema})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Open: %v", err)
	}
	s := openTestStore(t, schema)
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.Pool().QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != len(files) {
		t.Fatalf("schema_migrations has %d rows (%v), want one per migration (%d)", n, err, len(files))
	}
}

// BenchmarkApply reports the store's own apply rate next to the raw
// baseline of the same writes.
func BenchmarkApply(b *testing.B) {
	in := storetest.Population(b, 20000, 33)
	b.Run("baseline", func(b *testing.B) {
		var rate float64
		for b.Loop() {
			r, err := Baseline(context.Background(), testenv.PostgresURL(), testenv.Schema(b), in, 2000)
			if err != nil {
				b.Fatal(err)
			}
			rate = r
		}
		b.ReportMetric(rate, "events/s")
	})
	store := func(b *testing.B, counters, sealed bool) {
		n := 0
		k := storetest.Keyring(b, storetest.Keys(b))
		for b.Loop() {
			b.StopTimer()
			var s *Store
			if sealed {
				s = openSealedStore(b, testenv.Schema(b), k)
			} else {
				s = openTestStore(b, testenv.Schema(b))
			}
			s.noCounters = !counters
			b.StartTimer()
			for i := 0; i < len(in); i += 2000 {
				if _, err := s.Apply(context.Background(), in[i:min(i+2000, len(in))]); err != nil {
					b.Fatal(err)
				}
			}
			n += len(in)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	}
	// The counters' cost is the rate with them next to the rate without.
	b.Run("store", func(b *testing.B) { store(b, true, false) })
	b.Run("store-without-counters", func(b *testing.B) { store(b, false, false) })
	// Sealing's cost is this rate next to the store's.
	b.Run("store-sealed", func(b *testing.B) { store(b, true, true) })
}

// TestVerifyCountersFindsDrift checks that verification reports a counter
// that no longer matches the records, with the size of the difference.
func TestVerifyCountersFindsDrift(t *testing.T) {
	s := openFoldingStore(t, testenv.Schema(t), -1)
	storetest.ApplyAll(t, s, storetest.Population(t, 40, 5), 25)
	if diffs, err := s.VerifyCounters(context.Background()); err != nil || len(diffs) != 0 {
		t.Fatalf("fresh store: %d differences (%v)", len(diffs), err)
	}
	if _, _, err := s.foldCounters(context.Background()); err != nil {
		t.Fatal(err)
	}
	var region, bucket string
	if err := s.Pool().QueryRow(context.Background(),
		`UPDATE stats_counters SET n = n + 3 WHERE ctid = (SELECT ctid FROM stats_counters LIMIT 1) RETURNING region, bucket`).Scan(&region, &bucket); err != nil {
		t.Fatal(err)
	}
	diffs, err := s.VerifyCounters(context.Background())
	if err != nil || len(diffs) != 1 || diffs[0].Region != region || diffs[0].Bucket != bucket || diffs[0].N != 3 {
		t.Fatalf("after drifting %s/%s by 3: %+v (%v)", region, bucket, diffs, err)
	}
	// A rebuild recomputes every counter from the records.
	if n, err := s.RebuildCounters(context.Background()); err != nil || n != 40 {
		t.Fatalf("RebuildCounters: %d persons, %v", n, err)
	}
	if diffs, err := s.VerifyCounters(context.Background()); err != nil || len(diffs) != 0 {
		t.Fatalf("after a rebuild: %d differences (%v)", len(diffs), err)
	}
}

// TestLoaderWritesWhatApplyWrites loads a population in bulk and checks
// the records, history and counters equal those of applying it.
func TestLoaderWritesWhatApplyWrites(t *testing.T) {
	in := storetest.Population(t, 120, 31)
	loaded := openTestStore(t, testenv.Schema(t))
	l := loaded.NewLoader()
	// Chunks must hold whole persons: split the population by person.
	byPerson := map[string][]hub.Input{}
	var order []string
	for _, e := range in {
		k := string(e.Event.Subject)
		if byPerson[k] == nil {
			order = append(order, k)
		}
		byPerson[k] = append(byPerson[k], e)
	}
	var chunk []hub.Input
	for i, k := range order {
		chunk = append(chunk, byPerson[k]...)
		if i%25 == 24 || i == len(order)-1 {
			if err := l.Load(context.Background(), chunk); err != nil {
				t.Fatal(err)
			}
			chunk = nil
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	storetest.CompareRecords(t, loaded, storetest.Expected(in))
	storetest.CompareHistory(t, loaded, storetest.ExpectedHistory(in))
	if diffs, err := loaded.VerifyCounters(context.Background()); err != nil || len(diffs) != 0 {
		t.Fatalf("counters after a bulk load: %d differ (%v)", len(diffs), err)
	}
	applied := openTestStore(t, testenv.Schema(t))
	storetest.ApplyAll(t, applied, in, 50)
	q := hub.CountQuery{Regions: []string{"23", "2301", "230102", "11", "43", "4301"}, AsOf: "2022-06-30"}
	a, err1 := applied.Counts(context.Background(), q)
	b, err2 := loaded.Counts(context.Background(), q)
	if err1 != nil || err2 != nil || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("counts applied %v (%v), loaded %v (%v)", a, err1, b, err2)
	}
}
