package pktbuild

import (
	"encoding/binary"
	"net/netip"

	"github.com/qguard/qguard/proto"
)

// Checksum adds b as big-endian 16-bit words to initial (an odd last byte
// is padded with zero) and folds the carries: the one's-complement sum of
// RFC 1071, not yet complemented. Chain calls by passing one's result as
// the next's initial.
func Checksum(b []byte, initial uint16) uint16 {
	acc := uint32(initial)
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// PseudoHeader is the sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 9293
// 3.1, RFC 8200 8.1): the addresses, the protocol and the upper-layer
// length. It does not allocate.
func PseudoHeader(src, dst netip.Addr, protocol uint8, length int) uint16 {
	var s uint16
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		s = Checksum(b[:], Checksum(a[:], 0))
	} else {
		a, b := src.As16(), dst.As16()
		s = Checksum(b[:], Checksum(a[:], 0))
	}
	var tail [8]byte
	binary.BigEndian.PutUint32(tail[0:], uint32(length))
	tail[7] = protocol
	return Checksum(tail[:], s)
}

// SetChecksums fills in the IPv4 header checksum and the TCP, UDP, ICMP or
// ICMPv6 checksum of the IP packet pkt, walking IPv6 extension headers to
// the upper layer. It returns false, changing nothing more, when the
// packet is too short for what its headers say or is a fragment after the
// first (whose upper layer is not all there). It does not allocate.
func SetChecksums(pkt []byte) bool {
	if len(pkt) < 1 {
		return false
	}
	var src, dst netip.Addr
	var next uint8
	var off int
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl {
			return false
		}
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:], ^Checksum(pkt[:ihl], 0))
		if binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0 {
			return false
		}
		src, dst = netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		next, off = pkt[9], ihl
	case 6:
		if len(pkt) < 40 {
			return false
		}
		src, dst = netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		next, off = pkt[6], 40
		for isExt(next) {
			if len(pkt) < off+8 {
				return false
			}
			n := int(pkt[off+1]+1) * 8
			switch next {
			case proto.AH:
				n = int(pkt[off+1]+2) * 4
			case fragmentHeader:
				if binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 != 0 {
					return false
				}
				n = 8
			}
			next, off = pkt[off], off+n
		}
		if len(pkt) < off {
			return false
		}
	default:
		return false
	}
	return setL4(pkt[off:], src, dst, next)
}

func isExt(p uint8) bool {
	switch p {
	case 0, 43, fragmentHeader, proto.AH, dstOptsHeader:
		return true
	}
	return false
}

// setL4 writes the checksum of the upper-layer segment l4.
func setL4(l4 []byte, src, dst netip.Addr, p uint8) bool {
	var i int
	switch p {
	case proto.TCP:
		i = 16
	case proto.UDP:
		i = 6
	case proto.ICMP, proto.ICMPv6:
		i = 2
	default:
		return true // no checksum of ours to set
	}
	if len(l4) < i+2 {
		return false
	}
	l4[i], l4[i+1] = 0, 0
	var s uint16
	if p != proto.ICMP { // ICMPv4 alone has no pseudo-header
		s = PseudoHeader(src, dst, p, len(l4))
	}
	c := ^Checksum(l4, s)
	if c == 0 && p == proto.UDP {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(l4[i:], c)
	return true
}
