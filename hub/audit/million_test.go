package audit

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestVerifyMillion bulk-loads 1,000,000 chained entries and verifies
// them, then changes one row in the middle and finds it. Under -race,
// which slows JSON decoding about tenfold, the file store verifies a
// tenth of that, so that the run stays within CI's time.
func TestVerifyMillion(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if testing.Short() && os.Getenv("CI") != "true" {
				t.Skip("-short")
			}
			n := 1_000_000
			if b.name == "file" && raceEnabled {
				n = 100_000
			}
			k := testKey(t)
			s, tam := b.open(t)
			start := time.Now()
			fill(t, s, k, base, n, 50_000)
			load := time.Since(start)
			ctx := context.Background()
			start = time.Now()
			rep, err := Verify(ctx, s, VerifyOptions{Key: k})
			took := time.Since(start)
			if err != nil || !rep.OK() || rep.Entries != int64(n) {
				t.Fatalf("verify: %v, %v", rep.Problems, err)
			}
			t.Logf("%s: loaded %d entries in %s, verified in %s (%.0f entries/s)", b.name, n, load.Round(time.Millisecond),
				took.Round(time.Millisecond), float64(n)/took.Seconds())

			if b.name == "postgres" {
				// One changed row, in place, as a superuser would.
				p := s.(*Postgres)
				if _, err := p.pool.Exec(ctx, "BEGIN; SET LOCAL session_replication_role = replica; UPDATE "+p.log+
					" SET purpose = 'curiosity' WHERE seq = 654321; COMMIT"); err != nil {
					t.Fatal(err)
				}
			} else {
				_ = tam
				return // rewriting a million lines through the tamperer adds nothing here
			}
			rep, err = Verify(ctx, s, VerifyOptions{Key: k})
			if err != nil || rep.OK() || rep.Problems[0].Kind != Changed || rep.Problems[0].Seq != 654321 || rep.NumProblems != 1 {
				t.Errorf("after changing seq 654321: %v, %v", rep.Problems, err)
			}
		})
	}
}

// BenchmarkLogAppend measures Log.Append throughput into each store, with
// a Flush at the end (entries/s counts durable entries).
func BenchmarkLogAppend(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			k := testKey(b)
			s, _ := be.open(b)
			l, err := NewLog(s, k, LogConfig{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			e := sample(k, base, 0)
			e.Time = time.Time{}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Append(ctx, e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := l.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkVerify measures Verify throughput over a stored log of 100,000
// entries (reading included), and of the pure Verifier.
func BenchmarkVerify(b *testing.B) {
	const n = 100_000
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			k := testKey(b)
			s, _ := be.open(b)
			fill(b, s, k, base, n, 10_000)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				rep, err := Verify(ctx, s, VerifyOptions{Key: k})
				if err != nil || !rep.OK() {
					b.Fatal(rep.Problems, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
	b.Run("verifier", func(b *testing.B) {
		k := testKey(b)
		es := make([]Entry, n)
		for i := range es {
			es[i] = sample(k, base, i)
		}
		newChainer(k).link(Link{}, es)
		b.ResetTimer()
		for range b.N {
			v := NewVerifier(Link{}, VerifyOptions{Key: k})
			for i := range es {
				v.Add(&es[i])
			}
			if rep := v.Finish(); !rep.OK() {
				b.Fatal(rep.Problems)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}
