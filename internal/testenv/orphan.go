package testenv

import (
	"os"
	"os/exec"
)

// ChildMarker is in the environment of every process a test starts with
// EndWithTest: .ci/run ends such a process once its test process is gone,
// and nothing else.
const ChildMarker = "POPHUB_TEST_CHILD=1"

func markChild(cmd *exec.Cmd) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, ChildMarker)
}
