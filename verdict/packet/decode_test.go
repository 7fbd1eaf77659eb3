package packet

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
)

func TestDecodeValid(t *testing.T) {
	hello := []byte("hello")
	mss := []byte{2, 4, 0x05, 0xb4} // TCP option: MSS 1460
	tests := []struct {
		name string
		b    []byte
		want Packet // Payload compared separately; zero ports etc. must match
	}{
		{"ipv4 tcp syn", pktbuild.IPv4{Proto: ProtoTCP, DF: true, TOS: 0x10}.Build(pktbuild.TCP(40000, 443, TCPSyn, mss, nil)),
			Packet{Family: 4, Proto: ProtoTCP, Src: pktbuild.Client4, Dst: pktbuild.Server4, SrcPort: 40000, DstPort: 443, TCPFlags: TCPSyn,
				TTL: 64, IPLen: 44, L4Off: 20, TOS: 0x10, DontFrag: true, TCPSeq: 1000, TCPAck: 2000, TCPWindow: 65535, TCPHdrLen: 24}},
		{"ipv4 tcp payload", pktbuild.IPv4{Proto: ProtoTCP}.Build(pktbuild.TCP(1, 80, TCPAck|TCPPsh, nil, hello)),
			Packet{Family: 4, Proto: ProtoTCP, Src: pktbuild.Client4, Dst: pktbuild.Server4, SrcPort: 1, DstPort: 80, TCPFlags: TCPAck | TCPPsh,
				TTL: 64, IPLen: 45, L4Off: 20, TCPSeq: 1000, TCPAck: 2000, TCPWindow: 65535, TCPHdrLen: 20, Payload: hello}},
		{"ipv4 options udp", pktbuild.IPv4{Proto: ProtoUDP, Opts: []byte{1, 1, 7, 3, 0, 0, 0, 0}, ID: 7}.Build(pktbuild.UDP(5353, 53, hello)),
			Packet{Family: 4, Proto: ProtoUDP, Src: pktbuild.Client4, Dst: pktbuild.Server4, SrcPort: 5353, DstPort: 53, TTL: 64, IPLen: 41,
				L4Off: 28, IPOptions: true, FragID: 7, Payload: hello}},
		{"ipv4 icmp echo", pktbuild.IPv4{Proto: ProtoICMP, TTL: 1}.Build(pktbuild.ICMP(8, 0, 0x1234, 9, hello)),
			Packet{Family: 4, Proto: ProtoICMP, Src: pktbuild.Client4, Dst: pktbuild.Server4, ICMPType: 8, TTL: 1, IPLen: 33, L4Off: 20,
				ICMPID: 0x1234, ICMPSeq: 9, Payload: hello}},
		{"ipv4 icmp unreachable", pktbuild.IPv4{Proto: ProtoICMP}.Build(pktbuild.ICMP(3, 3, 0, 0, nil)),
			Packet{Family: 4, Proto: ProtoICMP, Src: pktbuild.Client4, Dst: pktbuild.Server4, ICMPType: 3, ICMPCode: 3, TTL: 64, IPLen: 28, L4Off: 20}},
		{"ipv4 sctp", pktbuild.IPv4{Proto: ProtoSCTP}.Build(pktbuild.SCTP(3868, 3868, 0xdeadbeef, hello)),
			Packet{Family: 4, Proto: ProtoSCTP, Src: pktbuild.Client4, Dst: pktbuild.Server4, SrcPort: 3868, DstPort: 3868, TTL: 64, IPLen: 37,
				L4Off: 20, SCTPTag: 0xdeadbeef, Payload: hello}},
		{"ipv4 gre", pktbuild.IPv4{Proto: 47}.Build(hello),
			Packet{Family: 4, Proto: 47, Src: pktbuild.Client4, Dst: pktbuild.Server4, TTL: 64, IPLen: 25, L4Off: 20, Payload: hello}},
		{"ipv4 first fragment", pktbuild.IPv4{Proto: ProtoUDP, MF: true, ID: 99}.Build(append(pktbuild.UDP(1, 2, hello), 'x')),
			Packet{Family: 4, Proto: ProtoUDP, Src: pktbuild.Client4, Dst: pktbuild.Server4, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 34, L4Off: 20,
				Frag: true, MoreFrags: true, FragID: 99, Payload: append(append([]byte{}, hello...), 'x')}},
		{"ipv4 last fragment", pktbuild.IPv4{Proto: ProtoTCP, FragOff: 1480, ID: 99}.Build(hello),
			Packet{Family: 4, Proto: ProtoTCP, Src: pktbuild.Client4, Dst: pktbuild.Server4, TTL: 64, IPLen: 25, L4Off: 20,
				Frag: true, FragOffset: 1480, FragID: 99}},
		{"ipv4 link padding", append(pktbuild.IPv4{Proto: ProtoUDP}.Build(pktbuild.UDP(1, 2, nil)), 0, 0, 0, 0, 0, 0),
			Packet{Family: 4, Proto: ProtoUDP, Src: pktbuild.Client4, Dst: pktbuild.Server4, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 28, L4Off: 20}},
		{"ipv4 short capture", pktbuild.IPv4{Proto: ProtoUDP, Total: 1000}.Build(pktbuild.UDP(1, 2, hello)),
			Packet{Family: 4, Proto: ProtoUDP, Src: pktbuild.Client4, Dst: pktbuild.Server4, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 1000, L4Off: 20,
				Short: true, Payload: hello}},
		{"ipv6 tcp", pktbuild.IPv6{Proto: ProtoTCP, TC: 0xb8}.Build(pktbuild.TCP(40000, 443, TCPSyn|TCPEce|TCPCwr, nil, nil)),
			Packet{Family: 6, Proto: ProtoTCP, Src: pktbuild.Client6, Dst: pktbuild.Server6, SrcPort: 40000, DstPort: 443, TCPFlags: TCPSyn | TCPEce | TCPCwr,
				TTL: 64, IPLen: 60, L4Off: 40, TOS: 0xb8, TCPSeq: 1000, TCPAck: 2000, TCPWindow: 65535, TCPHdrLen: 20}},
		{"ipv6 udp", pktbuild.IPv6{Proto: ProtoUDP, Hop: 255}.Build(pktbuild.UDP(53, 5353, hello)),
			Packet{Family: 6, Proto: ProtoUDP, Src: pktbuild.Client6, Dst: pktbuild.Server6, SrcPort: 53, DstPort: 5353, TTL: 255, IPLen: 53, L4Off: 40, Payload: hello}},
		{"ipv6 icmpv6 echo", pktbuild.IPv6{Proto: ProtoICMPv6}.Build(pktbuild.ICMP(128, 0, 7, 8, nil)),
			Packet{Family: 6, Proto: ProtoICMPv6, Src: pktbuild.Client6, Dst: pktbuild.Server6, ICMPType: 128, TTL: 64, IPLen: 48, L4Off: 40, ICMPID: 7, ICMPSeq: 8}},
		{"ipv6 ext chain", pktbuild.IPv6{Proto: ProtoUDP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoHopByHop, pktbuild.Opts6(1)), pktbuild.NewExt(ProtoDstOpts, pktbuild.Opts6(2)),
			pktbuild.NewExt(ProtoRouting, []byte{4, 0, 0, 0, 0, 0}), pktbuild.NewExt(ProtoAH, make([]byte, 14)), pktbuild.NewExt(ProtoDstOpts, pktbuild.Opts6(1))}}.Build(pktbuild.UDP(1, 2, hello)),
			Packet{Family: 6, Proto: ProtoUDP, Src: pktbuild.Client6, Dst: pktbuild.Server6, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 109,
				L4Off: 96, ExtHeaders: 5, Payload: hello}},
		{"ipv6 first fragment", pktbuild.IPv6{Proto: ProtoTCP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoFragment, pktbuild.Frag6(0, true, 77))}}.Build(pktbuild.TCP(1, 2, TCPAck, nil, hello)),
			Packet{Family: 6, Proto: ProtoTCP, Src: pktbuild.Client6, Dst: pktbuild.Server6, SrcPort: 1, DstPort: 2, TCPFlags: TCPAck, TTL: 64, IPLen: 73,
				L4Off: 48, ExtHeaders: 1, Frag: true, MoreFrags: true, FragID: 77, TCPSeq: 1000, TCPAck: 2000, TCPWindow: 65535, TCPHdrLen: 20, Payload: hello}},
		{"ipv6 later fragment", pktbuild.IPv6{Proto: ProtoTCP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoHopByHop, pktbuild.Opts6(1)), pktbuild.NewExt(ProtoFragment, pktbuild.Frag6(1448, false, 77)), pktbuild.NewExt(ProtoDstOpts, pktbuild.Opts6(1))}}.Build(hello),
			Packet{Family: 6, Proto: ProtoDstOpts, Src: pktbuild.Client6, Dst: pktbuild.Server6, TTL: 64, IPLen: 69, L4Off: 56, ExtHeaders: 2,
				Frag: true, FragOffset: 1448, FragID: 77}},
		{"ipv6 atomic fragment", pktbuild.IPv6{Proto: ProtoUDP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoFragment, pktbuild.Frag6(0, false, 5))}}.Build(pktbuild.UDP(1, 2, nil)),
			Packet{Family: 6, Proto: ProtoUDP, Src: pktbuild.Client6, Dst: pktbuild.Server6, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 56, L4Off: 48,
				ExtHeaders: 1, FragID: 5}},
		{"ipv6 esp", pktbuild.IPv6{Proto: ProtoESP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoDstOpts, pktbuild.Opts6(1))}}.Build(hello),
			Packet{Family: 6, Proto: ProtoESP, Src: pktbuild.Client6, Dst: pktbuild.Server6, TTL: 64, IPLen: 53, L4Off: 48, ExtHeaders: 1, Payload: hello}},
		{"ipv6 no next header", pktbuild.IPv6{Proto: ProtoNoNext}.Build(nil),
			Packet{Family: 6, Proto: ProtoNoNext, Src: pktbuild.Client6, Dst: pktbuild.Server6, TTL: 64, IPLen: 40, L4Off: 40}},
		{"ipv6 sctp", pktbuild.IPv6{Proto: ProtoSCTP}.Build(pktbuild.SCTP(9, 10, 1, nil)),
			Packet{Family: 6, Proto: ProtoSCTP, Src: pktbuild.Client6, Dst: pktbuild.Server6, SrcPort: 9, DstPort: 10, TTL: 64, IPLen: 52, L4Off: 40, SCTPTag: 1}},
		{"ipv4 dccp", pktbuild.IPv4{Proto: ProtoDCCP}.Build(append([]byte{0, 1, 0, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, hello...)),
			Packet{Family: 4, Proto: ProtoDCCP, Src: pktbuild.Client4, Dst: pktbuild.Server4, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 41, L4Off: 20, Payload: hello}},
		{"ipv6 udplite", pktbuild.IPv6{Proto: ProtoUDPLite}.Build(pktbuild.UDP(3, 4, hello)),
			Packet{Family: 6, Proto: ProtoUDPLite, Src: pktbuild.Client6, Dst: pktbuild.Server6, SrcPort: 3, DstPort: 4, TTL: 64, IPLen: 53, L4Off: 40, Payload: hello}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			if !Decode(tt.b, &p) {
				t.Fatalf("Decode = false, reason %q", p.Invalid)
			}
			if !bytes.Equal(p.Payload, tt.want.Payload) {
				t.Errorf("Payload = %q, want %q", p.Payload, tt.want.Payload)
			}
			p.Payload, tt.want.Payload = nil, nil
			if !reflect.DeepEqual(p, tt.want) {
				t.Errorf("Decode =\n %+v\nwant\n %+v", p, tt.want)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	hello := []byte("hello")
	tcp := pktbuild.TCP(1, 2, TCPSyn, nil, nil)
	badOff := pktbuild.TCP(1, 2, TCPSyn, nil, nil)
	badOff[12] = 4 << 4
	longOff := pktbuild.TCP(1, 2, TCPSyn, nil, nil)
	longOff[12] = 15 << 4
	badUDP := pktbuild.UDP(1, 2, hello)
	badUDP[5] = 200
	tinyUDP := pktbuild.UDP(1, 2, hello)
	tinyUDP[4], tinyUDP[5] = 0, 4
	badIHL := pktbuild.IPv4{Proto: ProtoTCP}.Build(tcp)
	badIHL[0] = 0x44
	tests := []struct {
		name string
		b    []byte
		want Reason
	}{
		{"empty", nil, ReasonEmpty},
		{"version 5", []byte{0x50, 0, 0, 20}, ReasonBadVersion},
		{"ipv4 ihl 4", badIHL, ReasonBadIHL},
		{"ipv4 total below ihl", pktbuild.IPv4{Proto: ProtoTCP, Total: 19}.Build(tcp), ReasonBadLength},
		{"ipv4 option length 0", pktbuild.IPv4{Proto: ProtoTCP, Opts: []byte{7, 0, 0, 0}}.Build(tcp), ReasonBadIPOptions},
		{"ipv4 option past header", pktbuild.IPv4{Proto: ProtoTCP, Opts: []byte{1, 7, 9, 0}}.Build(tcp), ReasonBadIPOptions},
		{"ipv4 option type only", pktbuild.IPv4{Proto: ProtoTCP, Opts: []byte{1, 1, 1, 7}}.Build(tcp), ReasonBadIPOptions},
		{"ipv4 ping of death", pktbuild.IPv4{Proto: ProtoICMP, FragOff: 65528}.Build([]byte("12345678")), ReasonBadFragment},
		{"ipv4 tcp fragment offset 8", pktbuild.IPv4{Proto: ProtoTCP, FragOff: 8}.Build(hello), ReasonBadFragment},
		{"ipv4 tiny tcp fragment", pktbuild.IPv4{Proto: ProtoTCP, MF: true}.Build(tcp[:16]), ReasonTinyFragment},
		{"ipv4 tiny tcp options fragment", pktbuild.IPv4{Proto: ProtoTCP, MF: true}.Build(longOff[:20]), ReasonTinyFragment},
		{"ipv4 tcp offset 4", pktbuild.IPv4{Proto: ProtoTCP}.Build(badOff), ReasonBadTCPOffset},
		{"ipv4 tcp offset past packet", pktbuild.IPv4{Proto: ProtoTCP}.Build(longOff), ReasonBadTCPOffset},
		{"ipv4 tcp too short", pktbuild.IPv4{Proto: ProtoTCP}.Build(tcp[:12]), ReasonBadLength},
		{"ipv4 udp length past ip", pktbuild.IPv4{Proto: ProtoUDP}.Build(badUDP), ReasonBadUDPLength},
		{"ipv4 udp length 4", pktbuild.IPv4{Proto: ProtoUDP}.Build(tinyUDP), ReasonBadUDPLength},
		{"ipv4 icmp short", pktbuild.IPv4{Proto: ProtoICMP}.Build([]byte{8, 0, 0, 0}), ReasonTruncated},
		{"ipv4 sctp short", pktbuild.IPv4{Proto: ProtoSCTP}.Build(make([]byte, 11)), ReasonTruncated},
		{"ipv4 dccp offset 2", pktbuild.IPv4{Proto: ProtoDCCP}.Build([]byte{0, 1, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0}), ReasonBadDCCPOffset},
		{"ipv4 dccp offset past packet", pktbuild.IPv4{Proto: ProtoDCCP}.Build([]byte{0, 1, 0, 2, 9, 0, 0, 0, 0, 0, 0, 0}), ReasonBadDCCPOffset},
		{"ipv4 dccp short", pktbuild.IPv4{Proto: ProtoDCCP}.Build([]byte{0, 1, 0, 2}), ReasonTruncated},
		{"ipv6 hop-by-hop not first", pktbuild.IPv6{Proto: ProtoTCP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoDstOpts, pktbuild.Opts6(1)), pktbuild.NewExt(ProtoHopByHop, pktbuild.Opts6(1))}}.Build(tcp), ReasonBadExtHeader},
		{"ipv6 two fragment headers", pktbuild.IPv6{Proto: ProtoTCP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoFragment, pktbuild.Frag6(0, true, 1)), pktbuild.NewExt(ProtoFragment, pktbuild.Frag6(0, true, 1))}}.Build(tcp), ReasonBadExtHeader},
		{"ipv6 ext past payload length", pktbuild.IPv6{Proto: ProtoTCP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoDstOpts, pktbuild.Opts6(4))}, PLen: 16}.Build(tcp), ReasonTruncated},
		{"ipv6 tiny fragment", pktbuild.IPv6{Proto: ProtoTCP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoFragment, pktbuild.Frag6(0, true, 1))}}.Build(tcp[:8]), ReasonTinyFragment},
		{"ipv6 fragment past 64k", pktbuild.IPv6{Proto: ProtoUDP, Exts: []pktbuild.Ext{pktbuild.NewExt(ProtoFragment, pktbuild.Frag6(65528, false, 1))}}.Build([]byte("12345678")), ReasonBadFragment},
		{"ipv6 udp length past ip", pktbuild.IPv6{Proto: ProtoUDP}.Build(badUDP), ReasonBadUDPLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			if Decode(tt.b, &p) {
				t.Fatalf("Decode = true for %x", tt.b)
			}
			if p.Invalid != tt.want {
				t.Errorf("Invalid = %q, want %q", p.Invalid, tt.want)
			}
		})
	}
}

