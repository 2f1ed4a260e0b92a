package testenv

import (
	"os/exec"
	"syscall"
)

// EndWithTest makes the process cmd starts die with the test process
// that started it. A test process that times out or is killed runs no
// cleanup, and the processes it started would go on taking the machine's
// CPU from every later test run. Call it before cmd.Start.
func EndWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
