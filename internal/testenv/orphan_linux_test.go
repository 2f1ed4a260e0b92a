package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestChildEndsWithAKilledTest: a process started with EndWithTest does
// not outlive the test process that started it, even one killed with
// SIGKILL, which runs no cleanup.
func TestChildEndsWithAKilledTest(t *testing.T) {
	if os.Getenv("POPHUB_TESTENV_PARENT") != "" {
		// The test process standing in for a killed test: it starts a
		// long sleep, says its pid and waits to be killed.
		sleep := exec.Command("sleep", "600")
		EndWithTest(sleep)
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString(strconv.Itoa(sleep.Process.Pid) + "\n")
		time.Sleep(10 * time.Minute)
		return
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestChildEndsWithAKilledTest$")
	parent.Env = append(os.Environ(), "POPHUB_TESTENV_PARENT=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parent.Process.Kill(); parent.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the child's pid: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child's pid %q: %v", line, err)
	}
	// Not reaped by its parent, the child stays a zombie until init
	// reaps it: gone or a zombie both mean it no longer runs.
	running := func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat")
		if err != nil {
			return false
		}
		f := strings.Fields(string(b))
		return len(f) > 2 && f[2] != "Z"
	}
	if !running() {
		t.Fatalf("the child %d is not running before its parent is killed", child)
	}
	parent.Process.Signal(syscall.SIGKILL)
	parent.Wait()
	for deadline := time.Now().Add(10 * time.Second); running(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("the child %d still runs 10 s after its test process was killed", child)
		}
	}
}
