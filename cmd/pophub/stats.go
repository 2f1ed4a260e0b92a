package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/consumers/statsbureau"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/stats"
)

func statsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Registered-population statistics: pull a report from a hub, verify a store's counters",
	}
	cmd.AddCommand(statsPullCommand(), statsVerifyCommand(), statsRebuildCommand())
	return cmd
}

func statsPullCommand() *cobra.Command {
	var hubURL, region, asOf, format, out, depth, token, purpose string
	var ca *caFlag
	cmd := &cobra.Command{
		Use:   "pull --hub URL --region CODE [--as-of DATE] [--depth county] [--format csv|json] [--out FILE]",
		Short: "Pull urban/rural counts for a region and every region below it down to a level",
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := statsbureau.LevelLength(depth)
			if err != nil {
				return fmt.Errorf("--depth: %w", err)
			}
			write := statsbureau.WriteCSV
			switch format {
			case "csv":
			case "json":
				write = statsbureau.WriteJSON
			default:
				return fmt.Errorf("--format %q: want csv or json", format)
			}
			tc, err := ca.tls()
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			c, err := statsbureau.New(statsbureau.Config{HubURL: hubURL, Token: token, Purpose: purpose, TLS: tc})
			if err != nil {
				return fmt.Errorf("--hub: %w", err)
			}
			rep, err := c.Pull(cmd.Context(), region, asOf, d)
			if err != nil {
				return fmt.Errorf("pulling counts: %w", err)
			}
			var w io.Writer = cmd.OutOrStdout()
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return fmt.Errorf("creating report: %w", err)
				}
				defer f.Close()
				w = f
			}
			if err := write(w, rep); err != nil {
				return err
			}
			if out != "" && out != "-" {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d regions as of %s\n", out, len(rep.Rows), rep.AsOf)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&hubURL, "hub", envOr("POPHUB_URL", "http://127.0.0.1:8780"), "hub API base URL")
	f.StringVar(&token, "token", os.Getenv("POPHUB_TOKEN"), "bearer token (env POPHUB_TOKEN)")
	// The default is the statistics bureau's purpose in the example
	// policy; another identity names one of its own.
	f.StringVar(&purpose, "purpose", envOr("POPHUB_PURPOSE", statsbureau.DefaultPurpose),
		"purpose sent as X-Purpose, one the token's identity may act for under a policy (env POPHUB_PURPOSE)")
	ca = addCAFlag(f)
	f.StringVar(&region, "region", "", "division code of 2, 4, 6, 9 or 12 digits (required)")
	f.StringVar(&asOf, "as-of", "", "reference date YYYY-MM-DD (default: today)")
	f.StringVar(&depth, "depth", "county", "deepest level: province, city, county, township or village")
	f.StringVar(&format, "format", "csv", "csv or json")
	f.StringVar(&out, "out", "-", "output file (- for standard output)")
	_ = cmd.MarkFlagRequired("region")
	return cmd
}

// counterVerifier is what both stores offer to recount their counters.
type counterVerifier interface {
	VerifyCounters(ctx context.Context) ([]stats.Delta, error)
	RebuildCounters(ctx context.Context) (int64, error)
	Close() error
}

