package rules

import (
	"net"
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
	apply(t, m)
	show := showNS(t, fd, "kopts")
	for _, want := range []string{
		`limit rate 5/second burst 5 packets log prefix "qguard accept logged" group 7167 snaplen 128 comment "qguard: rule logged"`,
		`th dport 9101 add @block4 { ip saddr timeout 30s } counter packets 0 bytes 0 drop comment "qguard: rule blocker"`,
		"#   kernel  logged\n", "#   kernel  blocker\n",
	} {
		if !strings.Contains(show, want) {
			t.Errorf("rules show lacks %q:\n%s", want, show)
		}
	}
	nft(t, tp.Firewall, "list", "table", "inet", "kopts") // nft itself can read what qguard wrote
	exchange := func(src netip.Addr, port uint16) error {
		c := mustDialFrom(t, tp.Client, "udp", src, srv, port)
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

// mustCounters is m.Counters for a test.
func mustCounters(t testing.TB, m *Manager) []RuleCounter {
	t.Helper()
	cs, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestIntegrationKernelRateLimit installs rate limits of every key and
// sends UDP exchanges (datagram and echo) through them: a bucket of two
// per minute lets two exchanges of a source through and drops the third;
// by rule, two exchanges of any sources; by flow, two per connection
// (both directions take from the bucket: one exchange is two packets).
func TestIntegrationKernelRateLimit(t *testing.T) {
	other := netip.MustParseAddr("198.18.1.7")
	tp, fd := newTopo(t, other)
	srv := netip.MustParseAddr("198.18.2.2")
	for port := uint16(9200); port <= 9202; port++ {
		udpServer(t, tp.Server, srv, port)
	}
	rl := func(key RateKey, burst uint32) *RateLimit {
		return &RateLimit{Rate: 1, Unit: time.Minute, Burst: burst, Key: key, Exceed: ActionDrop}
	}
	cfg := &Config{Table: "krl", Mode: KernelFirst, NetNS: fd, Bypass: true,
		Steer: Steer{Protocols: []string{"udp"}},
		Policy: &Policy{Default: ActionAccept, Rules: []PolicyRule{
			{Name: "by-source", Protos: []uint8{17}, DPorts: []PortRange{{Lo: 9200, Hi: 9200}}, Action: ActionAccept, RateLimit: rl(RateBySource, 2)},
			{Name: "by-rule", Protos: []uint8{17}, DPorts: []PortRange{{Lo: 9201, Hi: 9201}}, Action: ActionAccept, RateLimit: rl(RateByRule, 4)},
			{Name: "by-flow", Protos: []uint8{17}, DPorts: []PortRange{{Lo: 9202, Hi: 9202}}, Action: ActionAccept, RateLimit: rl(RateByFlow, 4)},
		}}}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Capabilities().Meter {
		t.Fatalf("this kernel has meters: %+v", m.Capabilities())
	}
	apply(t, m)
	show := showNS(t, fd, "krl")
	for _, want := range []string{"#   kernel  by-source\n", "#   kernel  by-rule\n", "#   kernel  by-flow\n",
		"update @rl_0_s4_g1 { ip saddr limit rate 1/minute burst 2 packets }",
		"limit rate 1/minute burst 4 packets counter",
		"ct mark & 0x00ff0000 == 0x00040000 ct id @rl_2_c_g1 counter packets 0 bytes 0 jump rl_2_g1 comment \"qguard: rate-limited flow\"",
		"update @rl_1_c_g1 { ct id }"} {
		if !strings.Contains(show, want) {
			t.Errorf("rules show lacks %q:\n%s\n%s", want, show, nft(t, tp.Firewall, "list", "sets"))
		}
	}
	client := netip.MustParseAddr("198.18.1.2")
	conn := func(src netip.Addr, port uint16) net.Conn { return mustDialFrom(t, tp.Client, "udp", src, srv, port) }
	// outcomes runs n exchanges on c: "." answered, "x" not.
	outcomes := func(c net.Conn, n int) string {
		out := ""
		for range n {
			if err := udpExchange(c, 300*time.Millisecond); err == nil {
				out += "."
			} else {
				out += "x"
			}
		}
		return out
	}
	// By source: the client's two tokens go to its first two datagrams,
	// wherever they go; the echoes take the server's.
	if got := outcomes(conn(client, 9200), 2) + outcomes(conn(client, 9200), 1); got != "..x" {
		t.Errorf("by source, one client over two flows: %s, want ..x", got)
	}
	if got := outcomes(conn(other, 9200), 1); got != "x" {
		// The server's bucket (its echoes) is empty now: the other
		// client's datagram passes, its echo does not.
		t.Errorf("by source, another client: %s, want x (the server's echo has no token left)", got)
	}
	// By rule: four packets in all, two exchanges, whoever sends them.
	if got := outcomes(conn(client, 9201), 1) + outcomes(conn(other, 9201), 2); got != "..x" {
		t.Errorf("by rule: %s, want ..x", got)
	}
	// By flow: four packets a connection, two exchanges each.
	if got := outcomes(conn(client, 9202), 3) + outcomes(conn(client, 9202), 3); got != "..x..x" {
		t.Errorf("by flow: %s, want ..x..x", got)
	}
	hits := KernelHits(mustCounters(t, m))
	for name, want := range map[string]uint64{"by-source": 7, "by-rule": 5, "by-flow": 10} {
		if hits[name] != want {
			t.Errorf("kernel hits of %s: %d, want %d (every packet that met the limit)", name, hits[name], want)
		}
	}
	if diff, err := m.Verify(); err != nil || diff != nil {
		t.Errorf("verify after apply: %v %v", diff, err)
	}
	// A reload is a new generation: new chains, sets and buckets (user
	// space's new policy starts its limiters afresh too), the old ones gone.
	if err := m.Replace(cfg); err != nil {
		t.Fatal(err)
	}
	if diff, err := m.Verify(); err != nil || diff != nil {
		t.Errorf("verify after reload: %v %v", diff, err)
	}
	list := nft(t, tp.Firewall, "list", "table", "inet", "krl")
	if strings.Contains(list, "_g1") || !strings.Contains(list, "rl_0_s4_g2") || !strings.Contains(list, "rl_1_c_g2") {
		t.Errorf("after the reload:\n%s", list)
	}
	if got := outcomes(conn(client, 9201), 2); got != ".." {
		t.Errorf("by rule after the reload: %s, want .. (a fresh bucket)", got)
	}
}
