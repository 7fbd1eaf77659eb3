package verdict

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/verdict/packet"
)

// TestGoldenTrace renders Pipeline.Trace for packets that meet every kind
// of matcher and decision (go test ./verdict -run GoldenTrace -update
// rewrites testdata/trace.golden; review the diff like code: it is what
// `qguard test` and the decision log show a user).
func TestGoldenTrace(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, L7Packets: 4,
		Sets: map[string][]netip.Prefix{"lab": pfx("198.18.0.0/15", "2001:db8::/32")},
		Rules: []Rule{
			{Name: "ssh-in", Match: Match{Protos: []uint8{packet.ProtoTCP}, DstPorts: ports(PortRange{Lo: 22, Hi: 22}), InIfaces: []string{"fw-c"}}, Action: ActionDrop, BlockSource: 10 * time.Minute},
			{Name: "admin-mark", Match: Match{Mark: &MarkMatch{Value: 0x10, Mask: 0xf0}, UIDs: []IDRange{{Lo: 1000, Hi: 1999}}}, Action: ActionAccept, Flow: true},
			{Name: "new-v6", Match: Match{Family: 6, CT: CTStateNew, DstSets: []string{"lab"}, DstPorts: ports(PortRange{Lo: 8000, Hi: 8999})}, Action: ActionReject},
			{Name: "dns", Match: Match{SrcSets: []string{"lab"}, DNS: []string{"*.blocked.test"}}, Action: ActionReject, Mark: 3, SetMark: true},
			{Name: "sni", Match: Match{SNI: []string{"*.blocked.test"}}, Action: ActionDrop},
			{Name: "host", Match: Match{HTTPHost: []string{"api.example"}}, Action: ActionAlert, AlertAs: ActionReject},
			{Name: "payload", Match: Match{Protos: []uint8{packet.ProtoUDP}, Payload: [][]byte{[]byte("evil")}}, Action: ActionDrop},
			{Name: "ping", Match: Match{Protos: []uint8{packet.ProtoICMP}}, Action: ActionAccept, RateLimit: &RateLimit{Rate: Rate{Events: 5, Per: time.Second}}},
		}})
	in := func(i uint32) *Meta { return &Meta{InIf: i} }
	icmp := tpkt{src: tc4, dst: ts4, proto: packet.ProtoICMP, icmpType: 8, icmpID: 7}
	cases := []struct {
		name string
		raw  []byte
		m    *Meta
	}{
		{"ssh from the client side", tcp(tc4, ts4, 40000, 22, nil).raw(), in(7)},
		{"ssh from elsewhere", tcp(tc4, ts4, 40000, 22, nil).raw(), in(8)},
		{"marked uid", udp(tc4, ts4, 40000, 9, []byte("x")).raw(), &Meta{Mark: 0x1f, HasMark: true, UID: 1500, HasUID: true}},
		{"new ipv6 to 8080", tcp(tc6, ts6, 40000, 8080, nil).raw(), &Meta{HasCT: true, CTState: CTNew}},
		{"ipv6 without conntrack", tcp(tc6, ts6, 40000, 8080, nil).raw(), nil},
		{"blocked dns name", udp(tc4, ts4, 40000, 53, tDNS("www.blocked.test")).raw(), nil},
		{"allowed dns name", udp(tc4, ts4, 40000, 53, tDNS("www.allowed.test")).raw(), nil},
		{"tls to a blocked name", tcp(tc4, ts4, 40000, 443, tHello("a.blocked.test")).raw(), nil},
		{"tls handshake first", tcp(tc4, ts4, 40000, 443, nil).raw(), nil},
		{"http alert", tcp(tc4, ts4, 40000, 80, tHTTP("api.example")).raw(), nil},
		{"payload pattern", udp(tc6, ts6, 40000, 9999, []byte("an evil datagram")).raw(), nil},
		{"ping", icmp.raw(), nil},
		{"later fragment", tpkt{src: tc4, dst: ts4, proto: packet.ProtoUDP, fragOff: 1480, payload: []byte("rest")}.raw(), nil},
		{"truncated", tcp(tc4, ts4, 40000, 22, nil).raw()[:30], nil},
	}
	var b strings.Builder
	for _, tc := range cases {
		p := NewPipeline(c, nil)
		fmt.Fprintf(&b, "== %s\n%s\n\n", tc.name, p.Trace(tc.raw, tc.m))
	}
	testutil.Golden(t, "testdata/trace.golden", []byte(b.String()))
}
