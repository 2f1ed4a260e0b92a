package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/schemas/region"
)

// regionsCommand is `pophub regions`: look codes up in the region table
// and install the official NBS urban-rural table over the built-in one.
func regionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "regions",
		Short: "The region table: show a division code, import the official NBS urban-rural table",
		Long: `The region table has every statistical division code down to villages and
residents' committees. The built-in table derives each committee's urban/rural class
from its name and number; 'regions import' installs the official NBS classification.`,
	}
	cmd.AddCommand(regionsShowCommand(), regionsImportCommand())
	return cmd
}

func regionsShowCommand() *cobra.Command {
	var overlay string
	cmd := &cobra.Command{
		Use:   "show CODE",
		Short: "Print a division code's chain from the province, with the urban-rural class of a 12-digit code",
		Example: `  pophub regions show 230102
  pophub regions show 230102001001 --regions pophub-data/regions.tsv.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := loadRegions(overlay); err != nil {
				return err
			}
			code := args[0]
			if !region.IsLevelCode(code) {
				return notLevelCode(code)
			}
			w := cmd.OutOrStdout()
			for _, c := range region.Chain(code) {
				fmt.Fprintf(w, "%-12s  %-8s  %s\n", c.Code, c.Level, c.Name)
			}
			d, ok := region.Lookup(code)
			if !ok {
				return fmt.Errorf("%s is not in the region table", code)
			}
			if d.Level != region.VillageLevel {
				fmt.Fprintf(w, "%d direct children\n", len(region.Children(code)))
				return nil
			}
			if d.Derived {
				fmt.Fprintf(w, "%s: %s, derived from the committee's name and number (no official NBS class imported)\n", d.Code, d.UrbanRural)
			} else {
				fmt.Fprintf(w, "%s: %s, class %s %s (official NBS table)\n", d.Code, d.UrbanRural, d.Class, region.ClassName(d.Class))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&overlay, "regions", os.Getenv("POPHUB_REGIONS"),
		"an imported NBS table (from regions import) to lay over the built-in one (env POPHUB_REGIONS)")
	return cmd
}

// notLevelCode says what is wrong with code, which region.IsLevelCode
// refused: its length, its characters or its province.
func notLevelCode(code string) error {
	switch len(code) {
	case 2, 4, 6, 9, 12:
	default:
		return fmt.Errorf("%q is not a 2-, 4-, 6-, 9- or 12-digit division code", code)
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return fmt.Errorf("%q is not a division code: it has a character other than a digit", code)
		}
	}
	return fmt.Errorf("%q is not a division code: %s is not a province code", code, code[:2])
}

func regionsImportCommand() *cobra.Command {
	var file, out string
	cmd := &cobra.Command{
		Use:   "import --file NBS.csv [--out FILE]",
		Short: "Validate the official NBS urban-rural table and install it for the hub",
		Long: `Reads the NBS statistical division and urban-rural classification table as CSV
(code, classification code, name per line; UTF-8; an optional header) and reports every
bad line. A valid table is saved to FILE, by default regions.tsv.gz in the hub's data
directory, which the hub loads when it starts (or give --regions FILE); its entries
replace the derived classes of the built-in table (and add codes it lacks).
Counters kept under the derived classes are not recomputed by the import: run
'pophub stats rebuild --regions FILE' once (a memdb hub rebuilds them when it starts).`,
		Args: noArgsUse("--file NBS.csv"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("--file is required")
			}
			f, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("opening NBS table: %w", err)
			}
			defer f.Close()
			o, err := region.ParseNBS(f)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			base := region.Builtin()
			_, replaced, added := base.With(o)
			flipped := 0
			for d := range o.All() {
				if old, ok := base.Lookup(d.Code); ok && old.UrbanRural != d.UrbanRural {
					flipped++
				}
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", filepath.Dir(out), err)
			}
			if err := region.WriteOverlay(out, o); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d entries; %d replace derived entries (%d of them change urban/rural), %d are new; saved to %s\n",
				file, o.Len(), replaced, flipped, added, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the NBS table as CSV (required)")
	cmd.Flags().StringVar(&out, "out", filepath.Join(envOr("POPHUB_DATA", "pophub-data"), regionsFileName),
		"where to save the validated table (default: the hub's data directory, env POPHUB_DATA)")
	return cmd
}

// regionsFileName is the installed official table in a data directory.
const regionsFileName = "regions.tsv.gz"

// loadRegions makes the built-in table with the imported overlay at path
// (if any) the table in use.
func loadRegions(path string) error {
	if path == "" {
		return nil
	}
	o, err := region.LoadOverlay(path)
	if err != nil {
		return err
	}
	t, _, _ := region.Builtin().With(o)
	region.SetDefault(t)
	return nil
}

// apiRegions serves the API's region names and children from the table in
// use.
type apiRegions struct{}

func (apiRegions) Name(code string) (string, bool) {
	d, ok := region.Lookup(code)
	return d.Name, ok
}

func (apiRegions) Children(code string) []string {
	kids := region.Children(code)
	out := make([]string, len(kids))
	for i, k := range kids {
		out[i] = k.Code
	}
	return out
}
