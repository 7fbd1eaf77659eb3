package verdict

import (
	"encoding/binary"
	"net/netip"
)

// Test builders: packets are assembled byte by byte so every test states
// the exact header values it depends on. Checksums are left zero because
// Decode does not verify them (the kernel did).

var (
	client4 = netip.MustParseAddr("198.18.1.2")
	server4 = netip.MustParseAddr("198.18.2.2")
	client6 = netip.MustParseAddr("2001:db8:1::2")
	server6 = netip.MustParseAddr("2001:db8:2::2")
)

// ip4 describes an IPv4 header; zero fields take usable defaults.
type ip4 struct {
	tos     uint8
	id      uint16
	df, mf  bool
	fragOff uint16 // bytes, multiple of 8
	ttl     uint8
	proto   uint8
	src     netip.Addr
	dst     netip.Addr
	opts    []byte // padded to a multiple of 4 by the caller
	total   int    // overrides the total length when non-zero
}

func (h ip4) build(l4 []byte) []byte {
	ihl := 20 + len(h.opts)
	b := make([]byte, ihl, ihl+len(l4))
	b[0] = 0x40 | byte(ihl/4)
	b[1] = h.tos
	total := ihl + len(l4)
	if h.total != 0 {
		total = h.total
	}
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	binary.BigEndian.PutUint16(b[4:], h.id)
	frag := h.fragOff >> 3
	if h.df {
		frag |= 0x4000
	}
	if h.mf {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = h.ttl
	if b[8] == 0 {
		b[8] = 64
	}
	b[9] = h.proto
	src, dst := h.src, h.dst
	if !src.IsValid() {
		src, dst = client4, server4
	}
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	copy(b[20:], h.opts)
	return append(b, l4...)
}

// ext is one IPv6 extension header: its type and its body after the
// next-header and length bytes.
type ext struct {
	typ  uint8
	body []byte
}

// ip6 describes an IPv6 header and its extension headers.
type ip6 struct {
	tc    uint8
	hop   uint8
	proto uint8 // upper-layer protocol after the extension headers
	src   netip.Addr
	dst   netip.Addr
	exts  []ext
	plen  int // overrides the payload length when non-zero
}

func (h ip6) build(l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4)+64)
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(h.tc)<<20|0x12345)
	b[7] = h.hop
	if b[7] == 0 {
		b[7] = 64
	}
	src, dst := h.src, h.dst
	if !src.IsValid() {
		src, dst = client6, server6
	}
	s16, d16 := src.As16(), dst.As16()
	copy(b[8:], s16[:])
	copy(b[24:], d16[:])
	nextAt := 6
	for _, e := range h.exts {
		b[nextAt] = e.typ
		nextAt = len(b)
		hdr := append([]byte{0, 0}, e.body...)
		switch e.typ {
		case ProtoAH:
			hdr[1] = byte(len(hdr)/4 - 2)
		case ProtoFragment:
		default:
			hdr[1] = byte(len(hdr)/8 - 1)
		}
		b = append(b, hdr...)
	}
	b[nextAt] = h.proto
	b = append(b, l4...)
	plen := len(b) - 40
	if h.plen != 0 {
		plen = h.plen
	}
	binary.BigEndian.PutUint16(b[4:], uint16(plen))
	return b
}

// opts6 returns a hop-by-hop or destination options body padded with PadN
// to n*8-2 bytes.
func opts6(n int) []byte {
	body := make([]byte, n*8-2)
	body[0] = 1 // PadN
	body[1] = byte(len(body) - 2)
	return body
}

// frag6 returns a fragment header body: offset in bytes, M flag, id.
func frag6(off uint16, more bool, id uint32) []byte {
	body := make([]byte, 6)
	fo := off
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(body[0:], fo)
	binary.BigEndian.PutUint32(body[2:], id)
	return body
}

func tcpSeg(sport, dport uint16, flags uint8, opts, payload []byte) []byte {
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

func udpDgram(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func icmpMsg(typ, code uint8, id, seq uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	return append(b, payload...)
}

func sctpPkt(sport, dport uint16, tag uint32, chunks []byte) []byte {
	b := make([]byte, 12, 12+len(chunks))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], tag)
	return append(b, chunks...)
}
