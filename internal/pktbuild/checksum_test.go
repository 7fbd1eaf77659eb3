package pktbuild

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/qguard/qguard/proto"
)

// The IPv4 header of the well-known worked example (Wikipedia, "Internet
// checksum"): its checksum is 0xb861.
func TestChecksumVector(t *testing.T) {
	h := []byte{0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7}
	if c := ^Checksum(h, 0); c != 0xb861 {
		t.Errorf("checksum %#04x, want 0xb861", c)
	}
	if c := Checksum([]byte{1, 2, 3}, 0); c != 0x0402 {
		t.Errorf("odd length: %#04x, want 0x0402", c)
	}
}

// verifies reports whether the sum over b and the pseudo-header is 0xffff,
// as a receiver checks it.
func verifies(b []byte, initial uint16) bool { return Checksum(b, initial) == 0xffff }

func TestSetChecksums(t *testing.T) {
	c4, s4 := netip.MustParseAddr("198.18.1.2"), netip.MustParseAddr("198.18.2.2")
	c6, s6 := netip.MustParseAddr("2001:db8:1::2"), netip.MustParseAddr("2001:db8:2::2")
	hello := []byte("hello")
	for name, tc := range map[string]struct {
		pkt      []byte
		l4, csum int // upper layer offset, checksum offset in it
		p        uint8
		v6       bool
	}{
		"ipv4-udp":    {IPv4{Proto: proto.UDP}.Build(UDP(1, 53, hello)), 20, 6, proto.UDP, false},
		"ipv4-tcp":    {IPv4{Proto: proto.TCP, Opts: []byte{1, 1, 1, 0}}.Build(TCP(40000, 443, 2, nil, hello)), 24, 16, proto.TCP, false},
		"ipv4-icmp":   {IPv4{Proto: proto.ICMP}.Build(ICMP(8, 0, 1, 2, hello)), 20, 2, proto.ICMP, false},
		"ipv6-udp":    {IPv6{Proto: proto.UDP}.Build(UDP(1, 53, hello)), 40, 6, proto.UDP, true},
		"ipv6-icmpv6": {IPv6{Proto: proto.ICMPv6}.Build(ICMP(128, 0, 1, 2, hello)), 40, 2, proto.ICMPv6, true},
		"ipv6-ext":    {IPv6{Proto: proto.TCP, Exts: []Ext{{0, Opts6(1)}, {fragmentHeader, Frag6(0, false, 9)}, {proto.AH, make([]byte, 10)}, {60, Opts6(2)}}}.Build(TCP(1, 2, 2, nil, hello)), 40 + 8 + 8 + 12 + 16, 16, proto.TCP, true},
	} {
		if !SetChecksums(tc.pkt) {
			t.Errorf("%s: not set", name)
			continue
		}
		l4 := tc.pkt[tc.l4:]
		if binary.BigEndian.Uint16(l4[tc.csum:]) == 0 {
			t.Errorf("%s: checksum left zero", name)
		}
		var ph uint16
		switch {
		case tc.v6:
			ph = PseudoHeader(c6, s6, tc.p, len(l4))
		case tc.p != proto.ICMP:
			ph = PseudoHeader(c4, s4, tc.p, len(l4))
		}
		if !verifies(l4, ph) {
			t.Errorf("%s: upper-layer checksum does not verify", name)
		}
		if !tc.v6 && !verifies(tc.pkt[:int(tc.pkt[0]&15)*4], 0) {
			t.Errorf("%s: IPv4 header checksum does not verify", name)
		}
	}
	for name, pkt := range map[string][]byte{
		"later fragment": IPv4{Proto: proto.UDP, FragOff: 8}.Build(UDP(1, 2, hello)),
		"truncated":      IPv6{Proto: proto.UDP}.Build(UDP(1, 2, hello))[:44],
		"empty":          nil,
	} {
		if SetChecksums(pkt) {
			t.Errorf("%s: checksums set", name)
		}
	}
	pkt := IPv6{Proto: proto.UDP}.Build(UDP(1, 2, hello))
	if n := testing.AllocsPerRun(100, func() { SetChecksums(pkt) }); n != 0 {
		t.Errorf("SetChecksums allocates %v times", n)
	}
}

func TestUDP6(t *testing.T) {
	c6, s6 := netip.MustParseAddr("2001:db8:1::2"), netip.MustParseAddr("2001:db8:2::2")
	hello := []byte("hello")
	for _, n := range []int{0, 1, 12} {
		pkt := UDP6(c6, s6, 1000, 53, n, hello)
		off := 40 + 8*n
		if len(pkt) != off+8+len(hello) || int(binary.BigEndian.Uint16(pkt[4:])) != len(pkt)-40 {
			t.Fatalf("%d headers: %d bytes, payload length %d", n, len(pkt), binary.BigEndian.Uint16(pkt[4:]))
		}
		next := pkt[6]
		for i := 0; i < n; i++ {
			if next != 60 || pkt[40+8*i+1] != 0 {
				t.Fatalf("%d headers: header %d is type %d, length %d", n, i, next, pkt[40+8*i+1])
			}
			next = pkt[40+8*i]
		}
		l4 := pkt[off:]
		if next != proto.UDP || binary.BigEndian.Uint16(l4[2:]) != 53 || string(l4[8:]) != "hello" {
			t.Fatalf("%d headers: next %d, udp % x", n, next, l4)
		}
		if !verifies(l4, PseudoHeader(c6, s6, proto.UDP, len(l4))) {
			t.Errorf("%d headers: UDP checksum does not verify", n)
		}
	}
}
