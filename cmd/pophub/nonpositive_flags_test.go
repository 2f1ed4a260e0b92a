package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestDevNegativeNATSSync: `pophub dev --nats-sync -1s` created keys and a
// store, started the embedded servers and then died with a Go panic in
// nats-server ("invalid argument to Int64N", exit status 2). It is refused
// before anything is created, naming the flag. The command runs in a child
// process (this test binary again): a panic in a nats-server goroutine
// would take the test binary down.
func TestDevNegativeNATSSync(t *testing.T) {
	if os.Getenv("POPHUB_TEST_CHILD") == "dev-nats-sync" {
		root := rootCommand()
		root.SetArgs([]string{"dev", "--data", os.Getenv("POPHUB_TEST_DATA"), "--kafka", "127.0.0.1:0", "--nats", "127.0.0.1:0",
			"--http", "127.0.0.1:0", "--nats-sync", os.Getenv("POPHUB_TEST_NATS_SYNC")})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := root.ExecuteContext(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "pophub:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// nats-server panics on any interval under 2 ns, not only a negative
	// one; under a millisecond is refused.
	for _, sync := range []string{"-1s", "1ns", "999µs"} {
		t.Run(sync, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			cmd := exec.Command(os.Args[0], "-test.run=^TestDevNegativeNATSSync$")
			cmd.Env = append(os.Environ(), "POPHUB_TEST_CHILD=dev-nats-sync", "POPHUB_TEST_DATA="+data, "POPHUB_TEST_NATS_SYNC="+sync)
			out, err := cmd.CombinedOutput()
			if i := strings.Index(string(out), "panic:"); i >= 0 {
				t.Fatalf("pophub dev --nats-sync %s panicked (exit status %d): %s", sync, cmd.ProcessState.ExitCode(), strings.SplitN(string(out[i:]), "\n", 2)[0])
			}
			if want := "pophub: --nats-sync " + sync + ": want 0 (every write) or at least 1ms"; err == nil || !strings.Contains(string(out), want) {
				t.Fatalf("exit status %d, want 1 with %q:\n%s", cmd.ProcessState.ExitCode(), want, out)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("the refused start created %s", data)
			}
		})
	}
}

// TestBenchSoakFlags: `pophub bench soak --rate -5` panicked ("makechan:
// size out of range") and `--every 0` likewise ("non-positive interval
// for NewTicker"), both after starting the broker, NATS and a hub
// process. Numbers the soak cannot run with are refused before anything
// starts.
func TestBenchSoakFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "-5"}, "--rate -5: want at least 1 event a second"},
		{[]string{"--rate", "0"}, "--rate 0: want at least 1 event a second"},
		{[]string{"--persons", "0"}, "--persons 0: want at least 1"},
		{[]string{"--duration", "0s"}, "--duration 0s: want a positive duration"},
		{[]string{"--every", "0s"}, "--every 0s: want a positive interval"},
		{[]string{"--every", "-1m"}, "--every -1m0s: want a positive interval"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			start := time.Now()
			out, err := execute(t, benchCommand(func() *slog.Logger { return testLogger(t) }), append([]string{"soak", "--memdb"}, tc.args...)...)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q\n%s", err, tc.want, out)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s to refuse: the soak started", took)
			}
		})
	}
}

// TestCountFlagsRefuseNonPositive: counts of 0 were quietly replaced by
// defaults: `serve --partitions 0` created topics of 8 partitions (which
// can never be removed) while -3 was refused, `keys rotate --batch 0` or
// -3 re-sealed 1000 rows a transaction, `si-subscriber --concurrency 0`
// or -2 ran with the SDK's default. Each is refused naming the flag,
// before anything is contacted (the stores below are closed ports: a
// value passed on would fail on the connection instead).
func TestCountFlagsRefuseNonPositive(t *testing.T) {
	newLogger := func() *slog.Logger { return testLogger(t) }
	closedPG := "postgres://postgres@127.0.0.1:1/none"
	keyFile := filepath.Join(t.TempDir(), "keys")
	if out, err := execute(t, keysCommand(), "init", keyFile); err != nil {
		t.Fatalf("keys init: %v\n%s", err, out)
	}
	serve := func() *cobra.Command { return serveCommand(newLogger) }
	dev := func() *cobra.Command { return devCommand(newLogger) }
	si := func() *cobra.Command { return siSubscriberCommand(newLogger) }
	serveArgs := []string{"--postgres", closedPG, "--kafka", "127.0.0.1:1", "--nats", "nats://127.0.0.1:1", "--keys", "none"}
	tests := []struct {
		name string
		cmd  func() *cobra.Command
		args []string
		want string
	}{
		{"serve --partitions 0", serve, append(slices.Clone(serveArgs), "--partitions", "0"),
			`invalid argument "0" for "--partitions" flag: want at least 1`},
		{"serve --partitions -3", serve, append(slices.Clone(serveArgs), "--partitions", "-3"),
			`invalid argument "-3" for "--partitions" flag: want at least 1`},
		// A --policies directory that is not there stops a dev that
		// took the count before it starts anything.
		{"dev --partitions 0", dev, []string{"--data", filepath.Join(t.TempDir(), "data"), "--kafka", "127.0.0.1:0", "--nats", "127.0.0.1:0",
			"--http", "127.0.0.1:0", "--policies", filepath.Join(t.TempDir(), "none"), "--partitions", "0"},
			`invalid argument "0" for "--partitions" flag: want at least 1`},
		{"keys rotate --batch 0", keysCommand, []string{"rotate", "--postgres", closedPG, "--keys", keyFile, "--batch", "0"},
			`invalid argument "0" for "--batch" flag: want at least 1`},
		{"keys rotate --batch -3", keysCommand, []string{"rotate", "--postgres", closedPG, "--keys", keyFile, "--batch", "-3"},
			`invalid argument "-3" for "--batch" flag: want at least 1`},
		{"si-subscriber --concurrency 0", si, []string{"--region", "2301", "--postgres", closedPG, "--concurrency", "0"},
			`invalid argument "0" for "--concurrency" flag: want at least 1`},
		{"si-subscriber --concurrency -2", si, []string{"--region", "2301", "--postgres", closedPG, "--concurrency", "-2"},
			`invalid argument "-2" for "--concurrency" flag: want at least 1`},
		{"si-subscriber --concurrency x", si, []string{"--region", "2301", "--postgres", closedPG, "--concurrency", "x"},
			`invalid argument "x" for "--concurrency" flag: want a whole number`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(t, tc.cmd(), tc.args...)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q\n%s", err, tc.want, out)
			}
		})
	}
}

// TestCountFlagsDefaults: the count flags keep their defaults, shown in
// the help as before.
func TestCountFlagsDefaults(t *testing.T) {
	newLogger := func() *slog.Logger { return testLogger(t) }
	for _, tc := range []struct {
		cmd        *cobra.Command
		flag, want string
	}{
		{serveCommand(newLogger), "partitions", "8"},
		{devCommand(newLogger), "partitions", "8"},
		{keysRotateCommand(), "batch", "1000"},
		{siSubscriberCommand(newLogger), "concurrency", "8"},
	} {
		f := tc.cmd.Flags().Lookup(tc.flag)
		if f == nil || f.DefValue != tc.want || f.Value.Type() != "int" {
			t.Errorf("%s --%s: %+v, want an int defaulting to %s", tc.cmd.Name(), tc.flag, f, tc.want)
		}
	}
}
