package engine

import (
	"runtime"
	"runtime/debug"
)

// version may be set at link time:
//
//	go build -ldflags "-X github.com/qguard/qguard/internal/engine.version=v1.2.3"
var version = ""

// Build describes the running binary.
type Build struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
}

// BuildInfo reads the version, the VCS commit and the Go version that the
// toolchain stamped into the binary (runtime/debug.ReadBuildInfo).
func BuildInfo() Build {
	b := Build{Version: version, Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if b.Version == "" {
			b.Version = "devel"
		}
		return b
	}
	if b.Version == "" {
		b.Version = bi.Main.Version
	}
	if b.Version == "" || b.Version == "(devel)" {
		b.Version = "devel"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}
