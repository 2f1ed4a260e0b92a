package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/schemas"
)

// TestDemoFlags: `pophub demo --persons 0` panicked, --persons -1 likewise,
// and --months 0 or -1 silently ran 24 months (the generator's default),
// where `pophub synth` refuses them. They are refused before anything
// starts.
func TestDemoFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--persons", "0"}, "--persons 0: want at least 1"},
		{[]string{"--persons", "-1"}, "--persons -1: want at least 1"},
		{[]string{"--months", "0"}, "--months 0: want at least 1"},
		{[]string{"--months", "-1"}, "--months -1: want at least 1"},
		{[]string{"--timeout", "0s"}, "--timeout 0s: want a positive duration"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			start := time.Now()
			out, err := execute(t, demoCommand(func() *slog.Logger { return testLogger(t) }), tc.args...)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q\n%s", err, tc.want, out)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s to refuse: it started the demo", took)
			}
		})
	}
}

// TestBadRecordsEmptyEvent: a population without a hukou registration in
// its window (--persons 1) left badRecords an empty event, whose subject
// it sliced: a panic. It now spoils a sample ID instead, and every record
// still has a key.
func TestBadRecordsEmptyEvent(t *testing.T) {
	for _, ev := range []schemas.Event{{}, {Subject: "12345"}} {
		msgs := badRecords(ev)
		if len(msgs) != 8 {
			t.Fatalf("badRecords(%q): %d records, want 8", ev.Subject, len(msgs))
		}
		for i, m := range msgs {
			if len(m.Key) != 18 {
				t.Errorf("badRecords(%q) record %d: key %q, want 18 characters", ev.Subject, i, m.Key)
			}
		}
	}
}

// TestWaitSettled: the demo waited for the subscriber's task list to stay
// still only once it held a task, so a population with no migration or
// death (--persons 1) waited until --timeout and failed. A list that stays
// empty now ends the wait too, after a longer quiet than a growing one.
func TestWaitSettled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counting := func(seq ...int) (func(context.Context) (int, error), *int) {
		polls := 0
		return func(context.Context) (int, error) {
			polls++
			return seq[min(polls, len(seq))-1], nil
		}, &polls
	}
	tests := []struct {
		name      string
		seq       []int
		wantPolls int
	}{
		{"never any task", []int{0}, 31},
		{"tasks that stop growing", []int{0, 0, 3, 5}, 4 + 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			count, polls := counting(tc.seq...)
			if err := waitSettled(ctx, make(chan error), time.Millisecond, count); err != nil {
				t.Fatalf("waitSettled: %v", err)
			}
			if *polls != tc.wantPolls {
				t.Errorf("%d polls, want %d", *polls, tc.wantPolls)
			}
		})
	}

	stopped := make(chan error, 1)
	stopped <- errors.New("boom")
	count, _ := counting(1, 2, 3, 4)
	if err := waitSettled(ctx, stopped, time.Hour, count); err == nil || !strings.Contains(err.Error(), "subscriber stopped: boom") {
		t.Errorf("subscriber stopped: error %v", err)
	}
	readErr := errors.New("reading tasks: gone")
	if err := waitSettled(ctx, make(chan error), time.Millisecond, func(context.Context) (int, error) { return 0, readErr }); !errors.Is(err, readErr) {
		t.Errorf("count failing: error %v, want %v", err, readErr)
	}
	canceled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := waitSettled(canceled, make(chan error), time.Hour, count); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: error %v", err)
	}
}

