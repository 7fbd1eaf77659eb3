package verdict

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/qguard/qguard/verdict/packet"
)

// testIfaces names interface indexes in tests without touching the host.
var testIfaces = &CompileOptions{Ifaces: NewIfaces(func(i uint32) (string, error) {
	switch i {
	case 7:
		return "fw-c", nil
	case 8:
		return "fw-s", nil
	case 9:
		return "wg0", nil
	}
	return "", fmt.Errorf("no such test interface")
})}

func mustCompile(t testing.TB, p *Policy) *Compiled {
	t.Helper()
	c, err := CompileWith(p, testIfaces)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

func ports(rs ...PortRange) []PortRange { return rs }

// TestMatchers checks each matcher alone in a one-rule policy (drop when it
// matches, accept by default) with IPv4 and IPv6 packets, through the
// indexed path of Decide and through Trace's rule-by-rule walk.
func TestMatchers(t *testing.T) {
	web4 := tcp(tc4, ts4, 40000, 443, nil)
	web6 := tcp(tc6, ts6, 40000, 443, nil)
	dns4 := udp(tc4, ts4, 5353, 53, tDNS("www.Example.com"))
	dns6 := udp(tc6, ts6, 5353, 53, tDNS("ads.tracker.example"))
	icmp4 := tpkt{src: tc4, dst: ts4, proto: packet.ProtoICMP, icmpType: 8, icmpID: 9}
	icmp6 := tpkt{src: tc6, dst: ts6, proto: packet.ProtoICMPv6, icmpType: 128, icmpID: 9}
	type pc struct {
		p    tpkt
		m    Meta
		want bool // matches
	}
	cases := []struct {
		name  string
		match Match
		sets  map[string][]netip.Prefix
		pkts  []pc
	}{
		{"family4", Match{Family: 4}, nil, []pc{{p: web4, want: true}, {p: web6}}},
		{"family6", Match{Family: 6}, nil, []pc{{p: web4}, {p: web6, want: true}}},
		{"proto", Match{Protos: []uint8{packet.ProtoUDP, packet.ProtoICMPv6}}, nil,
			[]pc{{p: web4}, {p: web6}, {p: dns4, want: true}, {p: icmp6, want: true}, {p: icmp4}}},
		{"src", Match{Src: pfx("198.18.1.0/24", "2001:db8:1::/48")}, nil,
			[]pc{{p: web4, want: true}, {p: web6, want: true}, {p: web4.reply()}, {p: web6.reply()}}},
		{"dst-nested", Match{Dst: pfx("198.18.0.0/15", "198.18.2.2/32", "2001:db8::/32")}, nil,
			[]pc{{p: web4, want: true}, {p: web6, want: true}, {p: tcp(tc4, "10.0.0.1", 1, 2, nil)}}},
		{"dst-set", Match{DstSets: []string{"servers"}}, map[string][]netip.Prefix{"servers": pfx("198.18.2.2/32", "2001:db8:2::/64")},
			[]pc{{p: web4, want: true}, {p: web6, want: true}, {p: web4.reply()}, {p: web6.reply()}}},
		{"dport-list", Match{DstPorts: ports(PortRange{Lo: 80, Hi: 80}, PortRange{Lo: 443, Hi: 443})}, nil,
			[]pc{{p: web4, want: true}, {p: web6, want: true}, {p: dns4}, {p: icmp4}, {p: icmp6}}},
		{"dport-range", Match{DstPorts: ports(PortRange{Lo: 50, Hi: 60})}, nil,
			[]pc{{p: web4}, {p: dns4, want: true}, {p: udp(tc6, ts6, 1, 60, nil), want: true}, {p: udp(tc6, ts6, 1, 61, nil)}}},
		{"sport-range", Match{SrcPorts: ports(PortRange{Lo: 40000, Hi: 40010})}, nil,
			[]pc{{p: web4, want: true}, {p: web6, want: true}, {p: dns4}, {p: web4.reply()}}},
		{"in_iface-name", Match{InIfaces: []string{"fw-c"}}, nil,
			[]pc{{p: web4, m: Meta{InIf: 7}, want: true}, {p: web6, m: Meta{InIf: 7}, want: true}, {p: web4, m: Meta{InIf: 8}}}},
		{"in_iface-prefix", Match{InIfaces: []string{"fw*"}}, nil,
			[]pc{{p: web4, m: Meta{InIf: 7}, want: true}, {p: web6, m: Meta{InIf: 8}, want: true}, {p: web4, m: Meta{InIf: 9}}, {p: web4}}},
		{"in_iface-index-and-name", Match{InIfaces: []string{"wg0"}, InIfIndexes: []uint32{3}}, nil,
			[]pc{{p: web4, m: Meta{InIf: 9}, want: true}, {p: web4, m: Meta{InIf: 3}, want: true}, {p: web4, m: Meta{InIf: 7}}, {p: web4, m: Meta{InIf: 4}}}},
		{"out_iface-name", Match{OutIfaces: []string{"fw-s"}}, nil,
			[]pc{{p: web4, m: Meta{OutIf: 8}, want: true}, {p: web4, m: Meta{OutIf: 7}}, {p: web4, m: Meta{InIf: 8}}}},
		{"out_iface-index", Match{OutIfIndexes: []uint32{3}}, nil,
			[]pc{{p: web4, m: Meta{OutIf: 3}, want: true}, {p: web6, m: Meta{OutIf: 2}}}},
		{"mark", Match{Mark: &MarkMatch{Value: 0x10, Mask: 0xf0}}, nil,
			[]pc{{p: web4, m: Meta{Mark: 0x1f, HasMark: true}, want: true}, {p: web6, m: Meta{Mark: 0x1f}, want: true}, {p: web6, m: Meta{Mark: 0x2f}}}},
		{"uid", Match{UIDs: []IDRange{{1000, 1999}}}, nil,
			[]pc{{p: web4, m: Meta{UID: 1000, HasUID: true}, want: true}, {p: web6, m: Meta{UID: 1999, HasUID: true}, want: true},
				{p: web6, m: Meta{UID: 0, HasUID: true}}, {p: web4, m: Meta{UID: 1000}}}},
		{"gid", Match{GIDs: []IDRange{{100, 100}}}, nil,
			[]pc{{p: web4, m: Meta{GID: 100, HasGID: true}, want: true}, {p: web6, m: Meta{GID: 101, HasGID: true}}}},
		{"ct", Match{CT: CTStateNew | CTStateInvalid}, nil,
			[]pc{{p: web4, m: Meta{HasCT: true, CTState: CTNew}, want: true}, {p: web6, m: Meta{}, want: true},
				{p: web6, m: Meta{HasCT: true, CTState: CTEstablished}}, {p: web4, m: Meta{HasCT: true, CTState: CTRelatedReply}}}},
		{"dns-exact", Match{DNS: []string{"www.example.com"}}, nil,
			[]pc{{p: dns4, want: true}, {p: dns6}, {p: udp(tc6, ts6, 1, 53, tDNS("www.example.com.")), want: true}}},
		{"dns-wildcard", Match{DNS: []string{"*.tracker.example"}}, nil,
			[]pc{{p: dns4}, {p: dns6, want: true}, {p: udp(tc4, ts4, 1, 53, tDNS("tracker.example"))},
				{p: udp(tc4, ts4, 1, 53, tDNS("a.b.TRACKER.example")), want: true}}},
		{"sni", Match{SNI: []string{"*.bad.example"}}, nil,
			[]pc{{p: tcp(tc4, ts4, 1, 443, tHello("www.bad.example")), want: true}, {p: tcp(tc6, ts6, 1, 443, tHello("x.BAD.example")), want: true},
				{p: tcp(tc6, ts6, 1, 443, tHello("good.example"))}, {p: tcp(tc4, ts4, 1, 443, tHTTP("www.bad.example"))}}},
		{"http_host", Match{HTTPHost: []string{"api.example"}}, nil,
			[]pc{{p: tcp(tc4, ts4, 1, 80, tHTTP("api.example")), want: true}, {p: tcp(tc6, ts6, 1, 80, tHTTP("API.example:8080")), want: true},
				{p: tcp(tc6, ts6, 1, 80, tHTTP("www.api.example"))}, {p: tcp(tc4, ts4, 1, 443, tHello("api.example"))}}},
		{"payload", Match{Payload: [][]byte{[]byte("GET /admin"), {0, 1, 's'}}}, nil,
			[]pc{{p: tcp(tc4, ts4, 1, 80, []byte("GET /admin HTTP/1.0\r\n")), want: true}, {p: udp(tc6, ts6, 1, 9, []byte{9, 0, 1, 's', 9}), want: true},
				{p: udp(tc6, ts6, 1, 9, []byte{0, 1, 't'})}, {p: tcp(tc4, ts4, 1, 80, []byte("GET /"))}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := &Policy{Default: ActionAccept, Sets: tc.sets, L7Packets: 1,
				Rules: []Rule{{Name: tc.name, Match: tc.match, Action: ActionDrop}}}
			c := mustCompile(t, pol)
			for i, pc := range tc.pkts {
				pl := NewPipeline(c, nil)
				var d Decision
				raw := pc.p.raw()
				pl.Decide(raw, &pc.m, &d)
				want := Decision{Action: ActionAccept, Rule: RuleDefault}
				if pc.want {
					want = Decision{Action: ActionDrop, Rule: 0}
				}
				if d != want {
					t.Errorf("packet %d (%s): Decide = %+v, want %+v", i, summaryOf(raw), d, want)
				}
				tr := pl.Trace(raw, &pc.m)
				if tr.Decision.Rule != want.Rule && !(tr.Decision.Rule == RulePending && !pc.want) {
					t.Errorf("packet %d: Trace rule %d, want %d\n%s", i, tr.Decision.Rule, want.Rule, tr)
				}
			}
		})
	}
}

func summaryOf(raw []byte) string {
	var p packet.Packet
	if !packet.Decode(raw, &p) {
		return "invalid " + p.Invalid.String()
	}
	return summary(&p)
}

func TestNameSet(t *testing.T) {
	s, err := newNameSet([]string{"Example.com", "*.corp.example", "x.y."})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"example.com": true, "www.example.com": false, "corp.example": false, "a.corp.example": true,
		"a.b.corp.example": true, "x.y": true, "y": false, "": false, "acorp.example": false,
	} {
		if got := s.match([]byte(name)); got != want {
			t.Errorf("match(%q) = %v, want %v", name, got, want)
		}
	}
	for _, bad := range []string{"", "a..b", "*", "a.*.b", "bad name", "*.", "-"} {
		_, err := newNameSet([]string{bad})
		if (err == nil) != (bad == "*" || bad == "-") {
			t.Errorf("newNameSet(%q) err = %v", bad, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { s.match([]byte("q.w.e.r.corp.example")) }); n != 0 {
		t.Errorf("match allocates %v times", n)
	}
}