// TestDecodeLongExtChain: an IPv6 extension header chain of any length that
// fits in the packet is walked to its transport header, since the kernel
// delivers it and a decoder that stopped early would hide the ports.
func TestDecodeLongExtChain(t *testing.T) {
	for _, n := range []int{9, 16, 100, 1000} {
		exts := pktbuild.DstOpts(n)
		exts[0] = pktbuild.NewExt(ProtoHopByHop, pktbuild.Opts6(1))
		b := pktbuild.IPv6{Proto: ProtoUDP, Exts: exts}.Build(pktbuild.UDP(1, 9002, []byte("x")))
		var p Packet
		if !Decode(b, &p) {
			t.Fatalf("%d headers: %s", n, p.Invalid)
		}
		if p.Proto != ProtoUDP || p.DstPort != 9002 || string(p.Payload) != "x" || int(p.ExtHeaders) != min(n, 255) {
			t.Errorf("%d headers: proto %d dport %d payload %q ext %d", n, p.Proto, p.DstPort, p.Payload, p.ExtHeaders)
		}
	}
}

// TestDecodeTruncated cuts every valid packet at every offset inside its
// headers and requires a clean failure; cuts inside the payload must decode
// with Short set, since a queue copy range produces exactly that.
func TestDecodeTruncated(t *testing.T) {
	for name, b := range pktbuild.Samples() {
		var full Packet
		if !Decode(b, &full) {
			t.Fatalf("%s: full packet invalid: %s", name, full.Invalid)
		}
		hdrEnd := len(b) - len(full.Payload)
		for i := range len(b) {
			var p Packet
			ok := Decode(b[:i], &p)
			switch {
			case i < hdrEnd && ok:
				t.Errorf("%s cut at %d (headers end at %d): Decode = true", name, i, hdrEnd)
			case i < hdrEnd && p.Invalid == ReasonNone:
				t.Errorf("%s cut at %d: no reason", name, i)
			case i >= hdrEnd && !ok:
				t.Errorf("%s cut at %d inside the payload: %s", name, i, p.Invalid)
			case i >= hdrEnd && (!p.Short || !bytes.Equal(p.Payload, full.Payload[:i-hdrEnd])):
				t.Errorf("%s cut at %d: Short %v Payload %q", name, i, p.Short, p.Payload)
			}
		}
	}
}

