// Package buildinfo tells which build of pophub is running, from what the
// Go toolchain recorded in the binary: its module version, the source
// revision and its time, whether the work tree had changes, and the Go
// version. An operator needs it to apply the README's upgrade rules,
// which name releases by date, and to tell the instances of a rolling
// upgrade apart; a site without a Go toolchain cannot run `go version -m`.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// Info describes a build.
type Info struct {
	// Version is the module version ("v1.2.3"), or "devel" for a build
	// from a source tree rather than a tagged module.
	Version string
	// Revision is the source control revision, "" when the build did not
	// record one (go build -buildvcs=false, or no repository).
	Revision string
	// Time is when Revision was committed (zero when not recorded), and
	// Modified whether the tree had changes Revision does not hold.
	Time     time.Time
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "devel", GoVersion: "unknown"}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if info.Version == "" || info.Version == "(devel)" {
		info.Version = "devel"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// ShortRevision is the first 12 characters of the revision, with
// "+changes" when the tree had uncommitted changes; "unknown" when none
// was recorded.
func (i Info) ShortRevision() string {
	if i.Revision == "" {
		return "unknown"
	}
	r := i.Revision[:min(12, len(i.Revision))]
	if i.Modified {
		r += "+changes"
	}
	return r
}

// String is one line for people: "devel, revision 45db74a7c1e2 of
// 2026-12-07 15:50 UTC, go1.26.8".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	fmt.Fprintf(&b, ", revision %s", i.ShortRevision())
	if !i.Time.IsZero() {
		fmt.Fprintf(&b, " of %s", i.Time.UTC().Format("2006-01-02 15:04 UTC"))
	}
	fmt.Fprintf(&b, ", %s", i.GoVersion)
	return b.String()
}
