package main

import (
	"fmt"

	"github.com/pophub/pophub/internal/buildinfo"
	"github.com/spf13/cobra"
)

// versionCommand prints the running build: what the README's upgrade
// rules (which name releases by date) and a rolling upgrade need to know,
// on a host without a Go toolchain to run `go version -m`.
func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the build: version, source revision and its date, Go version",
		Long: `Print the build of this binary: the module version ("devel" for a build from a
source tree), the source revision it was built from (with "+changes" when the
tree had uncommitted changes) and that revision's date, and the Go version.
The same is in the "pophub started" log line, in pophub_build_info on /metrics
and in the service.version of exported traces. pophub --version prints it too.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "pophub %s\n", buildinfo.Read())
			return err
		},
	}
}
