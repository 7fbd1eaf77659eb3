package rules

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
	"github.com/vishvananda/netns"
)

// nsPrefix names this process's test namespaces (TestMain's leftover check).
var nsPrefix = testutil.ProcessPrefix("qgnr")

// TestMain fails the run when a test left one of its namespaces behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if testutil.IsRoot() {
		left, err := topo.Leftovers(nsPrefix)
		if err != nil || len(left) > 0 {
			fmt.Fprintf(os.Stderr, "namespaces left behind: %v %v\n", left, err)
			code = 1
		}
	}
	os.Exit(code)
}

// testNS creates a namespace, removed at cleanup, and returns it with an
// open fd for nftables.WithNetNSFd.
func testNS(t testing.TB) (topo.NS, int) {
	t.Helper()
	testutil.NeedRoot(t, "CAP_NET_ADMIN: network namespaces, nftables rules")
	ns := testutil.NewNetNS(t, nsPrefix)
	return ns.NS, ns.Fd()
}

func nsFd(t testing.TB, ns topo.NS) int {
	t.Helper()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return int(h)
}

// nft runs the nft binary (test-only) inside ns.
func nft(t testing.TB, ns topo.NS, args ...string) string {
	t.Helper()
	out, err := ns.Output(append([]string{"nft"}, args...)...)
	if err != nil {
		t.Fatalf("nft %s: %v", strings.Join(args, " "), err)
	}
	return out
}
