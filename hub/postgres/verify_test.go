package postgres

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// corruptCounters changes stored counters of two provinces and adds one
// that no person makes, and returns the differences VerifyCounters must
// report, in key order.
func corruptCounters(t *testing.T, s *Store) []stats.Delta {
	t.Helper()
	ctx := context.Background()
	var want []stats.Delta
	for _, c := range []struct {
		sql string
		n   func(stored int64) int64
	}{
		// A counter of Heilongjiang drifts by 3.
		{`UPDATE stats_counters SET n = n + 3 WHERE (region, class, bucket) = (SELECT region, class, bucket FROM stats_counters
			WHERE region LIKE '2301%' AND length(region) = 12 ORDER BY region, class, bucket LIMIT 1) RETURNING region, class::text, bucket, n`,
			func(int64) int64 { return 3 }},
		// One of Beijing is lost.
		{`DELETE FROM stats_counters WHERE (region, class, bucket) = (SELECT region, class, bucket FROM stats_counters
			WHERE region LIKE '11%' AND n <> 0 ORDER BY bucket DESC, region, class LIMIT 1) RETURNING region, class::text, bucket, n`,
			func(stored int64) int64 { return -stored }},
		// One of Hunan counts nobody.
		{`INSERT INTO stats_counters VALUES ('4301', 'p', 'D19990101', 5) RETURNING region, class::text, bucket, n`,
			func(int64) int64 { return 5 }},
	} {
		var d stats.Delta
		var class string
		var n int64
		if err := s.Pool().QueryRow(ctx, c.sql).Scan(&d.Region, &class, &d.Bucket, &n); err != nil {
			t.Fatalf("corrupting the counters: %v", err)
		}
		d.Class, d.N = stats.Class(class[0]), c.n(n)
		want = append(want, d)
	}
	slices.SortFunc(want, func(a, b stats.Delta) int { return compareKeys(a.Key, b.Key) })
	return want
}

// TestVerifyCountersInPieces: however little of the recount VerifyCounters
// may hold in memory, it reports the same differences as a recount held
// whole, for a population spread over several provinces whose members
// move between them.
func TestVerifyCountersInPieces(t *testing.T) {
	s := openTestStore(t, testenv.Schema(t))
	loadPopulation(t, s, storetest.Population(t, 400, 11))
	want := corruptCounters(t, s)
	tests := []struct {
		name   string
		budget int
	}{
		{"whole", 0},
		{"a few hundred counters at a time", 300},
		// Each person on their own: more pieces than are merged at once.
		{"one person at a time", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.verifyBudget = tc.budget
			got, err := s.VerifyCounters(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("differences\n%v\nwant\n%v", got, want)
			}
			if whole, err := s.verifyWhole(context.Background()); err != nil || fmt.Sprint(got) != fmt.Sprint(whole) {
				t.Errorf("differences\n%v\nrecounted whole\n%v (%v)", got, whole, err)
			}
		})
	}
}

// TestVerifyCountersBoundsMemory: with a budget, VerifyCounters's heap
// grows by a fraction of what the whole recount takes. Before, it held
// every counter, 171 bytes each: 6.6 GB for 38.8 million.
func TestVerifyCountersBoundsMemory(t *testing.T) {
	s := openTestStore(t, testenv.Schema(t))
	loadPopulation(t, s, storetest.Population(t, 8000, 12))
	var counters int64
	if err := s.Pool().QueryRow(context.Background(), "SELECT count(*) FROM stats_counters").Scan(&counters); err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(1))
	peak := func(budget int) uint64 {
		s.verifyBudget = budget
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var top atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > base && ms.HeapAlloc-base > top.Load() {
					top.Store(ms.HeapAlloc - base)
				}
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		})
		diffs, err := s.VerifyCounters(context.Background())
		close(stop)
		wg.Wait()
		if err != nil || len(diffs) != 0 {
			t.Fatalf("VerifyCounters: %d differences (%v)", len(diffs), err)
		}
		return top.Load()
	}
	whole, bounded := peak(0), peak(int(counters/20))
	t.Logf("%d counters: heap grew by %d kB whole, %d kB with a budget of %d", counters, whole>>10, bounded>>10, counters/20)
	if bounded > whole/2 {
		t.Errorf("with a budget of a twentieth of the counters, the heap grew by %d kB, against %d kB for the whole recount", bounded>>10, whole>>10)
	}
}

// verifyWhole is VerifyCounters as it was before it recounted in pieces,
// holding every counter in one map: the reference the pieces must equal,
// and the baseline of BenchmarkVerifyCounters.
func (s *Store) verifyWhole(ctx context.Context) ([]stats.Delta, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("verifying counters: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	acc := stats.Acc{}
	rows, err := tx.Query(ctx, "SELECT person_key, state FROM persons WHERE version > 0")
	if err != nil {
		return nil, fmt.Errorf("verifying counters: %w", err)
	}
	for rows.Next() {
		var key string
		var raw []byte
		if err := rows.Scan(&key, &raw); err != nil {
			rows.Close()
			return nil, fmt.Errorf("verifying counters: %w", err)
		}
		st, err := s.seal.openState(key, raw)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("verifying counters: %w", err)
		}
		acc.Person(nil, st, s.cfg.Classify)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verifying counters: %w", err)
	}
	rows, err = tx.Query(ctx, "SELECT region, class::text, bucket, n FROM stats_counters UNION ALL SELECT region, class::text, bucket, n FROM stats_counter_deltas")
	if err != nil {
		return nil, fmt.Errorf("verifying counters: %w", err)
	}
	for rows.Next() {
		var k stats.Key
		var class string
		var n int64
		if err := rows.Scan(&k.Region, &class, &k.Bucket, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("verifying counters: %w", err)
		}
		k.Class = stats.Class(class[0])
		acc[k] -= n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verifying counters: %w", err)
	}
	// acc now holds recomputed minus stored; report stored minus recomputed.
	diffs := acc.Deltas()
	for i := range diffs {
		diffs[i].N = -diffs[i].N
	}
	return diffs, nil
}

// TestVerifyPiecesLeaveNothingBehind: a piece of the recount is on disk
// only while the verification holds it open, so a verification killed
// halfway leaves no file in $TMPDIR, which nothing would remove.
func TestVerifyPiecesLeaveNothingBehind(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r := sliceReader([]stats.Delta{{Key: stats.Key{Region: "23", Class: stats.Urban, Bucket: "Y2026"}, N: 3}})
	f, err := writePiece(&r)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("a piece in use is a file in $TMPDIR (%s): killed now, it would stay", left[0].Name())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, more, err := (&fileReader{r: bufio.NewReader(f)}).next()
	if err != nil || !more || got.N != 3 || got.Region != "23" {
		t.Errorf("reading the piece back: %+v, %v, %v", got, more, err)
	}
}
