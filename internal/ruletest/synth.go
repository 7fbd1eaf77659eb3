package ruletest

import (
	"encoding/binary"
	"net/netip"
)

// synthPacket builds the first packet of a probe (a TCP SYN, an empty UDP
// datagram, an ICMP or ICMPv6 echo request with the port as identifier),
// for tracing a case the kernel decided without queueing a packet (rules
// mode kernel-first). nil when the endpoints are unknown or of mixed
// families, or for another protocol.
func synthPacket(src, dst netip.AddrPort, proto uint8) []byte {
	if !src.Addr().IsValid() || !dst.Addr().IsValid() || src.Addr().Is4() != dst.Addr().Is4() {
		return nil
	}
	var l4 []byte
	switch proto {
	case 6:
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint16(l4[0:], src.Port())
		binary.BigEndian.PutUint16(l4[2:], dst.Port())
		l4[12], l4[13] = 5<<4, 0x02 // data offset 5 words, SYN
		binary.BigEndian.PutUint16(l4[14:], 64240)
	case 17:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], src.Port())
		binary.BigEndian.PutUint16(l4[2:], dst.Port())
		binary.BigEndian.PutUint16(l4[4:], 8)
	case 1, 58:
		l4 = make([]byte, 8)
		l4[0] = 8 // echo request
		if proto == 58 {
			l4[0] = 128
		}
		binary.BigEndian.PutUint16(l4[4:], src.Port())
		l4[7] = 1
	default:
		return nil
	}
	if src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(l4))
		ip[0], ip[8], ip[9] = 0x45, 64, proto
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[i:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		return append(ip, l4...)
	}
	ip := make([]byte, 40, 40+len(l4))
	ip[0], ip[6], ip[7] = 0x60, proto, 64
	binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(ip, l4...)
}
