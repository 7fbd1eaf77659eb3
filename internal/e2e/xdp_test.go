package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
)

// TestIntegrationRulesShowXDP: `qguard rules show` reports the XDP program a
// running daemon attached (the kernel's view and the daemon's), and nothing
// once the daemon has stopped.
func TestIntegrationRulesShowXDP(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	top := newTopo(t, "qgex")
	warmUp(t, top)
	d := startDaemon(t, top, `
xdp:
  interfaces: [fw-c]
policy:
  default: accept
`)
	show := func() string {
		t.Helper()
		out, err := top.Firewall.Command(context.Background(), qguardBin, "rules", "show", "--control", d.control).CombinedOutput()
		if err != nil {
			t.Fatalf("rules show: %v\n%s", err, out)
		}
		return string(out)
	}
	out := show()
	for _, want := range []string{"fw-c: program id ", "qguard daemon: attached on [fw-c ("} {
		if !strings.Contains(out, want) {
			t.Fatalf("rules show lacks %q:\n%s", want, out)
		}
	}
	d.signal(syscall.SIGTERM)
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	out = show()
	for _, want := range []string{"no XDP program attached in this namespace", "qguard daemon: not reachable"} {
		if !strings.Contains(out, want) {
			t.Fatalf("after stop, rules show lacks %q:\n%s", want, out)
		}
	}
}
