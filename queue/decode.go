package queue

import (
	"encoding/binary"
	"time"
)

var (
	be = binary.BigEndian
	ne = binary.NativeEndian
)

// decodeResult is the outcome of decoding one packet message. Malformed
// input yields a result, never an error value, so decoding allocates nothing
// on the path an attacker can reach.
type decodeResult uint8

const (
	decodeOK decodeResult = iota
	// decodeNoID: the message is too broken to find the packet id; no
	// verdict can be sent for it.
	decodeNoID
	// decodeBad: the id is known but an attribute is malformed; the packet
	// gets the default verdict.
	decodeBad
)

// nextMsg splits the first netlink message off b. It returns the message
// type, the message after its nlmsghdr, the rest of b, and trunc when the
// message claims more bytes than b holds (a truncated receive); ok is false
// when b holds no further message.
func nextMsg(b []byte) (typ uint16, body, rest []byte, trunc, ok bool) {
	if len(b) < nlmsgHdrLen {
		return 0, nil, nil, false, false
	}
	n := int(ne.Uint32(b[0:4]))
	typ = ne.Uint16(b[4:6])
	if n < nlmsgHdrLen {
		return typ, nil, nil, false, false
	}
	if n > len(b) {
		return typ, b[nlmsgHdrLen:], nil, true, true
	}
	adv := align4(n)
	if adv > len(b) {
		adv = len(b)
	}
	return typ, b[nlmsgHdrLen:n], b[adv:], false, true
}

// decodePacket fills p from the body of an NFQNL_MSG_PACKET (struct nfgenmsg
// and the NFQA_* attributes). p must be reset by the caller. p.Payload and
// p.SecCtx point into body.
func decodePacket(body []byte, p *Packet) decodeResult {
	if len(body) < nfgenHdrLen {
		return decodeNoID
	}
	p.Queue = be.Uint16(body[2:4])
	b := body[nfgenHdrLen:]
	gotHdr, bad := false, false
	for len(b) >= nlaHdrLen {
		l := int(ne.Uint16(b[0:2]))
		if l < nlaHdrLen || l > len(b) {
			bad = true
			break
		}
		t := ne.Uint16(b[2:4]) & nlaTypeMask
		if t == attrPacketHdr {
			if l-nlaHdrLen < packetHdrLen {
				return decodeNoID
			}
			v := b[nlaHdrLen:l]
			p.ID = be.Uint32(v[0:4])
			p.HwProto = be.Uint16(v[4:6])
			p.Hook = v[6]
			gotHdr = true
		} else if !decodeAttr(t, b[nlaHdrLen:l], p) {
			bad = true
		}
		adv := align4(l)
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
	}
	if len(b) != 0 {
		bad = true
	}
	if !gotHdr {
		return decodeNoID
	}
	p.CapLen = uint32(len(p.Payload))
	if p.Has&AttrCapLen == 0 {
		p.OrigLen = p.CapLen
	}
	if bad {
		return decodeBad
	}
	return decodeOK
}

// decodeAttr stores one attribute's value v in p and reports whether it was
// well formed. Unknown attributes are skipped: newer kernels add them.
func decodeAttr(t uint16, v []byte, p *Packet) bool {
	switch t {
	case attrMark:
		return u32(v, &p.Mark, &p.Has, AttrMark)
	case attrIfIn:
		return u32(v, &p.InIf, &p.Has, AttrInIf)
	case attrIfOut:
		return u32(v, &p.OutIf, &p.Has, AttrOutIf)
	case attrIfPhysIn:
		return u32(v, &p.PhysInIf, &p.Has, AttrPhysInIf)
	case attrIfPhysOut:
		return u32(v, &p.PhysOutIf, &p.Has, AttrPhysOutIf)
	case attrUID:
		return u32(v, &p.UID, &p.Has, AttrUID)
	case attrGID:
		return u32(v, &p.GID, &p.Has, AttrGID)
	case attrSkbInfo:
		return u32(v, &p.SkbInfo, &p.Has, AttrSkbInfo)
	case attrCapLen:
		return u32(v, &p.OrigLen, &p.Has, AttrCapLen)
	case attrPriority:
		return u32(v, &p.Priority, &p.Has, AttrPriority)
	case attrCTInfo:
		var ci uint32
		if !u32(v, &ci, &p.Has, AttrCTInfo) {
			return false
		}
		p.CTState = uint8(ci)
		return true
	case attrPayload:
		p.Payload = v
		p.Has |= AttrPayload
	case attrSecCtx:
		p.SecCtx = v
		p.Has |= AttrSecCtx
	case attrTimestamp:
		// struct nfqnl_msg_packet_timestamp { __aligned_be64 sec, usec; }
		if len(v) < timestampLen {
			return false
		}
		p.Timestamp = time.Unix(int64(be.Uint64(v[0:8])), int64(be.Uint64(v[8:16])%1e6)*1e3)
		p.Has |= AttrTimestamp
	case attrHwAddr:
		// struct nfqnl_msg_packet_hw { __be16 hw_addrlen; __u16 _pad; __u8 hw_addr[8]; }
		if len(v) < hwAddrHdrLen+8 {
			return false
		}
		n := be.Uint16(v[0:2])
		if n > 8 {
			n = 8
		}
		p.HwAddrLen = uint8(n)
		copy(p.HwAddr[:], v[hwAddrHdrLen:hwAddrHdrLen+8])
		p.Has |= AttrHwAddr
	case attrCT:
		p.Has |= AttrCT
		return decodeCT(v, p)
	case attrVLAN:
		p.Has |= AttrVLAN
	case attrL2Hdr:
		p.Has |= AttrL2Hdr
	}
	return true
}

// decodeCT finds CTA_ID in the nested NFQA_CT attribute.
func decodeCT(b []byte, p *Packet) bool {
	for len(b) >= nlaHdrLen {
		l := int(ne.Uint16(b[0:2]))
		if l < nlaHdrLen || l > len(b) {
			return false
		}
		if ne.Uint16(b[2:4])&nlaTypeMask == ctaID && l >= nlaHdrLen+4 {
			p.CTID = be.Uint32(b[nlaHdrLen : nlaHdrLen+4])
		}
		adv := align4(l)
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
	}
	return len(b) == 0
}

func u32(v []byte, dst *uint32, has *Attr, a Attr) bool {
	if len(v) < 4 {
		return false
	}
	*dst = be.Uint32(v[0:4])
	*has |= a
	return true
}

// nlError returns the errno of an NLMSG_ERROR body (0 for an ACK) and its
// sequence number.
func nlError(body []byte) (errno int32, seq uint32, ok bool) {
	// struct nlmsgerr { int error; struct nlmsghdr msg; ... }
	if len(body) < 4+nlmsgHdrLen {
		return 0, 0, false
	}
	return int32(ne.Uint32(body[0:4])), ne.Uint32(body[4+8 : 4+12]), true
}
