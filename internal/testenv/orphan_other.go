//go:build !linux

package testenv

import "os/exec"

// EndWithTest marks the process cmd starts as a test's (ChildMarker);
// only Linux lets a process ask to die with its parent.
func EndWithTest(cmd *exec.Cmd) { markChild(cmd) }
