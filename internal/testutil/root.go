package testutil

import (
	"os"
	"testing"
)

// IsRoot reports whether the process runs as root, for a TestMain that
// decides what to check after the tests.
func IsRoot() bool { return os.Geteuid() == 0 }

// NeedRoot skips tb unless the process runs as root; why names what the
// test needs it for ("namespaces, nftables, NFQUEUE"), so the skip says
// what was not tested.
func NeedRoot(tb testing.TB, why string) {
	tb.Helper()
	if !IsRoot() {
		tb.Skip("needs root (" + why + ")")
	}
}
