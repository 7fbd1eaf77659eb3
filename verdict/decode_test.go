package verdict

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
)

func TestDecodeValid(t *testing.T) {
	hello := []byte("hello")
	mss := []byte{2, 4, 0x05, 0xb4} // TCP option: MSS 1460
	tests := []struct {
		name string
		b    []byte
		want Packet // Payload compared separately; zero ports etc. must match
	}{
		{"ipv4 tcp syn", ip4{proto: ProtoTCP, df: true, tos: 0x10}.build(tcpSeg(40000, 443, TCPSyn, mss, nil)),
			Packet{Family: 4, Proto: ProtoTCP, Src: client4, Dst: server4, SrcPort: 40000, DstPort: 443, TCPFlags: TCPSyn,
				TTL: 64, IPLen: 44, L4Off: 20, TOS: 0x10, DontFrag: true, TCPSeq: 1000, TCPAck: 2000, TCPWindow: 65535, TCPHdrLen: 24}},
		{"ipv4 tcp payload", ip4{proto: ProtoTCP}.build(tcpSeg(1, 80, TCPAck|TCPPsh, nil, hello)),
			Packet{Family: 4, Proto: ProtoTCP, Src: client4, Dst: server4, SrcPort: 1, DstPort: 80, TCPFlags: TCPAck | TCPPsh,
				TTL: 64, IPLen: 45, L4Off: 20, TCPSeq: 1000, TCPAck: 2000, TCPWindow: 65535, TCPHdrLen: 20, Payload: hello}},
		{"ipv4 options udp", ip4{proto: ProtoUDP, opts: []byte{1, 1, 7, 3, 0, 0, 0, 0}, id: 7}.build(udpDgram(5353, 53, hello)),
			Packet{Family: 4, Proto: ProtoUDP, Src: client4, Dst: server4, SrcPort: 5353, DstPort: 53, TTL: 64, IPLen: 41,
				L4Off: 28, IPOptions: true, FragID: 7, Payload: hello}},
		{"ipv4 icmp echo", ip4{proto: ProtoICMP, ttl: 1}.build(icmpMsg(8, 0, 0x1234, 9, hello)),
			Packet{Family: 4, Proto: ProtoICMP, Src: client4, Dst: server4, ICMPType: 8, TTL: 1, IPLen: 33, L4Off: 20,
				ICMPID: 0x1234, ICMPSeq: 9, Payload: hello}},
		{"ipv4 icmp unreachable", ip4{proto: ProtoICMP}.build(icmpMsg(3, 3, 0, 0, nil)),
			Packet{Family: 4, Proto: ProtoICMP, Src: client4, Dst: server4, ICMPType: 3, ICMPCode: 3, TTL: 64, IPLen: 28, L4Off: 20}},
		{"ipv4 sctp", ip4{proto: ProtoSCTP}.build(sctpPkt(3868, 3868, 0xdeadbeef, hello)),
			Packet{Family: 4, Proto: ProtoSCTP, Src: client4, Dst: server4, SrcPort: 3868, DstPort: 3868, TTL: 64, IPLen: 37,
				L4Off: 20, SCTPTag: 0xdeadbeef, Payload: hello}},
		{"ipv4 gre", ip4{proto: 47}.build(hello),
			Packet{Family: 4, Proto: 47, Src: client4, Dst: server4, TTL: 64, IPLen: 25, L4Off: 20, Payload: hello}},
		{"ipv4 first fragment", ip4{proto: ProtoUDP, mf: true, id: 99}.build(append(udpDgram(1, 2, hello), 'x')),
			Packet{Family: 4, Proto: ProtoUDP, Src: client4, Dst: server4, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 34, L4Off: 20,
				Frag: true, MoreFrags: true, FragID: 99, Payload: append(append([]byte{}, hello...), 'x')}},
		{"ipv4 last fragment", ip4{proto: ProtoTCP, fragOff: 1480, id: 99}.build(hello),
			Packet{Family: 4, Proto: ProtoTCP, Src: client4, Dst: server4, TTL: 64, IPLen: 25, L4Off: 20,
				Frag: true, FragOffset: 1480, FragID: 99}},
		{"ipv4 link padding", append(ip4{proto: ProtoUDP}.build(udpDgram(1, 2, nil)), 0, 0, 0, 0, 0, 0),
			Packet{Family: 4, Proto: ProtoUDP, Src: client4, Dst: server4, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 28, L4Off: 20}},
		{"ipv4 short capture", ip4{proto: ProtoUDP, total: 1000}.build(udpDgram(1, 2, hello)),
			Packet{Family: 4, Proto: ProtoUDP, Src: client4, Dst: server4, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 1000, L4Off: 20,
				Short: true, Payload: hello}},
		{"ipv6 tcp", ip6{proto: ProtoTCP, tc: 0xb8}.build(tcpSeg(40000, 443, TCPSyn|TCPEce|TCPCwr, nil, nil)),
			Packet{Family: 6, Proto: ProtoTCP, Src: client6, Dst: server6, SrcPort: 40000, DstPort: 443, TCPFlags: TCPSyn | TCPEce | TCPCwr,
				TTL: 64, IPLen: 60, L4Off: 40, TOS: 0xb8, TCPSeq: 1000, TCPAck: 2000, TCPWindow: 65535, TCPHdrLen: 20}},
		{"ipv6 udp", ip6{proto: ProtoUDP, hop: 255}.build(udpDgram(53, 5353, hello)),
			Packet{Family: 6, Proto: ProtoUDP, Src: client6, Dst: server6, SrcPort: 53, DstPort: 5353, TTL: 255, IPLen: 53, L4Off: 40, Payload: hello}},
		{"ipv6 icmpv6 echo", ip6{proto: ProtoICMPv6}.build(icmpMsg(128, 0, 7, 8, nil)),
			Packet{Family: 6, Proto: ProtoICMPv6, Src: client6, Dst: server6, ICMPType: 128, TTL: 64, IPLen: 48, L4Off: 40, ICMPID: 7, ICMPSeq: 8}},
		{"ipv6 ext chain", ip6{proto: ProtoUDP, exts: []ext{{ProtoHopByHop, opts6(1)}, {ProtoDstOpts, opts6(2)},
			{ProtoRouting, []byte{4, 0, 0, 0, 0, 0}}, {ProtoAH, make([]byte, 14)}, {ProtoDstOpts, opts6(1)}}}.build(udpDgram(1, 2, hello)),
			Packet{Family: 6, Proto: ProtoUDP, Src: client6, Dst: server6, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 109,
				L4Off: 96, ExtHeaders: 5, Payload: hello}},
		{"ipv6 first fragment", ip6{proto: ProtoTCP, exts: []ext{{ProtoFragment, frag6(0, true, 77)}}}.build(tcpSeg(1, 2, TCPAck, nil, hello)),
			Packet{Family: 6, Proto: ProtoTCP, Src: client6, Dst: server6, SrcPort: 1, DstPort: 2, TCPFlags: TCPAck, TTL: 64, IPLen: 73,
				L4Off: 48, ExtHeaders: 1, Frag: true, MoreFrags: true, FragID: 77, TCPSeq: 1000, TCPAck: 2000, TCPWindow: 65535, TCPHdrLen: 20, Payload: hello}},
		{"ipv6 later fragment", ip6{proto: ProtoTCP, exts: []ext{{ProtoHopByHop, opts6(1)}, {ProtoFragment, frag6(1448, false, 77)}, {ProtoDstOpts, opts6(1)}}}.build(hello),
			Packet{Family: 6, Proto: ProtoDstOpts, Src: client6, Dst: server6, TTL: 64, IPLen: 69, L4Off: 56, ExtHeaders: 2,
				Frag: true, FragOffset: 1448, FragID: 77}},
		{"ipv6 atomic fragment", ip6{proto: ProtoUDP, exts: []ext{{ProtoFragment, frag6(0, false, 5)}}}.build(udpDgram(1, 2, nil)),
			Packet{Family: 6, Proto: ProtoUDP, Src: client6, Dst: server6, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 56, L4Off: 48,
				ExtHeaders: 1, FragID: 5}},
		{"ipv6 esp", ip6{proto: ProtoESP, exts: []ext{{ProtoDstOpts, opts6(1)}}}.build(hello),
			Packet{Family: 6, Proto: ProtoESP, Src: client6, Dst: server6, TTL: 64, IPLen: 53, L4Off: 48, ExtHeaders: 1, Payload: hello}},
		{"ipv6 no next header", ip6{proto: ProtoNoNext}.build(nil),
			Packet{Family: 6, Proto: ProtoNoNext, Src: client6, Dst: server6, TTL: 64, IPLen: 40, L4Off: 40}},
		{"ipv6 sctp", ip6{proto: ProtoSCTP}.build(sctpPkt(9, 10, 1, nil)),
			Packet{Family: 6, Proto: ProtoSCTP, Src: client6, Dst: server6, SrcPort: 9, DstPort: 10, TTL: 64, IPLen: 52, L4Off: 40, SCTPTag: 1}},
		{"ipv4 dccp", ip4{proto: ProtoDCCP}.build(append([]byte{0, 1, 0, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, hello...)),
			Packet{Family: 4, Proto: ProtoDCCP, Src: client4, Dst: server4, SrcPort: 1, DstPort: 2, TTL: 64, IPLen: 41, L4Off: 20, Payload: hello}},
		{"ipv6 udplite", ip6{proto: ProtoUDPLite}.build(udpDgram(3, 4, hello)),
			Packet{Family: 6, Proto: ProtoUDPLite, Src: client6, Dst: server6, SrcPort: 3, DstPort: 4, TTL: 64, IPLen: 53, L4Off: 40, Payload: hello}},
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
	tcp := tcpSeg(1, 2, TCPSyn, nil, nil)
	badOff := tcpSeg(1, 2, TCPSyn, nil, nil)
	badOff[12] = 4 << 4
	longOff := tcpSeg(1, 2, TCPSyn, nil, nil)
	longOff[12] = 15 << 4
	badUDP := udpDgram(1, 2, hello)
	badUDP[5] = 200
	tinyUDP := udpDgram(1, 2, hello)
	tinyUDP[4], tinyUDP[5] = 0, 4
	badIHL := ip4{proto: ProtoTCP}.build(tcp)
	badIHL[0] = 0x44
	tests := []struct {
		name string
		b    []byte
		want Reason
	}{
		{"empty", nil, ReasonEmpty},
		{"version 5", []byte{0x50, 0, 0, 20}, ReasonBadVersion},
		{"ipv4 ihl 4", badIHL, ReasonBadIHL},
		{"ipv4 total below ihl", ip4{proto: ProtoTCP, total: 19}.build(tcp), ReasonBadLength},
		{"ipv4 option length 0", ip4{proto: ProtoTCP, opts: []byte{7, 0, 0, 0}}.build(tcp), ReasonBadIPOptions},
		{"ipv4 option past header", ip4{proto: ProtoTCP, opts: []byte{1, 7, 9, 0}}.build(tcp), ReasonBadIPOptions},
		{"ipv4 option type only", ip4{proto: ProtoTCP, opts: []byte{1, 1, 1, 7}}.build(tcp), ReasonBadIPOptions},
		{"ipv4 ping of death", ip4{proto: ProtoICMP, fragOff: 65528}.build([]byte("12345678")), ReasonBadFragment},
		{"ipv4 tcp fragment offset 8", ip4{proto: ProtoTCP, fragOff: 8}.build(hello), ReasonBadFragment},
		{"ipv4 tiny tcp fragment", ip4{proto: ProtoTCP, mf: true}.build(tcp[:16]), ReasonTinyFragment},
		{"ipv4 tiny tcp options fragment", ip4{proto: ProtoTCP, mf: true}.build(longOff[:20]), ReasonTinyFragment},
		{"ipv4 tcp offset 4", ip4{proto: ProtoTCP}.build(badOff), ReasonBadTCPOffset},
		{"ipv4 tcp offset past packet", ip4{proto: ProtoTCP}.build(longOff), ReasonBadTCPOffset},
		{"ipv4 tcp too short", ip4{proto: ProtoTCP}.build(tcp[:12]), ReasonBadLength},
		{"ipv4 udp length past ip", ip4{proto: ProtoUDP}.build(badUDP), ReasonBadUDPLength},
		{"ipv4 udp length 4", ip4{proto: ProtoUDP}.build(tinyUDP), ReasonBadUDPLength},
		{"ipv4 icmp short", ip4{proto: ProtoICMP}.build([]byte{8, 0, 0, 0}), ReasonTruncated},
		{"ipv4 sctp short", ip4{proto: ProtoSCTP}.build(make([]byte, 11)), ReasonTruncated},
		{"ipv4 dccp offset 2", ip4{proto: ProtoDCCP}.build([]byte{0, 1, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0}), ReasonBadDCCPOffset},
		{"ipv4 dccp offset past packet", ip4{proto: ProtoDCCP}.build([]byte{0, 1, 0, 2, 9, 0, 0, 0, 0, 0, 0, 0}), ReasonBadDCCPOffset},
		{"ipv4 dccp short", ip4{proto: ProtoDCCP}.build([]byte{0, 1, 0, 2}), ReasonTruncated},
		{"ipv6 hop-by-hop not first", ip6{proto: ProtoTCP, exts: []ext{{ProtoDstOpts, opts6(1)}, {ProtoHopByHop, opts6(1)}}}.build(tcp), ReasonBadExtHeader},
		{"ipv6 two fragment headers", ip6{proto: ProtoTCP, exts: []ext{{ProtoFragment, frag6(0, true, 1)}, {ProtoFragment, frag6(0, true, 1)}}}.build(tcp), ReasonBadExtHeader},
		{"ipv6 ext past payload length", ip6{proto: ProtoTCP, exts: []ext{{ProtoDstOpts, opts6(4)}}, plen: 16}.build(tcp), ReasonTruncated},
		{"ipv6 tiny fragment", ip6{proto: ProtoTCP, exts: []ext{{ProtoFragment, frag6(0, true, 1)}}}.build(tcp[:8]), ReasonTinyFragment},
		{"ipv6 fragment past 64k", ip6{proto: ProtoUDP, exts: []ext{{ProtoFragment, frag6(65528, false, 1)}}}.build([]byte("12345678")), ReasonBadFragment},
		{"ipv6 udp length past ip", ip6{proto: ProtoUDP}.build(badUDP), ReasonBadUDPLength},
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
		exts := make([]ext, n)
		for i := range exts {
			exts[i] = ext{ProtoDstOpts, opts6(1)}
		}
		exts[0] = ext{ProtoHopByHop, opts6(1)}
		b := ip6{proto: ProtoUDP, exts: exts}.build(udpDgram(1, 9002, []byte("x")))
		var p Packet
		if !Decode(b, &p) {
			t.Fatalf("%d headers: %s", n, p.Invalid)
		}
		if p.Proto != ProtoUDP || p.DstPort != 9002 || string(p.Payload) != "x" || int(p.ExtHeaders) != min(n, 255) {
			t.Errorf("%d headers: proto %d dport %d payload %q ext %d", n, p.Proto, p.DstPort, p.Payload, p.ExtHeaders)
		}
	}
}

// validPackets returns one packet per protocol and header layout, shared by
// the truncation, allocation and fuzz tests.
func validPackets() map[string][]byte {
	hello := []byte("hello")
	return map[string][]byte{
		"ipv4-tcp":      ip4{proto: ProtoTCP}.build(tcpSeg(40000, 443, TCPSyn, []byte{2, 4, 5, 0xb4}, hello)),
		"ipv4-udp":      ip4{proto: ProtoUDP, opts: []byte{7, 3, 0, 0}}.build(udpDgram(1, 53, hello)),
		"ipv4-icmp":     ip4{proto: ProtoICMP}.build(icmpMsg(8, 0, 1, 2, hello)),
		"ipv4-sctp":     ip4{proto: ProtoSCTP}.build(sctpPkt(1, 2, 3, hello)),
		"ipv4-frag":     ip4{proto: ProtoUDP, mf: true}.build(udpDgram(1, 2, hello)),
		"ipv6-tcp":      ip6{proto: ProtoTCP}.build(tcpSeg(40000, 443, TCPSyn, nil, hello)),
		"ipv6-udp":      ip6{proto: ProtoUDP}.build(udpDgram(1, 53, hello)),
		"ipv6-icmpv6":   ip6{proto: ProtoICMPv6}.build(icmpMsg(128, 0, 1, 2, hello)),
		"ipv6-sctp":     ip6{proto: ProtoSCTP}.build(sctpPkt(1, 2, 3, hello)),
		"ipv6-ext-frag": ip6{proto: ProtoUDP, exts: []ext{{ProtoHopByHop, opts6(1)}, {ProtoFragment, frag6(0, true, 9)}, {ProtoAH, make([]byte, 10)}}}.build(udpDgram(1, 2, hello)),
	}
}

// TestDecodeTruncated cuts every valid packet at every offset inside its
// headers and requires a clean failure; cuts inside the payload must decode
// with Short set, since a queue copy range produces exactly that.
func TestDecodeTruncated(t *testing.T) {
	for name, b := range validPackets() {
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
	Decode(validPackets()["ipv6-tcp"], &p)
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

func TestL7StatusString(t *testing.T) {
	for s := L7Unset; s < numL7Status; s++ {
		if n := s.String(); n == "" || n == "unknown status" {
			t.Errorf("L7Status(%d) has no name", s)
		}
	}
	if L7Status(99).String() != "unknown status" {
		t.Error("out-of-range status")
	}
}

func TestPacketHelpers(t *testing.T) {
	var p Packet
	Decode(validPackets()["ipv4-udp"], &p)
	if !p.HasPorts() || p.IsICMP() {
		t.Error("udp: HasPorts false or IsICMP true")
	}
	Decode(validPackets()["ipv6-icmpv6"], &p)
	if p.HasPorts() || !p.IsICMP() {
		t.Error("icmpv6: HasPorts true or IsICMP false")
	}
	Decode(ip4{proto: ProtoTCP, fragOff: 16}.build([]byte("x")), &p)
	if p.HasPorts() {
		t.Error("non-first fragment has ports")
	}
	if netip.AddrFrom4([4]byte{1, 2, 3, 4}).Is4() != true {
		t.Fatal("netip")
	}
}

func TestDecodeAllocs(t *testing.T) {
	for name, b := range validPackets() {
		var p Packet
		if n := testing.AllocsPerRun(100, func() { Decode(b, &p) }); n != 0 {
			t.Errorf("%s: %v allocs per Decode", name, n)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	pk := validPackets()
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
