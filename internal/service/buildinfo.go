package service

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version and commit are stamped at link time by `make build` and the
// package build:
//
//	go build -ldflags "-X github.com/qguard/qguard/internal/service.version=v1.2.3 \
//	    -X github.com/qguard/qguard/internal/service.commit=<sha>"
//
// A plain `go build` leaves them empty and BuildInfo falls back to what the
// toolchain stamped (module version, vcs.revision, vcs.modified).
var version, commit string

// Build describes the running binary.
type Build struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
}

// BuildInfo reads the version and commit stamped at link time, else what
// the toolchain stamped into the binary (runtime/debug.ReadBuildInfo).
func BuildInfo() Build {
	return buildInfo(version, commit, debug.ReadBuildInfo)
}

func buildInfo(version, commit string, read func() (*debug.BuildInfo, bool)) Build {
	b := Build{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := read(); ok {
		if b.Version == "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if commit == "" {
					b.Commit = s.Value
				}
			case "vcs.modified":
				if commit == "" {
					b.Modified = s.Value == "true"
				}
			}
		}
	}
	// A stamped commit says "dirty" the way git describe does.
	if c, ok := strings.CutSuffix(b.Commit, "-dirty"); ok {
		b.Commit, b.Modified = c, true
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}
