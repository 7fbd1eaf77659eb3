package rules

import (
	"strings"
	"testing"
)

// TestIntegrationConntrackLeftOff: a forward-only table without offload has
// no ct expression, so connection tracking stays off in the namespace (every
// ct expression turns it on for all of the namespace's traffic); offload
// turns it on, which shows the check can fail.
func TestIntegrationConntrackLeftOff(t *testing.T) {
	for _, offload := range []bool{false, true} {
		ns, fd := testNS(t)
		if _, err := ns.Output("ip", "link", "set", "lo", "up"); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.NetNS, cfg.Offload = fd, offload
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
		tracked := strings.Contains(out, "icmp")
		if tracked != offload {
			t.Errorf("offload %t: conntrack tracked the ping: %t, want %t\n%s\n%s", offload, tracked, offload, out,
				nft(t, ns, "list", "ruleset"))
		}
	}
}