// TestDecodeResets checks that nothing of a previous packet survives in a
// reused Packet.
func TestDecodeResets(t *testing.T) {
	var p Packet
	Decode(pktbuild.Samples()["ipv6-tcp"], &p)
	Decode([]byte{0x45}, &p)
	if p.SrcPort != 0 || p.Src.IsValid() || p.Payload != nil || p.Invalid != ReasonTruncated || p.Family != 4 {
		t.Errorf("stale fields after reuse: %+v", p)
	}
}

func TestReasonString(t *testing.T) {
	for r := ReasonNone; r < numReasons; r++ {
		if s := r.String(); s == "" || s == "unknown reason" {
			t.Errorf("Reason(%d) has no name", r)
		}
	}
	if Reason(200).String() != "unknown reason" {
		t.Error("out-of-range reason")
	}
}

func TestPacketHelpers(t *testing.T) {
	var p Packet
	Decode(pktbuild.Samples()["ipv4-udp"], &p)
	if !p.HasPorts() || p.IsICMP() {
		t.Error("udp: HasPorts false or IsICMP true")
	}
	Decode(pktbuild.Samples()["ipv6-icmpv6"], &p)
	if p.HasPorts() || !p.IsICMP() {
		t.Error("icmpv6: HasPorts true or IsICMP false")
	}
	Decode(pktbuild.IPv4{Proto: ProtoTCP, FragOff: 16}.Build([]byte("x")), &p)
	if p.HasPorts() {
		t.Error("non-first fragment has ports")
	}
	if netip.AddrFrom4([4]byte{1, 2, 3, 4}).Is4() != true {
		t.Fatal("netip")
	}
}

func TestDecodeAllocs(t *testing.T) {
	for name, b := range pktbuild.Samples() {
		var p Packet
		if n := testing.AllocsPerRun(100, func() { Decode(b, &p) }); n != 0 {
			t.Errorf("%s: %v allocs per Decode", name, n)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	pk := pktbuild.Samples()
	for _, name := range []string{"ipv4-tcp", "ipv4-udp", "ipv4-icmp", "ipv4-sctp", "ipv4-frag", "ipv6-tcp", "ipv6-udp", "ipv6-icmpv6", "ipv6-sctp", "ipv6-ext-frag"} {
		buf := pk[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var p Packet
			for b.Loop() {
				if !Decode(buf, &p) {
					b.Fatal(p.Invalid)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}
