package verdict

import (
	"testing"
	"time"

	"github.com/qguard/qguard/verdict/packet"

	"github.com/qguard/qguard/internal/testutil"
)

// FuzzPipeline feeds arbitrary packets through a pipeline whose policy uses
// every matcher and option: no panic, no unset action, no allocation
// growth is allowed, whatever the bytes.
func FuzzPipeline(f *testing.F) {
	c, err := CompileWith(&Policy{Default: ActionAccept, L7Packets: 3, Rules: []Rule{
		{Name: "dns", Match: Match{Protos: []uint8{packet.ProtoUDP}, DNS: []string{"*.example"}}, Action: ActionDrop, Log: true},
		{Name: "sni", Match: Match{SNI: []string{"*.bad.example"}}, Action: ActionReject, BlockSource: time.Minute},
		{Name: "host", Match: Match{HTTPHost: []string{"api.example"}}, Action: ActionAccept,
			RateLimit: &RateLimit{Rate: Rate{Events: 10, Per: time.Second}, Key: RateKeyFlow}},
		{Name: "pay", Match: Match{Payload: [][]byte{[]byte("evil")}}, Action: ActionDrop, Mark: 1, SetMark: true},
		{Name: "meta", Match: Match{Mark: &MarkMatch{Value: 1, Mask: 1}, CT: CTStateNew, UIDs: []IDRange{{0, 10}}, InIfIndexes: []uint32{2}}, Action: ActionDrop},
		{Name: "l4", Match: Match{Src: pfx("198.18.0.0/15", "2001:db8::/32"), DstPorts: ports(PortRange{Lo: 1, Hi: 1024})}, Action: ActionAccept, Flow: true},
	}}, testIfaces)
	if err != nil {
		f.Fatal(err)
	}
	p := NewPipeline(c, &Options{Flows: &FlowConfig{Capacity: 64, HelloBuffers: 4}})
	for _, s := range []tpkt{
		udp(tc4, ts4, 1, 53, tDNS("a.example")), tcp(tc6, ts6, 1, 443, tHello("x.bad.example")),
		tcp(tc4, ts4, 1, 80, tHTTP("api.example")), udp(tc6, ts6, 1, 9, []byte("evil")),
		tcp(tc4, ts4, 1, 443, tHello("x.bad.example")[:20]),
	} {
		f.Add(s.raw(), uint32(0), uint8(0))
	}
	for _, file := range []string{"rfc9001-a2-client-initial.hex", "rfc9369-a2-client-initial.hex"} {
		f.Add(udp(tc4, ts4, 1, 443, testutil.ReadHex(f, "../verdict/l7/testdata/quic/"+file)).raw(), uint32(0), uint8(0)) // QUIC Initials
	}
	f.Fuzz(func(t *testing.T, raw []byte, mark uint32, ct uint8) {
		m := Meta{Mark: mark, HasMark: mark != 0, CTState: ct & 7, HasCT: ct&8 != 0, UID: uint32(ct), HasUID: ct&16 != 0, InIf: uint32(ct >> 6)}
		var d Decision
		p.Decide(raw, &m, &d)
		if d.Action == ActionUnset || d.Action >= numActions {
			t.Fatalf("decision %+v", d)
		}
		p.Decide(raw, &m, &d) // the same packet again: the flow table path
		if d.Action == ActionUnset {
			t.Fatalf("second decision %+v", d)
		}
		_ = p.Trace(raw, &m)
	})
}
