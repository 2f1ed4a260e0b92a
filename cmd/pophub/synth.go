package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/schemas"
)

func synthCommand() *cobra.Command {
	var cfg synth.Config
	var out string
	var cities []string
	cmd := &cobra.Command{
		Use:   "synth --persons N --out DIR",
		Short: "Write a synthetic population's department events as one JSONL file per source",
		Long: `Generates a deterministic synthetic population (valid citizen IDs, names,
households, life courses) and writes its events to DIR/<source>.jsonl, one CloudEvent
per line in arrival order (late events included), ready for
'pophub publish --source S --file DIR/S.jsonl' or 'pophub import --format jsonl'.
The same --seed gives the same files; person i is the same person whatever --persons
(the partner of the last of an odd number is outside the population: no events of his own).
Event ids carry a hash of the seed, the window (its end clamped to today) and the cities:
runs that differ in these get other ids, so publishing them into one hub drops none of
their events as duplicates, while a larger --persons only adds persons and ids.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Persons <= 0 {
				return errors.New("--persons must be positive")
			}
			if out == "" {
				return errors.New("--out is required")
			}
			if err := synthFlags(&cfg); err != nil {
				return err
			}
			cfg.Cities = cities
			start := time.Now()
			st, err := synth.WriteJSONL(cmd.Context(), cfg, out)
			if err != nil {
				return fmt.Errorf("generating population: %w", err)
			}
			took := time.Since(start)
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%d persons, %d events (%d late, %d repeated) in %s: %.0f persons/s\n",
				st.Persons, st.Events, st.Late, st.Duplicates, took.Round(time.Millisecond), float64(cfg.Persons)/took.Seconds())
			srcs := make([]string, 0, len(st.BySource))
			for s := range st.BySource {
				srcs = append(srcs, string(s))
			}
			slices.Sort(srcs)
			for _, s := range srcs {
				fmt.Fprintf(w, "  %s/%s.jsonl: %d events\n", out, s, st.BySource[schemas.Source(s)])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Persons, "persons", 0, "number of persons (required)")
	f.IntVar(&cfg.Months, "months", 24, "length of the window of life events, in months")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed: the same seed gives the same population")
	f.Float64Var(&cfg.LateRate, "late", 0.05, "fraction of events that arrive late and out of order")
	f.Float64Var(&cfg.DuplicateRate, "duplicates", 0, "fraction of events sent twice with the same id")
	f.StringSliceVar(&cities, "cities", nil, "restrict to these cities or counties (codes, prefixes or names); default all")
	f.StringVar(&out, "out", "", "output directory (required)")
	return cmd
}

// synthFlags checks the flags the library would otherwise take as "use the
// default" and turns them into its Config: --months 0 would silently mean
// 24, and --late 0 the default 5% (the library's zero value), where the
// user asked for none.
func synthFlags(cfg *synth.Config) error {
	switch {
	case cfg.Months < 1:
		return fmt.Errorf("--months %d: want at least 1", cfg.Months)
	case cfg.LateRate < 0 || cfg.LateRate > 1:
		return fmt.Errorf("--late %g: want a fraction from 0 to 1", cfg.LateRate)
	case cfg.DuplicateRate < 0 || cfg.DuplicateRate > 1:
		return fmt.Errorf("--duplicates %g: want a fraction from 0 to 1", cfg.DuplicateRate)
	}
	if cfg.LateRate == 0 {
		cfg.LateRate = -1 // none (synth.Config.LateRate)
	}
	return nil
}
