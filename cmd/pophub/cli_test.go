package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// commandGroups walks the tree as declared, before the rules for groups
// are applied, and returns every command below the root that has
// subcommands, with whether it runs anything itself.
func commandGroups() map[string]bool {
	groups := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasParent() && c.HasSubCommands() {
			groups[c.CommandPath()] = c.Runnable()
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(commandTree())
	return groups
}

// TestUnknownSubcommand: a mistyped subcommand of a command group exited 0
// after printing the group's help (`pophub audit verfy`), or, with the
// subcommand's flags after it, blamed the first flag (`pophub stats verfy
// --postgres x`); a group that runs something ran it with the typo
// ignored. Every group, found by walking the tree, now answers as the
// root does, and still prints its help when given nothing; its
// subcommands keep their own flag errors.
func TestUnknownSubcommand(t *testing.T) {
	groups := commandGroups()
	if len(groups) < 8 {
		t.Fatalf("found %d command groups (%v), want the eight or more pophub has", len(groups), groups)
	}
	for path, runnable := range groups {
		t.Run(path, func(t *testing.T) {
			args := strings.Fields(path)[1:]
			want := `unknown command "verfy" for "` + path + `"`
			for _, extra := range [][]string{{"verfy"}, {"verfy", "--postgres", "x"}} {
				out, err := execute(t, rootCommand(), append(slices.Clone(args), extra...)...)
				if err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Errorf("%s %s: error %v, want %q\n%s", path, strings.Join(extra, " "), err, want, out)
				}
			}
			if !runnable {
				out, err := execute(t, rootCommand(), args...)
				if err != nil || !strings.Contains(out, "Available Commands:") {
					t.Errorf("%s: error %v, want its help\n%s", path, err, out)
				}
			}
			var group *cobra.Command
			for _, c := range allCommands(rootCommand()) {
				if c.CommandPath() == path {
					group = c
				}
			}
			sub := group.Commands()[0].Name()
			_, err := execute(t, rootCommand(), append(slices.Clone(args), sub, "verfy", "--no-such-flag")...)
			if err == nil || err.Error() != "unknown flag: --no-such-flag" {
				t.Errorf("%s %s verfy --no-such-flag: error %v, want the unknown flag named", path, sub, err)
			}
		})
	}
	// The root as before.
	if _, err := execute(t, rootCommand(), "verfy"); err == nil || !strings.HasPrefix(err.Error(), `unknown command "verfy" for "pophub"`) {
		t.Errorf("pophub verfy: error %v", err)
	}
	// A close miss is named.
	if _, err := execute(t, rootCommand(), "audit", "verfy"); err == nil || !strings.Contains(err.Error(), "Did you mean this?\n\tverify") {
		t.Errorf("pophub audit verfy: error %v, want a suggestion of verify", err)
	}
}

func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		out = append(out, allCommands(sub)...)
	}
	return out
}

// TestLogLevel: a --log-level or POPHUB_LOG_LEVEL that is not a level was
// read as info; it now stops the command, naming where it came from.
func TestLogLevel(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		want      string // the error; "" for none
	}{
		{"flag", "", []string{"--log-level", "bogus"}, `--log-level "bogus": want debug, info, warn or error`},
		{"env", "bogus", nil, `POPHUB_LOG_LEVEL="bogus": want debug, info, warn or error`},
		{"flag over a bad env", "bogus", []string{"--log-level", "debug"}, ""},
		{"env debug", "debug", nil, ""},
		{"upper case", "", []string{"--log-level", "WARN"}, ""},
		{"error", "", []string{"--log-level", "error"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POPHUB_LOG_LEVEL", tc.env)
			out, err := execute(t, rootCommand(), append(tc.args, "policies", "list")...)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v\n%s", err, out)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDevTLSEnv: POPHUB_TLS was compared with "true", so 1, TRUE or yes
// ran `pophub dev` without TLS. It is now read as strconv.ParseBool reads
// a boolean, and a value that is none is refused.
func TestDevTLSEnv(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want string // --tls default, or the error
	}{
		{"", "false"}, {"true", "true"}, {"1", "true"}, {"TRUE", "true"}, {"t", "true"},
		{"false", "false"}, {"0", "false"}, {"FALSE", "false"},
		{"yes", `POPHUB_TLS="yes": want true or false`}, {"on", `POPHUB_TLS="on": want true or false`},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv("POPHUB_TLS", tc.env)
			if !strings.Contains(tc.want, "want") {
				if got := devCommand(nil).Flags().Lookup("tls").DefValue; got != tc.want {
					t.Errorf("--tls default %s, want %s", got, tc.want)
				}
				return
			}
			// A file where the data directory should be: had the value
			// been taken for false, the hub would fail to start on it
			// rather than run.
			blocker := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(blocker, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := execute(t, rootCommand(), "dev", "--data", blocker, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0", "--nats", "127.0.0.1:0")
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

var envName = regexp.MustCompile(`"(POPHUB_[A-Z0-9_]+)"`)

// TestFlagHelpNamesEnv: README says each flag that reads an environment
// variable when not given names it in its --help; serve --data, --http,
// --group, --otlp, the --kafka of publish, import and cdc, dev's --kafka
// and --nats and eligibility --hub did not. Every POPHUB_ variable this
// package mentions is set to a value of its own; a flag whose default
// then shows that value reads the variable, and its usage must name it.
func TestFlagHelpNamesEnv(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range envName.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
	}
	for name := range names {
		t.Setenv(name, "<"+name+">")
	}
	checked := 0
	for _, c := range allCommands(rootCommand()) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			for name := range names {
				if !strings.Contains(f.DefValue, "<"+name+">") {
					continue
				}
				checked++
				if !strings.Contains(f.Usage, "env") || !regexp.MustCompile(`\b`+name+`\b`).MatchString(f.Usage) {
					t.Errorf("%s --%s reads %s but its help does not say so: %q", c.CommandPath(), f.Name, name, f.Usage)
				}
			}
		})
	}
	t.Logf("%d flags read an environment variable", checked)
	if checked < 100 {
		t.Errorf("only %d flags read an environment variable: the test no longer finds them", checked)
	}
}
