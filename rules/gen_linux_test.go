package rules

import (
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestIntegrationRulesetGen: the ruleset generation stands still while
// nothing is committed and moves with every change to any table, which is
// what lets the guard skip a periodic verify.
func TestIntegrationRulesetGen(t *testing.T) {
	ns, fd := testNS(t)
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g0, err := rulesetGen(c)
	if err != nil {
		t.Fatal(err)
	}
	if g1, err := rulesetGen(c); err != nil || g1 != g0 {
		t.Fatalf("generation %d, then %d (%v) with no change", g0, g1, err)
	}
	nft(t, ns, "add", "table", "inet", "foreign")
	g2, err := rulesetGen(c)
	if err != nil || g2 == g0 {
		t.Fatalf("generation %d, then %d (%v) after adding a table", g0, g2, err)
	}
	m := applied(t, fwConfig(fd, QueueAuto))
	g3, err := rulesetGen(c)
	if err != nil || g3 == g2 {
		t.Fatalf("generation %d, then %d (%v) after Apply", g2, g3, err)
	}
	if _, err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	if g4, err := rulesetGen(c); err != nil || g4 != g3 {
		t.Fatalf("generation %d, then %d (%v) after a Verify", g3, g4, err)
	}
}
