package verdict

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/verdict/packet"
)

// TestDecideAllocs proves the per-packet path allocates nothing: first
// packets (the index, rules, flow insert), cached flows, the L7 matchers,
// rate limits and logging, with the 1,000-rule, 100,000-prefix policy.
func TestDecideAllocs(t *testing.T) {
	pol := bigPolicy(1000, 100000)
	pol.Rules = append([]Rule{
		{Name: "dns", Match: Match{Protos: []uint8{packet.ProtoUDP}, DNS: []string{"*.blocked.example"}}, Action: ActionDrop, Log: true},
		{Name: "sni", Match: Match{SNI: []string{"*.bad.example"}}, Action: ActionReject},
		{Name: "host", Match: Match{HTTPHost: []string{"api.example"}}, Action: ActionAccept,
			RateLimit: &RateLimit{Rate: Rate{Events: 1e6, Per: time.Second}, Key: RateKeyFlow}},
		{Name: "pay", Match: Match{Payload: [][]byte{[]byte("attack")}}, Action: ActionDrop, Mark: 1, SetMark: true},
		{Name: "mark", Match: Match{Mark: &MarkMatch{Value: 1, Mask: 1}, CT: CTStateNew}, Action: ActionDrop},
	}, pol.Rules...)
	c := mustCompile(t, pol)
	p := NewPipeline(c, nil)
	var m Meta
	var d Decision
	cases := []struct {
		name string
		raw  []byte
		rule int
	}{
		{"tcp4", tcp(tc4, ts4, 1, 443, []byte("data\r\n")).raw(), 1004},
		{"tcp6", tcp(tc6, ts6, 1, 443, []byte("data\r\n")).raw(), 1004},
		{"syn-waits-for-l7", tcp(tc4, ts4, 1, 443, nil).raw(), RulePending},
		{"dns", udp(tc4, ts4, 1, 53, tDNS("x.blocked.example")).raw(), 0},
		// Another source port than tcp6's flows, whose first data was not
		// TLS and so ruled the sni rule out for them.
		{"sni", tcp(tc6, ts6, 2, 443, tHello("a.bad.example")).raw(), 1},
		{"host", tcp(tc4, ts4, 1, 80, tHTTP("api.example")).raw(), 2},
		{"payload", udp(tc6, ts6, 1, 9, []byte("an attack")).raw(), 3},
		{"blocklist", udp("1.2.3.4", ts4, 1, 80, nil).raw(), -1},
	}
	for _, tc := range cases {
		g := &flowGen{raw: tc.raw}
		if tc.name == "tcp6" || tc.name == "sni" || tc.name == "payload" {
			g = nil
		}
		first := func() {
			raw := tc.raw
			if g != nil {
				raw = g.next()
			} else {
				raw[23]++ // IPv6: vary the source address
			}
			p.Decide(raw, &m, &d)
		}
		first()
		if tc.rule != -1 && d.Rule != tc.rule {
			t.Errorf("%s: rule %d (%s), want %d", tc.name, d.Rule, c.RuleName(d.Rule), tc.rule)
		}
		if n := testing.AllocsPerRun(200, first); n != 0 {
			t.Errorf("%s: first packet: %v allocs", tc.name, n)
		}
		if n := testing.AllocsPerRun(200, func() { p.Decide(tc.raw, &m, &d) }); n != 0 {
			t.Errorf("%s: next packets: %v allocs", tc.name, n)
		}
	}
	bad := []byte{0x60, 1}
	if n := testing.AllocsPerRun(100, func() { p.Decide(bad, &m, &d) }); n != 0 {
		t.Errorf("invalid packet: %v allocs", n)
	}
}

