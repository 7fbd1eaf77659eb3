package rules

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestIntegrationKernelOptions installs rules with the options log and
// block_source in the kernel and sends traffic through them: the blocking
// rule drops its datagram and puts the source in block4, after which the
// same source cannot reach a port the policy accepts; another source
// still can. The log rule is a limit and an nflog log ahead of the accept.
func TestIntegrationKernelOptions(t *testing.T) {
	other := netip.MustParseAddr("198.18.1.7")
	tp, fd := newTopo(t, other)
	srv := netip.MustParseAddr("198.18.2.2")
	open := udpServer(t, tp.Server, srv, 9100)
	udpServer(t, tp.Server, srv, 9101)
	cfg := &Config{Table: "kopts", Mode: KernelFirst, NetNS: fd, Bypass: true,
		Steer: Steer{Protocols: []string{"udp"}},
		Policy: &Policy{Default: ActionAccept, LogRate: 5, Rules: []PolicyRule{
			{Name: "logged", Protos: []uint8{17}, DPorts: []PortRange{{Lo: 9100, Hi: 9100}}, Action: ActionAccept, Log: true},
			{Name: "blocker", Protos: []uint8{17}, DPorts: []PortRange{{Lo: 9101, Hi: 9101}}, Action: ActionDrop, BlockSource: 30 * time.Second},
		}}}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Capabilities().Log || !m.Capabilities().Limit {
		t.Fatalf("this kernel has nft log and limit: %+v", m.Capabilities())
	}
	if err := m.Apply(); err != nil {
		t.Fatal(err)
	}
	defer m.Remove()
	show, err := ShowNS(fd, "kopts")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`limit rate 5/second burst 5 packets log prefix "qguard accept logged" group 7167 snaplen 128 comment "qguard: rule logged"`,
		`th dport 9101 add @block4 { ip saddr timeout 30s } counter packets 0 bytes 0 drop comment "qguard: rule blocker"`,
		"#   kernel  logged\n", "#   kernel  blocker\n",
	} {
		if !strings.Contains(show, want) {
			t.Errorf("rules show lacks %q:\n%s", want, show)
		}
	}
	exchange := func(src netip.Addr, port uint16) error {
		c, err := dialFrom(tp.Client, "udp", src, srv, port)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return udpExchange(c, 300*time.Millisecond)
	}
	client := netip.MustParseAddr("198.18.1.2")
	if err := exchange(client, 9100); err != nil {
		t.Fatalf("accepted port before the block: %v", err)
	}
	if err := exchange(client, 9101); !isTimeout(err) {
		t.Fatalf("blocking rule: %v, want a drop", err)
	}
	set := nft(t, tp.Firewall, "list", "set", "inet", "kopts", "block4")
	if !strings.Contains(set, "198.18.1.2") {
		t.Fatalf("source not in block4:\n%s", set)
	}
	before := open.get()
	if err := exchange(client, 9100); !isTimeout(err) {
		t.Errorf("blocked source reached an accepted port: %v", err)
	}
	if err := exchange(other, 9100); err != nil {
		t.Errorf("another source: %v", err)
	}
	if got := open.get() - before; got != 1 {
		t.Errorf("%d datagrams reached port 9100 after the block, want 1 (the other source's)", got)
	}
	// The block set is no generation's: a reload keeps the block.
	if err := m.Replace(cfg); err != nil {
		t.Fatal(err)
	}
	if set := nft(t, tp.Firewall, "list", "set", "inet", "kopts", "block4"); !strings.Contains(set, "198.18.1.2") {
		t.Errorf("block lost in a reload:\n%s", set)
	}
	hits := KernelHits(mustCounters(t, m))
	if hits["blocker"] != 0 {
		t.Errorf("counters restart with a generation: blocker %d", hits["blocker"])
	}
}

func mustCounters(t *testing.T, m *Manager) []RuleCounter {
	t.Helper()
	cs, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
