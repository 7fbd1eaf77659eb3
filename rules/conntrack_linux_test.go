package rules

import (
	"strings"
	"testing"
)

// TestIntegrationConntrackLeftOff: a forward-only table without offload has
// no ct expression, so connection tracking stays off in the namespace (every
// ct expression turns it on for all of the namespace's traffic); offload or
// Conntrack turn it on, which also shows the check can fail.
func TestIntegrationConntrackLeftOff(t *testing.T) {
	for _, c := range []struct{ offload, conntrack bool }{{false, false}, {true, false}, {false, true}} {
		ns, fd := testNS(t)
		if _, err := ns.Output("ip", "link", "set", "lo", "up"); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.NetNS, cfg.Offload, cfg.Conntrack = fd, c.offload, c.conntrack
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Apply(); err != nil {
			t.Fatal(err)
		}
		if out, err := ns.Output("ping", "-c", "1", "-W", "1", "127.0.0.1"); err != nil {
			t.Fatalf("ping: %v\n%s", err, out)
		}
		out, err := ns.Output("cat", "/proc/net/nf_conntrack")
		if err != nil {
			t.Fatal(err)
		}
		want := c.offload || c.conntrack
		if tracked := strings.Contains(out, "icmp"); tracked != want {
			t.Errorf("%+v: conntrack tracked the ping: %t, want %t\n%s\n%s", c, tracked, want, out,
				nft(t, ns, "list", "ruleset"))
		}
	}
}
