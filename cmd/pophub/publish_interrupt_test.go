package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestPublishStopsOnSIGTERMReadingAPipe: `pophub publish --file <fifo>`,
// fed by a program that went quiet (or had not opened the pipe yet),
// ignored SIGTERM and Ctrl-C until that program closed the pipe: reading
// the file did not heed the interrupt. It now stops at once and prints
// its summary, the lines it read counted as read and not published, and
// says to publish again.
func TestPublishStopsOnSIGTERMReadingAPipe(t *testing.T) {
	bin := buildBinary(t)
	addr := testenv.Kafka(t, 2)
	msgs := scenario(t)
	var lines []string
	for _, m := range msgs {
		if m.Topic == msgs[0].Topic && len(lines) < 2 {
			lines = append(lines, string(m.Value)+"\n")
		}
	}
	source := string(schemas.SourceOfTopic(msgs[0].Topic))
	tests := []struct {
		name   string
		writer bool // a program opened the pipe and wrote two lines, then went quiet
		want   *regexp.Regexp
	}{
		{"quiet writer", true, regexp.MustCompile(`events\.fifo: [0-2] lines read, 0 published, 0 bad\n`)},
		{"no writer yet", false, regexp.MustCompile(`events\.fifo: 0 lines read, 0 published, 0 bad\n`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "events.fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatalf("making a named pipe: %v", err)
			}
			cmd := exec.Command(bin, "publish", "--source", source, "--file", fifo, "--kafka", addr, "--log-level", "error")
			testenv.EndWithTest(cmd)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			if tt.writer {
				// Opening for writing waits until pophub opened the pipe.
				w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				if _, err := w.WriteString(strings.Join(lines, "")); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(300 * time.Millisecond) // pophub waits for the pipe
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
				t.Fatalf("pophub publish still running 10 s after SIGTERM\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			if !tt.want.Match(stdout.Bytes()) {
				t.Errorf("stdout lacks its summary (%s):\n%s", tt.want, &stdout)
			}
			if msg := stderr.String(); !strings.Contains(msg, "context canceled") || !strings.Contains(msg, "publish the file again") {
				t.Errorf("stderr does not say it was interrupted and to publish again:\n%s", msg)
			}
		})
	}
}
