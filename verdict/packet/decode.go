package packet

import (
	"encoding/binary"
	"net/netip"
)

// Decode decodes the IP packet in b into p and reports whether it is valid.
// It resets p first, never allocates and never panics: malformed, truncated
// or hostile input sets p.Invalid to a Reason and returns false, with the
// fields decoded so far left in p (Family, addresses) for logging.
//
// Bytes after the IP total length (link-layer padding) are ignored. A
// buffer shorter than the total length, as a queue copy range produces, is
// accepted as long as every header fits; p.Short is then set and Payload
// holds the captured part only.
//
// Non-first fragments carry no transport header: Proto is set, ports are
// zero and Payload is nil.
func Decode(b []byte, p *Packet) bool {
	*p = Packet{}
	if len(b) == 0 {
		return p.fail(ReasonEmpty)
	}
	switch b[0] >> 4 {
	case 4:
		return decodeIPv4(b, p)
	case 6:
		return decodeIPv6(b, p)
	}
	return p.fail(ReasonBadVersion)
}

func (p *Packet) fail(r Reason) bool {
	p.Invalid = r
	return false
}

// decodeIPv4 decodes the IPv4 header (RFC 791 3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |  0
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |  4
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |  8
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          | 12
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        | 16
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    | 20
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Flags: bit 0 reserved, bit 1 DF, bit 2 MF. The fragment offset counts
// 8-byte units. The header checksum is not verified: the kernel's ip_rcv
// already dropped packets with a bad one before netfilter saw them.
func decodeIPv4(b []byte, p *Packet) bool {
	p.Family = 4
	if len(b) < ipv4HeaderLen {
		return p.fail(ReasonTruncated)
	}
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipv4HeaderLen {
		return p.fail(ReasonBadIHL)
	}
	if len(b) < ihl {
		return p.fail(ReasonTruncated)
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total == 0 && len(b) > maxIPv4Payload {
		// BIG TCP (GSO super-packets over 64 KiB) zeroes the total length.
		total = len(b)
	}
	if total < ihl {
		return p.fail(ReasonBadLength)
	}
	if total < len(b) {
		b = b[:total]
	} else if total > len(b) {
		p.Short = true
	}
	p.TOS = b[1]
	p.FragID = uint32(binary.BigEndian.Uint16(b[4:6]))
	frag := binary.BigEndian.Uint16(b[6:8])
	p.DontFrag = frag&0x4000 != 0
	p.MoreFrags = frag&0x2000 != 0
	p.FragOffset = (frag & 0x1fff) << 3
	p.Frag = p.MoreFrags || p.FragOffset != 0
	p.TTL = b[8]
	p.Proto = b[9]
	p.IPLen = total
	p.L4Off = ihl
	if int(p.FragOffset)+total-ihl > maxIPv4Payload {
		return p.fail(ReasonBadFragment) // reassembles past 64 KiB: "ping of death"
	}
	if ihl > ipv4HeaderLen {
		p.IPOptions = true
		if !validIPv4Options(b[ipv4HeaderLen:ihl]) {
			return p.fail(ReasonBadIPOptions)
		}
	}
	return decodeL4(b, ihl, total-ihl, p)
}

// validIPv4Options walks the option list (RFC 791 3.1): End of Option List
// (0) ends it, No Operation (1) is one byte, every other option is
// type, length (>= 2, counting both), data.
func validIPv4Options(o []byte) bool {
	for i := 0; i < len(o); {
		switch o[i] {
		case 0:
			return true
		case 1:
			i++
			continue
		}
		if i+1 >= len(o) {
			return false
		}
		l := int(o[i+1])
		if l < 2 || i+l > len(o) {
			return false
		}
		i += l
	}
	return true
}

// decodeIPv6 decodes the fixed IPv6 header (RFC 8200 3) and walks the
// extension headers that follow it:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |  0
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |  4
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Source Address (16 bytes)                |  8
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Destination Address (16 bytes)              | 24
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func decodeIPv6(b []byte, p *Packet) bool {
	p.Family = 6
	if len(b) < ipv6HeaderLen {
		return p.fail(ReasonTruncated)
	}
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	total := ipv6HeaderLen + int(binary.BigEndian.Uint16(b[4:6]))
	if total == ipv6HeaderLen && len(b) > ipv6HeaderLen+maxIPv4Payload {
		// Jumbogram (RFC 2675) or BIG TCP super-packet: length 0 in the header.
		total = len(b)
	}
	if total < len(b) {
		b = b[:total]
	} else if total > len(b) {
		p.Short = true
	}
	p.TOS = byte(binary.BigEndian.Uint16(b[0:2]) >> 4)
	p.TTL = b[7]
	p.IPLen = total
	off, next, ok := walkIPv6Ext(b, b[6], p)
	if !ok {
		return false
	}
	p.Proto = next
	p.L4Off = off
	if int(p.FragOffset)+total-off > maxIPv4Payload && p.Frag {
		return p.fail(ReasonBadFragment) // reassembles past 64 KiB
	}
	return decodeL4(b, off, total-off, p)
}

// walkIPv6Ext walks the extension headers starting at offset 40 and returns
// the offset and number of the upper-layer header. The chain may be as long
// as the packet holds (each header takes at least 8 bytes, so the walk ends):
// the kernel delivers such packets, and stopping early would leave the
// transport header, and every port or L7 rule, unseen.
// Layouts (RFC 8200 4.3-4.6, RFC 4302 2):
//
//	hop-by-hop, routing, destination options: next(1) len(1) ... ; size (len+1)*8
//	fragment: next(1) reserved(1) offset(13 bits) res(2) M(1) identification(4); size 8
//	AH:       next(1) len(1) ... ; size (len+2)*4
//
// The walk stops at a non-first fragment, whose upper-layer header lives in
// the first fragment, and at ESP, whose contents are encrypted.
func walkIPv6Ext(b []byte, next uint8, p *Packet) (int, uint8, bool) {
	off := ipv6HeaderLen
	seenFrag := false
	for n := 0; ; n++ {
		var size int
		switch next {
		case ProtoHopByHop, ProtoRouting, ProtoDstOpts, ProtoAH:
			if next == ProtoHopByHop && n != 0 {
				return 0, 0, p.fail(ReasonBadExtHeader) // RFC 8200 4.1: only right after the IPv6 header
			}
			if len(b) < off+2 {
				return 0, 0, p.fail(ReasonTruncated)
			}
			if next == ProtoAH {
				size = (int(b[off+1]) + 2) * 4
			} else {
				size = (int(b[off+1]) + 1) * 8
			}
		case ProtoFragment:
			if seenFrag {
				return 0, 0, p.fail(ReasonBadExtHeader) // a second fragment header
			}
			seenFrag = true
			size = 8
			if len(b) < off+size {
				return 0, 0, p.fail(ReasonTruncated)
			}
			fo := binary.BigEndian.Uint16(b[off+2 : off+4])
			p.FragOffset = fo &^ 7
			p.MoreFrags = fo&1 != 0
			p.Frag = p.MoreFrags || p.FragOffset != 0
			p.FragID = binary.BigEndian.Uint32(b[off+4 : off+8])
		default:
			return off, next, true
		}
		if len(b) < off+size {
			return 0, 0, p.fail(ReasonTruncated)
		}
		next = b[off]
		off += size
		if p.ExtHeaders < 255 {
			p.ExtHeaders++
		}
		if p.FragOffset != 0 {
			return off, next, true
		}
	}
}
