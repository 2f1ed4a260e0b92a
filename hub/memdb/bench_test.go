package memdb

import (
	"context"
	"testing"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

func synthInputs(b *testing.B, persons int) []hub.Input {
	b.Helper()
	var in []hub.Input
	err := synth.Generate(context.Background(), synth.Config{Persons: persons, Seed: 3}, func(ev schemas.Event) error {
		in = append(in, hub.Input{Event: ev})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return in
}

// BenchmarkApply applies a synthetic population in batches of 2,000 and
// reports events/s, in memory, with the fsynced log, and with the log
// sealed.
func BenchmarkApply(b *testing.B) {
	in := synthInputs(b, 5000)
	keys := storetest.Keyring(b, storetest.Keys(b))
	for _, mode := range []string{"memory", "wal", "wal-sealed"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			n := 0
			for b.Loop() {
				cfg := Config{}
				if mode != "memory" {
					cfg.Dir = b.TempDir()
				}
				if mode == "wal-sealed" {
					cfg.Keys = keys
				}
				s, err := Open(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < len(in); i += 2000 {
					if _, err := s.Apply(ctx, in[i:min(i+2000, len(in))]); err != nil {
						b.Fatal(err)
					}
				}
				n += len(in)
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkReopen opens a closed store, which loads its snapshot, and
// closes it, which writes it again: the snapshot's read and write paths.
func BenchmarkReopen(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	apply(b, s, storetest.Population(b, 2000, 5), 500)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := Open(ctx, Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
