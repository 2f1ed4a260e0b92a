package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/consumers/statsbureau"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/stats"
)

func statsCommand(newLogger func() *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Registered-population statistics: pull a report from a hub, verify a store's counters",
	}
	cmd.AddCommand(statsPullCommand(newLogger), statsVerifyCommand(), statsRebuildCommand())
	return cmd
}

func statsPullCommand(newLogger func() *slog.Logger) *cobra.Command {
	var hubURL, region, asOf, format, out, depth, token, purpose string
	var bom bool
	var ca *caFlag
	cmd := &cobra.Command{
		Use:   "pull --hub URL --region CODE [--as-of DATE] [--depth county] [--format csv|json] [--bom=false] [--out FILE]",
		Short: "Pull urban/rural counts for a region and every region below it down to a level",
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := statsbureau.LevelLength(depth)
			if err != nil {
				return fmt.Errorf("--depth: %w", err)
			}
			write := statsbureau.WriteCSV
			switch format {
			case "csv":
				if !bom {
					write = statsbureau.WritePlainCSV
				}
			case "json":
				write = statsbureau.WriteJSON
			default:
				return fmt.Errorf("--format %q: want csv or json", format)
			}
			tc, err := ca.tls()
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			c, err := statsbureau.New(statsbureau.Config{HubURL: hubURL, Token: token, Purpose: purpose, TLS: tc, Logger: newLogger()})
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
	f.StringVar(&hubURL, "hub", envOr("POPHUB_URL", "http://127.0.0.1:8780"), "hub API base URL (env POPHUB_URL)")
	f.StringVar(&token, "token", os.Getenv("POPHUB_TOKEN"), "bearer token (env POPHUB_TOKEN)")
	// The default is the statistics bureau's purpose in the example
	// policy; another identity names one of its own.
	f.StringVar(&purpose, "purpose", envOr("POPHUB_PURPOSE", statsbureau.DefaultPurpose),
		"purpose sent as X-Purpose, one the token's identity may act for under a policy (env POPHUB_PURPOSE)")
	ca = addCAFlag(f)
	f.StringVar(&region, "region", "", "division code of 2, 4, 6, 9 or 12 digits; a city may be written in six digits, 230100 for 2301 (required)")
	f.StringVar(&asOf, "as-of", "", "reference date YYYY-MM-DD (default: today)")
	f.StringVar(&depth, "depth", "county", "deepest level: province, city, county, township or village")
	f.StringVar(&format, "format", "csv", "csv or json")
	f.BoolVar(&bom, "bom", true, "begin a CSV report with the UTF-8 byte order mark, without which Excel on Chinese Windows reads it as GBK; --bom=false for programs that do not expect one")
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
	var pgURL, schema, dataDir, regions, keysFile string
	cmd := &cobra.Command{
		Use:   "rebuild --postgres URL [--schema S] [--data DIR] [--regions NBS-FILE]",
		Short: "Recompute every counter from the golden records (after importing an official region table)",
		Long: `Replaces the PostgreSQL store's counters with ones recomputed from every person's
registration timeline, in one transaction. Addresses are classified by the region table
the hub runs with, found as the hub finds it: --regions, else the one 'pophub regions
import' installed in the hub's --data directory, else the built-in table. Give the
same --data and --regions as the hub: counters rebuilt by another table than the hub's
are wrong for every address the two classify differently. A running hub's batches wait
for the rebuild and then add to it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if pgURL == "" {
				return errors.New("--postgres is required")
			}
			if err := loadRegions(regionsFile(regions, dataDir)); err != nil {
				return regionsError(regions, err)
			}
			keys, err := loadKeys(cmd.Context(), keysFile, "")
			if err != nil {
				return err
			}
			s, err := postgres.OpenExisting(cmd.Context(), postgres.Config{URL: pgURL, Schema: schema, Keys: keys})
			if err != nil {
				return storeOpenError(err)
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
	f.StringVar(&schema, "schema", os.Getenv("POPHUB_POSTGRES_SCHEMA"), "schema of the hub's tables (env POPHUB_POSTGRES_SCHEMA; default: the one the --postgres URL's search_path names, else public)")
	f.StringVar(&dataDir, "data", os.Getenv("POPHUB_DATA"),
		"the hub's data directory, whose installed region table <data>/"+regionsFileName+" the hub classifies by (env POPHUB_DATA)")
	f.StringVar(&regions, "regions", os.Getenv("POPHUB_REGIONS"),
		"official NBS table the hub runs with, saved by 'pophub regions import' (env POPHUB_REGIONS; default <data>/"+regionsFileName+" when it exists)")
	keysFlag(f, &keysFile, "")
	return cmd
}

// regionsError words a failure to load the region table a recount
// classifies by: the one named with --regions, or the one installed in
// the data directory.
func regionsError(named string, err error) error {
	if named != "" {
		return fmt.Errorf("--regions: %w", err)
	}
	return fmt.Errorf("the region table installed in --data: %w", err)
}

// storeOpenError words a maintenance command's failure to open a store.
// These commands open only a store a hub has made (OpenExisting): one
// that is not there is most often a mistyped flag, and is an error
// (exit status 1), never a new empty store that checks out.
func storeOpenError(err error) error {
	switch {
	case errors.Is(err, postgres.ErrNoStore):
		return fmt.Errorf("opening store: %w; are --postgres and --schema right?", err)
	case errors.Is(err, memdb.ErrNoStore):
		return fmt.Errorf("opening store: %w; is --data right?", err)
	}
	return fmt.Errorf("opening store: %w", err)
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
		Use:   "verify (--postgres URL [--schema S] [--data DIR] | --data DIR) [--regions NBS-FILE]",
		Short: "Recompute every counter from the golden records by a full scan and print any difference",
		Long: `Reads every person's state, recomputes the urban/rural and residence-permit
counters from their registration timelines, and compares them with the counters the
store keeps. Exit status 1 when any differs. Addresses are classified by the region
table the hub runs with, found as the hub finds it: --regions, else the one 'pophub
regions import' installed in the --data directory, else the built-in table. With
--postgres, --data is the PostgreSQL hub's data directory and serves only to find that
table; without it, --data is a memdb hub's data directory and names the store. A --data
holding a memdb store with POPHUB_POSTGRES set and no --postgres is refused: give
--postgres, or unset the variable. The first line names the store checked (host,
database and schema; never a password).
On PostgreSQL it reads one consistent snapshot while the hub runs; a memdb data
directory must not be in use by a running hub.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// --data given without --postgres names a memdb store when it
			// holds one; with the hub's POPHUB_POSTGRES exported as well,
			// which store is meant is not ours to guess. A PostgreSQL hub's
			// --data (its region table) holds no store.
			if cmd.Flags().Changed("data") && !cmd.Flags().Changed("postgres") {
				if _, err := os.Stat(filepath.Join(dataDir, "store")); err == nil {
					if pgURL != "" {
						return fmt.Errorf("POPHUB_POSTGRES is set and %s holds a memdb store: give --postgres to check "+
							"the PostgreSQL store, or leave POPHUB_POSTGRES unset to check the memdb store", dataDir)
					}
				}
			}
			if err := loadRegions(regionsFile(regions, dataDir)); err != nil {
				return regionsError(regions, err)
			}
			// A PostgreSQL hub's --data holds no store, and its keys come
			// only from --keys or POPHUB_KEYS, as before --data was
			// accepted here.
			keysDir := dataDir
			if pgURL != "" {
				keysDir = ""
			}
			var s counterVerifier
			keys, err := loadKeys(ctx, keysFile, keysDir)
			if err != nil {
				return err
			}
			var store string // the store checked, as the output names it
			switch {
			case pgURL != "":
				s, err = postgres.OpenExisting(ctx, postgres.Config{URL: pgURL, Schema: schema, Keys: keys})
				store = "the PostgreSQL store on " + postgres.Where(pgURL, schema)
			case dataDir != "":
				dir := filepath.Join(dataDir, "store")
				s, err = memdb.OpenExisting(ctx, memdb.Config{Dir: dir, Keys: keys})
				store = "the memdb store in " + dir
			default:
				return errors.New("give --postgres URL or --data DIR")
			}
			if err != nil {
				return storeOpenError(err)
			}
			defer s.Close()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "verifying %s\n", store)
			diffs, err := s.VerifyCounters(ctx)
			if err != nil {
				return err
			}
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
	f.StringVar(&schema, "schema", os.Getenv("POPHUB_POSTGRES_SCHEMA"), "schema of the hub's tables (env POPHUB_POSTGRES_SCHEMA; default: the one the --postgres URL's search_path names, else public)")
	f.StringVar(&dataDir, "data", os.Getenv("POPHUB_DATA"),
		"data directory of a stopped memdb hub; with --postgres, the PostgreSQL hub's data directory, for its installed region table (env POPHUB_DATA)")
	f.StringVar(&regions, "regions", os.Getenv("POPHUB_REGIONS"),
		"official NBS table the hub runs with, saved by 'pophub regions import' (env POPHUB_REGIONS; default <data>/"+regionsFileName+" when it exists)")
	keysFlag(f, &keysFile, "; default <data>/keys when it exists and --postgres is not given")
	return cmd
}
