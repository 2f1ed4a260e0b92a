package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	tests := []struct {
		name     string
		bi       debug.BuildInfo
		want     string
		revision string
	}{
		{"a build from a clean checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "45db74a7c1e2f00d9a4e2b1b0c3d4e5f60718293"}, {Key: "vcs.time", Value: "2026-12-07T15:50:12Z"}, {Key: "vcs.modified", Value: "false"}}},
			"devel, revision 45db74a7c1e2 of 2026-12-07 15:50 UTC, go1.26.8", "45db74a7c1e2f00d9a4e2b1b0c3d4e5f60718293"},
		{"a tree with changes", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "45db74a7c1e2f00d"}, {Key: "vcs.time", Value: "2026-12-07T15:50:12Z"}, {Key: "vcs.modified", Value: "true"}}},
			"devel, revision 45db74a7c1e2+changes of 2026-12-07 15:50 UTC, go1.26.8", "45db74a7c1e2f00d"},
		{"a tagged module, no VCS", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}},
			"v1.4.0, revision unknown, go1.26.8", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := fromBuildInfo(&tc.bi)
			if got := info.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if info.Revision != tc.revision {
				t.Errorf("Revision = %q, want %q", info.Revision, tc.revision)
			}
		})
	}
}

// TestReadKnowsItsToolchain: the test binary's own build information is
// there to read.
func TestReadKnowsItsToolchain(t *testing.T) {
	info := Read()
	if info.GoVersion == "" || info.GoVersion == "unknown" || info.Version == "" {
		t.Errorf("Read() = %+v, want the toolchain and a version", info)
	}
}
