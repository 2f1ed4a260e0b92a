package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestPublishRefusesSeveralFiles: `pophub publish --file housing-*.jsonl`,
// the shell expanding the glob to two files, published the first, dropped
// the second without a word and exited 0. The second file is refused
// before anything is sent, and the error says one --file is taken.
func TestPublishRefusesSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "housing-1.jsonl")
	second := filepath.Join(dir, "housing-2.jsonl")
	for _, f := range []string{first, second} {
		if err := os.WriteFile(f, []byte(`{"specversion":"1.0"}`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, command := range []string{"publish", "import"} {
		t.Run(command, func(t *testing.T) {
			out, err := execute(t, rootCommand(), command, "--source", "housing", "--kafka", "127.0.0.1:1", "--file", first, second)
			want := "pophub " + command + " takes no arguments: it reads one --file; run it once per file"
			if err == nil || err.Error() != want {
				t.Fatalf("error %v, want %q\n%s", err, want, out)
			}
			if strings.Contains(err.Error(), second) {
				t.Errorf("error %q repeats the argument", err)
			}
		})
	}
}

// TestLeafCommandsRefuseStrayArguments: every command that takes no
// positional argument refuses one, as `pophub status extra` does, instead
// of running and ignoring it (`pophub stats pull --region 23 2301` pulled
// 23).
func TestLeafCommandsRefuseStrayArguments(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			walk(s)
		}
		if !c.Runnable() || c.Name() == "help" || strings.HasPrefix(c.CommandPath(), "pophub completion") {
			return
		}
		if err := c.ValidateArgs([]string{"a.jsonl", "b.jsonl", "c.jsonl"}); err == nil {
			t.Errorf("%s accepts stray positional arguments and ignores them", c.CommandPath())
		}
	}
	walk(rootCommand())

	for _, args := range [][]string{
		{"stats", "pull", "--region", "23", "2301"},
		{"synth", "--persons", "3", "--out", t.TempDir(), "extra"},
		{"serve", "extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, err := execute(t, rootCommand(), args...)
			if err == nil || !strings.Contains(err.Error(), "takes no arguments") || !strings.Contains(err.Error(), "--help") {
				t.Errorf("error %v, want one saying the command takes no arguments\n%s", err, out)
			}
		})
	}
}
