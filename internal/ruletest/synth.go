package ruletest

import (
	"encoding/binary"
	"net/netip"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/proto"
)

// synthPacket builds the first packet of a probe (a TCP SYN, an empty UDP
// datagram, an ICMP or ICMPv6 echo request with the port as identifier),
// for tracing a case the kernel decided without queueing a packet (rules
// mode kernel-first). nil when the endpoints are unknown or of mixed
// families, or for another protocol.
func synthPacket(src, dst netip.AddrPort, p uint8) []byte {
	if !src.Addr().IsValid() || !dst.Addr().IsValid() || src.Addr().Is4() != dst.Addr().Is4() {
		return nil
	}
	var l4 []byte
	switch p {
	case proto.TCP:
		l4 = pktbuild.TCP(src.Port(), dst.Port(), 0x02, nil, nil) // SYN
		binary.BigEndian.PutUint16(l4[14:], 64240)
	case proto.UDP:
		l4 = pktbuild.UDP(src.Port(), dst.Port(), nil)
	case proto.ICMP:
		l4 = pktbuild.ICMP(8, 0, src.Port(), 1, nil) // echo request
	case proto.ICMPv6:
		l4 = pktbuild.ICMP(128, 0, src.Port(), 1, nil)
	default:
		return nil
	}
	var pkt []byte
	if src.Addr().Is4() {
		pkt = pktbuild.IPv4{Proto: p, Src: src.Addr(), Dst: dst.Addr()}.Build(l4)
	} else {
		pkt = pktbuild.IPv6{Proto: p, Src: src.Addr(), Dst: dst.Addr()}.Build(l4)
	}
	pktbuild.SetChecksums(pkt)
	return pkt
}
