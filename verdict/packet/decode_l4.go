package packet

import "encoding/binary"

// decodeL4 decodes the transport header at b[off:]. l4len is the transport
// length the IP header claims; the captured bytes may be fewer (p.Short).
func decodeL4(b []byte, off, l4len int, p *Packet) bool {
	if p.FragOffset != 0 {
		if p.Proto == ProtoTCP && p.FragOffset == 8 {
			// RFC 1858 3.2: offset 1 rewrites the TCP flags of the first fragment.
			return p.fail(ReasonBadFragment)
		}
		return true
	}
	l4 := b[off:]
	switch p.Proto {
	case ProtoTCP:
		return decodeTCP(l4, l4len, p)
	case ProtoUDP, ProtoUDPLite:
		return decodeUDP(l4, l4len, p)
	case ProtoICMP, ProtoICMPv6:
		return decodeICMP(l4, p)
	case ProtoSCTP:
		return decodeSCTP(l4, p)
	case ProtoDCCP:
		return decodeDCCP(l4, p)
	case ProtoNoNext:
		return true
	}
	p.Payload = l4
	return true
}

// short fails a transport header that does not fit: a first fragment that
// cannot hold it is a tiny-fragment attack (RFC 1858), anything else is
// truncated.
func (p *Packet) short() bool {
	if p.MoreFrags && !p.Short {
		return p.fail(ReasonTinyFragment)
	}
	return p.fail(ReasonTruncated)
}

// decodeTCP decodes the TCP header (RFC 9293 3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |  0
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |  4
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |  8
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             | 12
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        | 16
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    | 20
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func decodeTCP(l4 []byte, l4len int, p *Packet) bool {
	if len(l4) < tcpHeaderLen {
		if l4len < tcpHeaderLen && !p.MoreFrags {
			return p.fail(ReasonBadLength)
		}
		return p.short()
	}
	p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
	p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	p.TCPSeq = binary.BigEndian.Uint32(l4[4:8])
	p.TCPAck = binary.BigEndian.Uint32(l4[8:12])
	p.TCPFlags = l4[13]
	p.TCPWindow = binary.BigEndian.Uint16(l4[14:16])
	doff := int(l4[12]>>4) * 4
	if doff < tcpHeaderLen || (doff > l4len && !p.MoreFrags) {
		return p.fail(ReasonBadTCPOffset)
	}
	if doff > len(l4) {
		return p.short()
	}
	p.TCPHdrLen = uint8(doff)
	p.Payload = l4[doff:]
	return true
}

// decodeUDP decodes the UDP header (RFC 768); UDP-Lite (RFC 3828) has the
// same layout with a checksum coverage in place of the length:
//
//	 0      7 8     15 16    23 24    31
//	+--------+--------+--------+--------+
//	|   Source Port   | Destination Port|  0
//	+--------+--------+--------+--------+
//	|     Length      |    Checksum     |  4
//	+--------+--------+--------+--------+
func decodeUDP(l4 []byte, l4len int, p *Packet) bool {
	if len(l4) < udpHeaderLen {
		if l4len < udpHeaderLen && !p.MoreFrags {
			return p.fail(ReasonBadLength)
		}
		return p.short()
	}
	p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
	p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	end := len(l4)
	if p.Proto == ProtoUDP && !p.Frag {
		ulen := int(binary.BigEndian.Uint16(l4[4:6]))
		if ulen == 0 && l4len > maxIPv4Payload {
			ulen = l4len // IPv6 jumbogram (RFC 2675 4)
		}
		if ulen < udpHeaderLen || ulen > l4len {
			return p.fail(ReasonBadUDPLength)
		}
		end = min(ulen, end)
	}
	p.Payload = l4[udpHeaderLen:end]
	return true
}

// decodeICMP decodes the 8-byte header shared by ICMP (RFC 792) and ICMPv6
// (RFC 4443 2.1); echo request and reply carry an identifier and sequence:
//
//	 0      7 8     15 16    23 24    31
//	+--------+--------+--------+--------+
//	|  Type  |  Code  |    Checksum     |  0
//	+--------+--------+--------+--------+
//	|   Identifier    | Sequence Number |  4  (echo; other types: type-specific)
//	+--------+--------+--------+--------+
func decodeICMP(l4 []byte, p *Packet) bool {
	if len(l4) < icmpHeaderLen {
		return p.short()
	}
	p.ICMPType = l4[0]
	p.ICMPCode = l4[1]
	if isEcho(p.Proto, p.ICMPType) {
		p.ICMPID = binary.BigEndian.Uint16(l4[4:6])
		p.ICMPSeq = binary.BigEndian.Uint16(l4[6:8])
	}
	p.Payload = l4[icmpHeaderLen:]
	return true
}

func isEcho(proto, typ uint8) bool {
	if proto == ProtoICMP {
		return typ == 0 || typ == 8 // echo reply, echo request
	}
	return typ == 128 || typ == 129
}

// decodeSCTP decodes the SCTP common header (RFC 9260 3.1); Payload holds
// the chunks:
//
//	 0                   1                   2                   3
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Source Port Number        |     Destination Port Number   |  0
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Verification Tag                         |  4
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           Checksum                            |  8
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func decodeSCTP(l4 []byte, p *Packet) bool {
	if len(l4) < sctpHeaderLen {
		return p.short()
	}
	p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
	p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	p.SCTPTag = binary.BigEndian.Uint32(l4[4:8])
	p.Payload = l4[sctpHeaderLen:]
	return true
}

// decodeDCCP reads the ports of a DCCP header (RFC 4340 5.1), which start
// like TCP's; byte 4 is the data offset in 32-bit words.
func decodeDCCP(l4 []byte, p *Packet) bool {
	if len(l4) < 12 {
		return p.short()
	}
	p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
	p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	doff := int(l4[4]) * 4
	if doff < 12 || doff > len(l4) && !p.Short {
		return p.fail(ReasonBadDCCPOffset)
	}
	if doff > len(l4) {
		return p.short()
	}
	p.Payload = l4[doff:]
	return true
}
