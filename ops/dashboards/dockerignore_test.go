package dashboards_test

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestImageBuildLeavesOutLocalData: the image build copies the repository
// root, so whatever a hub, an import or a synthetic population left in the
// work tree went to the builder with it: pophub dev's data directory (the
// at-rest sealing keys, personal records, the broker's and NATS's
// stores), department exports and rejected lines. .dockerignore keeps
// those out and every file of the source in.
func TestImageBuildLeavesOutLocalData(t *testing.T) {
	ignored := dockerignore(t)
	for _, path := range []string{
		"pophub-data/keys", "pophub-data/store/snapshot", "ops/pophub-data/kafka/x",
		"pophub", "cmd/pophub/pophub.test", "cpu.prof",
		"housing.csv", "exports/2026/rentals.csv", "exports/rentals.csv.rejects.csv",
		"exports/rentals.csv.pophub-import.json", "synth/public_security.jsonl", "exports/租赁.xlsx",
	} {
		if !ignored(path) {
			t.Errorf("%s goes into the image build", path)
		}
	}
	out, err := exec.Command("git", "-C", repo(t, "."), "ls-files").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, path := range strings.Fields(string(out)) {
		if ignored(path) {
			t.Errorf("%s, a file of the source, is left out of the image build", path)
		}
	}
}

// dockerignore reads the repository's .dockerignore and returns whether
// it leaves a path (slash-separated, relative to the root) out of the
// build context, as Docker matches: "**" any directories, "*" within one
// name, a pattern matching a directory leaving out what it holds, and
// "!" taking a path back in, the last matching line deciding.
func dockerignore(t *testing.T) func(string) bool {
	t.Helper()
	f, err := os.Open(repo(t, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type rule struct {
		re     *regexp.Regexp
		negate bool
	}
	var rules []rule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := rule{}
		if r.negate = strings.HasPrefix(line, "!"); r.negate {
			line = line[1:]
		}
		var b strings.Builder
		for i := 0; i < len(line); i++ {
			switch {
			case strings.HasPrefix(line[i:], "**/"):
				b.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				b.WriteString(".*")
				i++
			case line[i] == '*':
				b.WriteString("[^/]*")
			case line[i] == '?':
				b.WriteString("[^/]")
			default:
				b.WriteString(regexp.QuoteMeta(line[i : i+1]))
			}
		}
		r.re = regexp.MustCompile("^" + strings.TrimPrefix(b.String(), "/") + "(/.*)?$")
		rules = append(rules, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return func(path string) bool {
		out := false
		for _, r := range rules {
			if r.re.MatchString(path) {
				out = !r.negate
			}
		}
		return out
	}
}