// TestIndexAgreesWithTrace compares the indexed evaluation of Decide with
// Trace's plain rule-by-rule walk on random policies and packets.
func TestIndexAgreesWithTrace(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	addrs := []string{"198.18.1.2", "198.18.2.2", "198.18.1.200", "10.1.2.3", "2001:db8:1::2", "2001:db8:2::2", "2001:db8:1:5::9", "fd00::1"}
	prefixes := []string{"198.18.0.0/15", "198.18.1.0/24", "198.18.1.2/32", "10.0.0.0/8", "0.0.0.0/0",
		"2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::2/128", "::/0", "fd00::/8"}
	pick := func(n int, from []string) []netip.Prefix {
		var out []netip.Prefix
		for i := 0; i < n; i++ {
			out = append(out, netip.MustParsePrefix(from[r.IntN(len(from))]))
		}
		return out
	}
	rangesOf := func() []PortRange {
		var out []PortRange
		for i := r.IntN(3); i > 0; i-- {
			lo := uint16(r.IntN(100))
			out = append(out, PortRange{Lo: lo, Hi: lo + uint16(r.IntN(30))})
		}
		return out
	}
	for round := 0; round < 60; round++ {
		pol := &Policy{Default: ActionAccept, L7Packets: 1, Sets: map[string][]netip.Prefix{"s": pick(3, prefixes)}}
		for i := 0; i < 1+r.IntN(150); i++ {
			m := Match{Src: pick(r.IntN(3), prefixes), Dst: pick(r.IntN(2), prefixes),
				SrcPorts: rangesOf(), DstPorts: rangesOf()}
			if r.IntN(4) == 0 {
				m.SrcSets = []string{"s"}
			}
			if r.IntN(4) == 0 {
				m.Family = uint8(4 + 2*r.IntN(2))
			}
			if r.IntN(3) == 0 {
				m.Protos = []uint8{[]uint8{packet.ProtoTCP, packet.ProtoUDP, packet.ProtoICMP, packet.ProtoICMPv6}[r.IntN(4)]}
			}
			if r.IntN(6) == 0 {
				m.InIfIndexes = []uint32{uint32(r.IntN(3))}
			}
			if r.IntN(5) == 0 {
				m.DNS = []string{[]string{"a.example", "*.example", "*", "b.test"}[r.IntN(4)], "z.example"}
			}
			if r.IntN(6) == 0 {
				m.Payload = [][]byte{[]byte([]string{"evil", "abc", "zz", "Host"}[r.IntN(4)])}
			}
			if r.IntN(6) == 0 {
				m.SNI = []string{[]string{"a.example", "*.example", "b.test"}[r.IntN(3)]}
			}
			if r.IntN(6) == 0 {
				m.HTTPHost = []string{[]string{"a.example", "*.test", "b.test"}[r.IntN(3)]}
			}
			pol.Rules = append(pol.Rules, Rule{Name: itoa(i), Match: m, Action: ActionDrop})
		}
		c := mustCompile(t, pol)
		for k := 0; k < 300; k++ {
			src, dst := addrs[r.IntN(len(addrs))], addrs[r.IntN(len(addrs))]
			if netip.MustParseAddr(src).Is4() != netip.MustParseAddr(dst).Is4() {
				continue
			}
			pk := tpkt{src: src, dst: dst, proto: []uint8{packet.ProtoTCP, packet.ProtoUDP, packet.ProtoICMP, packet.ProtoICMPv6}[r.IntN(4)],
				sport: uint16(r.IntN(140)), dport: uint16(r.IntN(140))}
			if r.IntN(4) == 0 {
				pk.dport = 53 // where dns matchers without dports look
			}
			name := []string{"a.example", "x.a.example", "b.test", "c.org"}[r.IntN(4)]
			switch r.IntN(5) {
			case 0:
				pk.payload = tDNS(name)
				if pk.proto == packet.ProtoTCP && r.IntN(2) == 0 {
					pk.payload = pktbuild.TCPDNS(pk.payload)
				}
			case 1:
				pk.payload = tHello(name)
			case 2:
				pk.payload = tHTTP(name)
			default:
				pk.payload = []byte([]string{"xxevilxx", "abc", "none"}[r.IntN(3)])
			}
			m := Meta{InIf: uint32(r.IntN(3))}
			p := NewPipeline(c, &Options{Flows: &FlowConfig{Capacity: 8}})
			var d Decision
			raw := pk.raw()
			p.Decide(raw, &m, &d)
			if tr := p.Trace(raw, &m); tr.Decision.Rule != d.Rule {
				t.Fatalf("round %d: Decide rule %d, Trace rule %d\n%s", round, d.Rule, tr.Decision.Rule, tr)
			}
		}
	}
}
