package pktbuild

import (
	"encoding/binary"
	"net/netip"

	"github.com/qguard/qguard/proto"
)

// fragmentHeader is the IPv6 fragment header's type (RFC 8200 4.5), whose
// length byte is reserved rather than a length.
const fragmentHeader = 44

// dstOptsHeader is the IPv6 destination options header's type (RFC 8200 4.6).
const dstOptsHeader = 60

// The addresses a header takes when its Src is unset (docs/DESIGN.md: the
// test topology's client and server).
var (
	Client4 = netip.MustParseAddr("198.18.1.2")
	Server4 = netip.MustParseAddr("198.18.2.2")
	Client6 = netip.MustParseAddr("2001:db8:1::2")
	Server6 = netip.MustParseAddr("2001:db8:2::2")
)

// IPv4 describes an IPv4 header; zero fields take usable defaults.
type IPv4 struct {
	TOS     uint8
	ID      uint16
	DF, MF  bool
	FragOff uint16 // bytes, multiple of 8
	TTL     uint8  // 64 when zero
	Proto   uint8
	Src     netip.Addr // Src and Dst default to Client4 and Server4
	Dst     netip.Addr
	Opts    []byte // padded to a multiple of 4 by the caller
	Total   int    // overrides the total length when non-zero
}

// Build returns the header followed by l4.
func (h IPv4) Build(l4 []byte) []byte {
	ihl := 20 + len(h.Opts)
	b := make([]byte, ihl, ihl+len(l4))
	b[0] = 0x40 | byte(ihl/4)
	b[1] = h.TOS
	total := ihl + len(l4)
	if h.Total != 0 {
		total = h.Total
	}
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	binary.BigEndian.PutUint16(b[4:], h.ID)
	frag := h.FragOff >> 3
	if h.DF {
		frag |= 0x4000
	}
	if h.MF {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = h.TTL
	if b[8] == 0 {
		b[8] = 64
	}
	b[9] = h.Proto
	src, dst := h.Src, h.Dst
	if !src.IsValid() {
		src, dst = Client4, Server4
	}
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	copy(b[20:], h.Opts)
	return append(b, l4...)
}

// Ext is one IPv6 extension header: its type and its body after the
// next-header and length bytes.
type Ext struct {
	typ  uint8
	body []byte
}

// NewExt returns an extension header of type typ (hop-by-hop 0, routing
// 43, fragment 44, AH 51, destination options 60) with body.
func NewExt(typ uint8, body []byte) Ext { return Ext{typ, body} }

// IPv6 describes an IPv6 header and its extension headers; zero fields
// take usable defaults.
type IPv6 struct {
	TC    uint8
	Hop   uint8      // 64 when zero
	Proto uint8      // upper-layer protocol after the extension headers
	Src   netip.Addr // Src and Dst default to Client6 and Server6
	Dst   netip.Addr
	Exts  []Ext
	PLen  int // overrides the payload length when non-zero
}

// Build returns the header, its extension headers and l4.
func (h IPv6) Build(l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4)+64)
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(h.TC)<<20|0x12345)
	b[7] = h.Hop
	if b[7] == 0 {
		b[7] = 64
	}
	src, dst := h.Src, h.Dst
	if !src.IsValid() {
		src, dst = Client6, Server6
	}
	s16, d16 := src.As16(), dst.As16()
	copy(b[8:], s16[:])
	copy(b[24:], d16[:])
	nextAt := 6
	for _, e := range h.Exts {
		b[nextAt] = e.typ
		nextAt = len(b)
		hdr := append([]byte{0, 0}, e.body...)
		switch e.typ {
		case proto.AH:
			hdr[1] = byte(len(hdr)/4 - 2)
		case fragmentHeader:
		default:
			hdr[1] = byte(len(hdr)/8 - 1)
		}
		b = append(b, hdr...)
	}
	b[nextAt] = h.Proto
	b = append(b, l4...)
	plen := len(b) - 40
	if h.PLen != 0 {
		plen = h.PLen
	}
	binary.BigEndian.PutUint16(b[4:], uint16(plen))
	return b
}