// TestEligibilityErrorHidesID: a failed request printed the *url.Error's
// full URL, the citizen ID in its path included, where the README
// promises IDs never appear in error messages. The error names the hub's
// base URL (without user info) and the cause.
func TestEligibilityErrorHidesID(t *testing.T) {
	const id = "230102199001011230"
	for _, hub := range []string{"http://127.0.0.1:1", "http://ops:s3cret@127.0.0.1:1/"} {
		out, err := execute(t, eligibilityCommand(), id, "--policy", "heilongjiang/daqing", "--hub", hub)
		if err == nil {
			t.Fatalf("--hub %s: no error\n%s", hub, out)
		}
		msg := err.Error() + out
		for _, leak := range []string{id, "230102", "/v1/eligibility", "s3cret", "policy="} {
			if strings.Contains(msg, leak) {
				t.Errorf("--hub %s: the error shows %q: %s", hub, leak, msg)
			}
		}
		if !strings.HasPrefix(err.Error(), "asking the hub at http://127.0.0.1:1: ") || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("--hub %s: error %q, want the hub's base URL and the cause", hub, err)
		}
	}
}

// TestBenchFlags: `pophub bench --only nosuch` measured nothing and exited
// 0, and --persons 0 or --latency-rate 0 ran and hung. They are refused
// before anything is generated; a run without a baseline prints no ratio
// to it (it printed "+Inf × baseline").
func TestBenchFlags(t *testing.T) {
	ok := benchOptions{Persons: 10, Months: 1, Rate: 1, LatencyFor: time.Second}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for _, part := range benchParts {
		o := ok
		o.Only = part
		if err := o.validate(); err != nil {
			t.Errorf("--only %s refused: %v", part, err)
		}
	}
	tests := []struct {
		change func(*benchOptions)
		want   string
	}{
		{func(o *benchOptions) { o.Only = "nosuch" }, `--only "nosuch": want one of baseline, postgres, memdb, latency`},
		{func(o *benchOptions) { o.Persons = 0 }, "--persons 0: want at least 1"},
		{func(o *benchOptions) { o.Months = 0 }, "--months 0: want at least 1"},
		{func(o *benchOptions) { o.Rate = 0 }, "--latency-rate 0: want at least 1 event a second"},
		{func(o *benchOptions) { o.LatencyFor = 0 }, "--latency-duration 0s: want a positive duration"},
		{func(o *benchOptions) { o.NATSSync = -time.Second }, "--nats-sync -1s: want 0 (every write) or at least 1ms"},
		{func(o *benchOptions) { o.NATSSync = time.Nanosecond }, "--nats-sync 1ns: want 0 (every write) or at least 1ms"},
	}
	for _, tc := range tests {
		o := ok
		tc.change(&o)
		if err := o.validate(); err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	// Through the command: refused before the first line of output.
	for _, args := range [][]string{{"--only", "nosuch"}, {"--persons", "0"}, {"--latency-rate", "0"}} {
		out, err := execute(t, benchCommand(func() *slog.Logger { return testLogger(t) }), args...)
		if err == nil || out != "" {
			t.Errorf("bench %s: error %v, output %q", strings.Join(args, " "), err, out)
		}
	}
	if got := ofBaseline(20000, 0); got != "" {
		t.Errorf("ratio without a baseline: %q", got)
	}
	if got := ofBaseline(20000, 40000); got != "  = 0.50 × baseline" {
		t.Errorf("ratio to a baseline: %q", got)
	}
}

// TestPublishInterrupted: an interrupted `pophub publish` printed only
// "sending 8192 events: context canceled", dropping the report of what
// had been read and sent. It prints the counts and says what to do.
// Interrupted before it starts, it reads nothing (it used to read the
// whole file first); TestPublishStopsOnSIGTERMReadingAPipe interrupts
// one that read lines.
func TestPublishInterrupted(t *testing.T) {
	msgs := scenario(t)
	var lines []string
	for _, m := range msgs {
		if m.Topic == msgs[0].Topic {
			lines = append(lines, string(m.Value))
		}
	}
	lines = append(lines, "not JSON")
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Ctrl-C before the first send
	cmd := publishCommand(func() *slog.Logger { return testLogger(t) })
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs([]string{"--source", string(schemas.SourceOfTopic(msgs[0].Topic)), "--file", file, "--kafka", "127.0.0.1:1"})
	err := cmd.ExecuteContext(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled\n%s", err, out.String())
	}
	if !strings.HasSuffix(err.Error(), "publish the file again: the hub applies each event once") {
		t.Errorf("error %q does not say to publish again", err)
	}
	if want := fmt.Sprintf("%s: 0 lines read, 0 published, 0 bad\n", file); !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

// TestNoArgsNamesFlag: a stray argument to a command that takes its input
// from a flag got `unknown command "6:0" for "pophub dlq replay"`, which
// reads as a mistyped subcommand. The error names the flag to use.
func TestNoArgsNamesFlag(t *testing.T) {
	tests := []struct {
		cmd  func() *cobra.Command
		args []string
		want string
	}{
		{dlqCommand, []string{"replay", "6:0"}, "pophub dlq replay takes no arguments: use --offset PARTITION:OFFSET"},
		{dlqCommand, []string{"list", "health"}, "pophub dlq list takes no arguments: use --source S or --reason R"},
		{policyCommand, []string{"explain", "ops/policy.example.yaml"}, "pophub policy explain takes no arguments: use --policy FILE"},
		{policyCommand, []string{"nats-config", "ops/policy.example.yaml"}, "pophub policy nats-config takes no arguments: use --policy FILE"},
		{policyCommand, []string{"kafka-acls", "ops/policy.example.yaml"}, "pophub policy kafka-acls takes no arguments: use --policy FILE"},
		{policyCommand, []string{"hash-token", "s3cr3t"}, "pophub policy hash-token takes no arguments: use standard input"},
		{regionsCommand, []string{"import", "nbs.csv"}, "pophub regions import takes no arguments: use --file NBS.csv"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			root := &cobra.Command{Use: "pophub"}
			root.AddCommand(tc.cmd())
			out, err := execute(t, root, append(strings.Fields(tc.cmd().Use)[:1], tc.args...)...)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want %q\n%s", err, tc.want, out)
			}
			if err != nil && strings.Contains(err.Error(), tc.args[1]) {
				t.Errorf("error %q repeats the argument", err)
			}
		})
	}
}

