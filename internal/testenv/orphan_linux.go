package testenv

import (
	"os/exec"
	"syscall"
)

// EndWithTest makes the process cmd starts die with the test process
// that started it. A test process that times out or is killed runs no
// cleanup, and the processes it started would go on taking the machine's
// CPU from every later test run. It also marks the process as a test's
// (ChildMarker in its environment), by which .ci/run tells the leftovers
// of a run killed before this took effect. Call it after setting
// cmd.Env, before cmd.Start.
func EndWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	markChild(cmd)
}
