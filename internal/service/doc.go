// Package service is the daemon's plumbing around the engine: the control
// socket `qguard reload` and `qguard status` talk to, the service manager's
// notifications (sd_notify), readiness for /readyz, and the build
// information stamped at link time.
//
// # Control socket
//
// One JSON line a request ({"cmd":"reload"} or {"cmd":"status"}, bare words
// too), one JSON line an answer (Response). ListenControl replaces only a
// stale socket; ControlPath gives each network namespace its own default.
//
// # Build information
//
// `make build` and the Debian package stamp the version and commit:
//
//	-ldflags "-X github.com/qguard/qguard/internal/service.version=v1.2.3 \
//	    -X github.com/qguard/qguard/internal/service.commit=<sha>"
//
// Without them BuildInfo reports what the toolchain stamped.
package service
