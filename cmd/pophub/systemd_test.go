package main

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSystemdUnitRunsServe: the unit ops/systemd ships starts `pophub
// serve` as it parses, gives it the whole stop before systemd's SIGKILL,
// and its settings file sets only variables serve reads, so that an
// installer following the README gets a hub that starts and stops in
// order rather than one refused, cut short, or quietly unconfigured.
func TestSystemdUnitRunsServe(t *testing.T) {
	unit := unitSettings(t, "../../ops/systemd/pophub.service")
	exec := strings.Fields(unit["ExecStart"])
	if len(exec) < 2 || !strings.HasSuffix(exec[0], "/pophub") {
		t.Fatalf("ExecStart %q does not run pophub", unit["ExecStart"])
	}
	root := rootCommand()
	cmd, rest, err := root.Find(exec[1:])
	if err != nil || cmd.Name() != "serve" {
		t.Fatalf("ExecStart %q runs %q (%v), want serve", unit["ExecStart"], cmd.Name(), err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("ExecStart %q: %v", unit["ExecStart"], err)
	}
	if s := unit["KillSignal"]; s != "" && s != "SIGTERM" && s != "SIGINT" {
		t.Errorf("KillSignal %s: the hub stops in order on SIGTERM or SIGINT", s)
	}
	stop, err := time.ParseDuration(unit["TimeoutStopSec"] + "s")
	if err != nil || stop < maxShutdownDelay+stopBudget {
		t.Errorf("TimeoutStopSec %q: want at least %v, the longest --shutdown-delay and the stop after it", unit["TimeoutStopSec"], maxShutdownDelay+stopBudget)
	}
	if unit["EnvironmentFile"] != "/etc/pophub/pophub.env" {
		t.Errorf("EnvironmentFile %q, want /etc/pophub/pophub.env, as ops/systemd/pophub.env says", unit["EnvironmentFile"])
	}

	// Every variable the settings file sets, or shows commented out, is
	// one serve or every command reads (its flags' help names them).
	var help strings.Builder
	cmd.SetOut(&help)
	cmd.SetErr(&help)
	if err := cmd.Help(); err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile("../../ops/systemd/pophub.env")
	if err != nil {
		t.Fatal(err)
	}
	set := regexp.MustCompile(`(?m)^#? ?(POPHUB_[A-Z0-9_]+)=`).FindAllStringSubmatch(string(env), -1)
	if len(set) < 4 {
		t.Fatalf("pophub.env sets %d variables, want the hub's settings", len(set))
	}
	for _, m := range set {
		if !strings.Contains(help.String(), "env "+m[1]) && !strings.Contains(help.String(), m[1]+")") {
			t.Errorf("pophub.env sets %s, which pophub serve does not read", m[1])
		}
	}
}

// unitSettings reads a systemd unit's Key=Value lines (the last of a key).
func unitSettings(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "[") {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
