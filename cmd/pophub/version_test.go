package main

import (
	"runtime"
	"strings"
	"testing"
)

// TestVersionSaysWhichBuildRuns: the operator of a site without a Go
// toolchain learns the build from the binary itself, by the command or
// the flag, both the same.
func TestVersionSaysWhichBuildRuns(t *testing.T) {
	var outs []string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := execute(t, rootCommand(), args...)
		if err != nil {
			t.Fatalf("pophub %s: %v", strings.Join(args, " "), err)
		}
		if !strings.HasPrefix(out, "pophub ") || !strings.Contains(out, ", revision ") || !strings.HasSuffix(out, runtime.Version()+"\n") {
			t.Errorf("pophub %s printed %q, want the version, the revision and %s", strings.Join(args, " "), out, runtime.Version())
		}
		outs = append(outs, out)
	}
	if outs[0] != outs[1] {
		t.Errorf("pophub version printed %q, pophub --version %q: want the same", outs[0], outs[1])
	}
}