// TestPoliciesCommandDirMissing: pophub policies with a --dir that is no
// directory names it, rather than os.DirFS's "stat .".
func TestPoliciesCommandDirMissing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{
		filepath.Join(t.TempDir(), "none"): "no such directory",
		file:                               "not a directory",
	} {
		root := &cobra.Command{Use: "pophub"}
		root.AddCommand(policiesCommand())
		_, err := execute(t, root, "policies", "list", "--dir", dir)
		if err == nil || !strings.Contains(err.Error(), "--dir "+dir+": "+want) {
			t.Errorf("--dir %s: %v, want %q", dir, err, want)
		}
	}
}

// TestImportMappingMissing: a newcomer copying the README's
// `--mapping housing.yaml` without the file learns that the example
// ships in the binary and where the examples to adapt are, not only that
// the file is missing.
func TestImportMappingMissing(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "租赁备案.csv")
	if err := os.WriteFile(file, []byte("a,b\n1,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := execute(t, importCommand(func() *slog.Logger { return testLogger(t) }),
		"--source", "housing", "--file", file, "--mapping", filepath.Join(dir, "housing.yaml"), "--dry-run")
	for _, want := range []string{"housing.yaml", "leave out --mapping", "--source housing", "adapters/importer/mappings/"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

// TestDevPortTaken: a second `pophub dev` on one machine finds the first
// one's ports taken; the error says what to do for each of the three.
func TestDevPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, flag := range []string{"--kafka", "--nats", "--http"} {
		t.Run(flag, func(t *testing.T) {
			cfg := Config{Embedded: true, DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Partitions: 1}
			switch flag {
			case "--kafka":
				cfg.KafkaAddr = taken.Addr().String()
			case "--nats":
				cfg.NATSAddr = taken.Addr().String()
			case "--http":
				cfg.HTTPAddr = taken.Addr().String()
			}
			m := &Main{Config: cfg, Logger: testLogger(t)}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := m.Start(ctx)
			if err == nil {
				m.Close()
				t.Fatal("started on a taken port")
			}
			for _, want := range []string{taken.Addr().String(), "another pophub", "give " + flag + " another address"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}