// Opts6 returns a hop-by-hop or destination options body padded with PadN
// to n*8-2 bytes.
func Opts6(n int) []byte {
	body := make([]byte, n*8-2)
	body[0] = 1 // PadN
	body[1] = byte(len(body) - 2)
	return body
}

// DstOpts returns n destination options headers (RFC 8200 4.6) of 8 bytes
// each, one PadN option in each: the long extension-header chains that
// must not hide the transport header.
func DstOpts(n int) []Ext {
	exts := make([]Ext, n)
	for i := range exts {
		exts[i] = Ext{dstOptsHeader, Opts6(1)}
	}
	return exts
}

// UDP6 returns an IPv6 UDP datagram from src to dst behind n destination
// options headers (DstOpts), with its checksum: ready for a raw socket.
func UDP6(src, dst netip.Addr, sport, dport uint16, n int, payload []byte) []byte {
	pkt := IPv6{Proto: proto.UDP, Src: src, Dst: dst, Exts: DstOpts(n)}.Build(UDP(sport, dport, payload))
	SetChecksums(pkt)
	return pkt
}

// Frag6 returns a fragment header body: offset in bytes, M flag, id.
func Frag6(off uint16, more bool, id uint32) []byte {
	body := make([]byte, 6)
	fo := off
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(body[0:], fo)
	binary.BigEndian.PutUint32(body[2:], id)
	return body
}

// TCP returns a TCP header (seq 1000, ack 2000, window 65535) with opts
// (padded by the caller) and payload.
func TCP(sport, dport uint16, flags uint8, opts, payload []byte) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl, hl+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 1000)
	binary.BigEndian.PutUint32(b[8:], 2000)
	b[12] = byte(hl/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	copy(b[20:], opts)
	return append(b, payload...)
}

// UDP returns a UDP datagram; the length covers payload.
func UDP(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

// ICMP returns an ICMP or ICMPv6 message with an echo id and seq.
func ICMP(typ, code uint8, id, seq uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	return append(b, payload...)
}

// SCTP returns an SCTP common header with tag, followed by chunks.
func SCTP(sport, dport uint16, tag uint32, chunks []byte) []byte {
	b := make([]byte, 12, 12+len(chunks))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], tag)
	return append(b, chunks...)
}

// Samples returns one packet per protocol and header layout, shared by
// the truncation, allocation and fuzz tests.
func Samples() map[string][]byte {
	hello := []byte("hello")
	return map[string][]byte{
		"ipv4-tcp":      IPv4{Proto: proto.TCP}.Build(TCP(40000, 443, tcpSyn, []byte{2, 4, 5, 0xb4}, hello)),
		"ipv4-udp":      IPv4{Proto: proto.UDP, Opts: []byte{7, 3, 0, 0}}.Build(UDP(1, 53, hello)),
		"ipv4-icmp":     IPv4{Proto: proto.ICMP}.Build(ICMP(8, 0, 1, 2, hello)),
		"ipv4-sctp":     IPv4{Proto: proto.SCTP}.Build(SCTP(1, 2, 3, hello)),
		"ipv4-frag":     IPv4{Proto: proto.UDP, MF: true}.Build(UDP(1, 2, hello)),
		"ipv6-tcp":      IPv6{Proto: proto.TCP}.Build(TCP(40000, 443, tcpSyn, nil, hello)),
		"ipv6-udp":      IPv6{Proto: proto.UDP}.Build(UDP(1, 53, hello)),
		"ipv6-icmpv6":   IPv6{Proto: proto.ICMPv6}.Build(ICMP(128, 0, 1, 2, hello)),
		"ipv6-sctp":     IPv6{Proto: proto.SCTP}.Build(SCTP(1, 2, 3, hello)),
		"ipv6-ext-frag": IPv6{Proto: proto.UDP, Exts: []Ext{{0, Opts6(1)}, {fragmentHeader, Frag6(0, true, 9)}, {proto.AH, make([]byte, 10)}}}.Build(UDP(1, 2, hello)),
	}
}

// tcpSyn is the SYN flag in the TCP header's flags byte.
const tcpSyn = 0x02
