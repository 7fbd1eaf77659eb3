package testutil

import (
	"fmt"
	"os"
	"testing"

	"github.com/qguard/qguard/internal/topo"
)

// NetNS is a throwaway network namespace with loopback up, in the manner
// of cilium/ebpf's testutils.NewNetNS. Do (topo.NS.Do) runs a function
// with the calling goroutine's thread inside it and moves the thread back
// after, or leaves it locked so that the runtime discards it: no thread
// goes back to the scheduler still inside a test namespace.
type NetNS struct {
	topo.NS
	f *os.File
}

// NewNetNS creates a namespace named prefix-<random> (TestMain leftover
// checks look for the prefix) and removes it when tb ends. It skips tb
// without root.
func NewNetNS(tb testing.TB, prefix string) *NetNS {
	tb.Helper()
	NeedRoot(tb, "to create a network namespace")
	ns, err := topo.New(prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ns.Remove() })
	f, err := os.Open(ns.Path())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return &NetNS{NS: ns, f: f}
}

// Fd is a descriptor of the namespace, open until tb ends: for setns(2),
// nftables.WithNetNSFd or rules.Config.NetNS.
func (n *NetNS) Fd() int { return int(n.f.Fd()) }

// NewTopology is topo.NewTopology for a test: it skips tb without root and
// closes the topology (its namespaces and links) when tb ends.
func NewTopology(tb testing.TB, o *topo.Options) *topo.Topology {
	tb.Helper()
	NeedRoot(tb, "to create network namespaces")
	top, err := topo.NewTopology(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = top.Close() })
	return top
}

// ProcessPrefix makes prefix this process's own, for namespaces a leftover
// check (topo.Leftovers) looks for: another test process on the machine
// (CI beside a developer's run, a second package) makes namespaces with
// the same fixed prefix, and those are not this process's leftovers. The
// pid ends in "p" so that no other pid's prefix is a prefix of this one.
func ProcessPrefix(prefix string) string { return fmt.Sprintf("%s%dp", prefix, os.Getpid()) }