func statsRebuildCommand() *cobra.Command {
	var pgURL, schema, regions, keysFile string
	cmd := &cobra.Command{
		Use:   "rebuild --postgres URL [--schema S] [--regions NBS-FILE]",
		Short: "Recompute every counter from the golden records (after importing an official region table)",
		Long: `Replaces the PostgreSQL store's counters with ones recomputed from every person's
registration timeline, in one transaction, classifying addresses by the region table in
use (--regions: the table saved by 'pophub regions import', which the hub must then run
with too). A running hub's batches wait for the rebuild and then add to it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if pgURL == "" {
				return errors.New("--postgres is required")
			}
			if err := loadRegions(regions); err != nil {
				return fmt.Errorf("--regions: %w", err)
			}
			keys, err := loadKeys(cmd.Context(), keysFile, "")
			if err != nil {
				return err
			}
			s, err := postgres.Open(cmd.Context(), postgres.Config{URL: pgURL, Schema: schema, Keys: keys})
			if err != nil {
				return fmt.Errorf("opening store: %w", err)
			}
			defer s.Close()
			start := time.Now()
			n, err := s.RebuildCounters(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rebuilt the counters of %d persons in %s\n", n, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&pgURL, "postgres", os.Getenv("POPHUB_POSTGRES"), "PostgreSQL URL of the hub's store (env POPHUB_POSTGRES)")
	f.StringVar(&schema, "schema", "public", "schema of the hub's tables")
	f.StringVar(&regions, "regions", os.Getenv("POPHUB_REGIONS"), "official NBS table saved by 'pophub regions import' (env POPHUB_REGIONS)")
	keysFlag(f, &keysFile, "")
	return cmd
}

// regionsFile is the official region table a command runs with: the one
// named (--regions), else the one 'pophub regions import' installed in the
// data directory, when there is one; "" for the built-in table alone. A
// command that recounts must classify addresses as the hub did.
func regionsFile(named, dataDir string) string {
	if named != "" || dataDir == "" {
		return named
	}
	installed := filepath.Join(dataDir, regionsFileName)
	if _, err := os.Stat(installed); err != nil {
		return ""
	}
	return installed
}

func statsVerifyCommand() *cobra.Command {
	var pgURL, schema, dataDir, keysFile, regions string
	cmd := &cobra.Command{
		Use:   "verify (--postgres URL [--schema S] | --data DIR) [--regions NBS-FILE]",
		Short: "Recompute every counter from the golden records by a full scan and print any difference",
		Long: `Reads every person's state, recomputes the urban/rural and residence-permit
counters from their registration timelines, and compares them with the counters the
store keeps. Exit status 1 when any differs. Addresses are classified by the region
table the hub runs with: --regions, else the one installed in the --data directory.
On PostgreSQL it reads one consistent snapshot while the hub runs; a memdb data
directory must not be in use by a running hub.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := loadRegions(regionsFile(regions, dataDir)); err != nil {
				return fmt.Errorf("--regions: %w", err)
			}
			var s counterVerifier
			keys, err := loadKeys(ctx, keysFile, dataDir)
			if err != nil {
				return err
			}
			switch {
			case pgURL != "" && dataDir != "":
				return errors.New("give either --postgres or --data, not both")
			case pgURL != "":
				s, err = postgres.Open(ctx, postgres.Config{URL: pgURL, Schema: schema, Keys: keys})
			case dataDir != "":
				s, err = memdb.Open(ctx, memdb.Config{Dir: filepath.Join(dataDir, "store"), Keys: keys})
			default:
				return errors.New("give --postgres URL or --data DIR")
			}
			if err != nil {
				return fmt.Errorf("opening store: %w", err)
			}
			defer s.Close()
			diffs, err := s.VerifyCounters(ctx)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, d := range diffs {
				fmt.Fprintf(w, "region %s class %c bucket %s: stored %+d from the recount\n", d.Region, d.Class, d.Bucket, d.N)
			}
			if len(diffs) > 0 {
				fmt.Fprintf(w, "%d counters differ from the recount\n", len(diffs))
				return exitError(1)
			}
			fmt.Fprintln(w, "every counter equals the recount from the golden records")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&pgURL, "postgres", os.Getenv("POPHUB_POSTGRES"), "PostgreSQL URL of the hub's store (env POPHUB_POSTGRES)")
	f.StringVar(&schema, "schema", "public", "schema of the hub's tables")
	f.StringVar(&dataDir, "data", "", "data directory of a stopped memdb hub")
	f.StringVar(&regions, "regions", os.Getenv("POPHUB_REGIONS"),
		"official NBS table the hub runs with, saved by 'pophub regions import' (env POPHUB_REGIONS; default <data>/"+regionsFileName+" when it exists)")
	keysFlag(f, &keysFile, "; default <data>/keys when it exists")
	return cmd
}
