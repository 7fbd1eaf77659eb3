package service

import (
	"runtime/debug"
	"testing"
)

func TestBuildInfo(t *testing.T) {
	toolchain := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201-e348680+dirty"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "e3486800aef9bb5a1576f1e3e6a7c43f45e59d45"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	devel := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		name, version, commit string
		read                  func() (*debug.BuildInfo, bool)
		want                  Build
	}{
		{"stamped", "v1.2.3", "abc", toolchain, Build{Version: "v1.2.3", Commit: "abc"}},
		{"stamped dirty", "v1.2.3-dirty", "abc-dirty", toolchain, Build{Version: "v1.2.3-dirty", Commit: "abc", Modified: true}},
		{"toolchain", "", "", toolchain, Build{Version: "v0.0.0-20261201-e348680+dirty", Commit: "e3486800aef9bb5a1576f1e3e6a7c43f45e59d45", Modified: true}},
		{"devel", "", "", devel, Build{Version: "devel", Commit: "unknown"}},
		{"no build info", "", "", none, Build{Version: "devel", Commit: "unknown"}},
	} {
		got := buildInfo(tc.version, tc.commit, tc.read)
		got.GoVersion = ""
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
