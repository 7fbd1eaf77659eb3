package xdp

import (
	"encoding/binary"
	"net/netip"
)

// frame describes a test packet; build turns it into an Ethernet frame.
type frame struct {
	vlan     bool
	etype    uint16 // overrides the IP ethertype when set
	proto    uint8
	src, dst netip.AddrPort
	ihl      int // IPv4 header words, default 5
	fragOff  uint16
	ext      []uint8 // IPv6 extension headers to insert, in order
	truncate int     // bytes to cut from the end
}

func (f frame) build() []byte {
	b := make([]byte, 0, 128)
	b = append(b, 0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2)
	et := uint16(0x0800)
	if f.src.Addr().Is6() {
		et = 0x86dd
	}
	if f.etype != 0 {
		et = f.etype
	}
	if f.vlan {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, 42)
	}
	b = binary.BigEndian.AppendUint16(b, et)
	l4 := f.l4()
	if f.src.Addr().Is4() {
		ihl := f.ihl
		if ihl == 0 {
			ihl = 5
		}
		h := make([]byte, ihl*4)
		h[0] = 0x40 | byte(ihl)
		binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(l4)))
		binary.BigEndian.PutUint16(h[6:], f.fragOff)
		h[8], h[9] = 64, f.proto
		s, d := f.src.Addr().As4(), f.dst.Addr().As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		b = append(append(b, h...), l4...)
	} else {
		var exts []byte
		next := f.proto
		for i := len(f.ext) - 1; i >= 0; i-- {
			e := make([]byte, 8)
			e[0] = next
			if f.ext[i] == 44 {
				binary.BigEndian.PutUint16(e[2:], f.fragOff)
			}
			exts = append(e, exts...)
			next = f.ext[i]
		}
		h := make([]byte, 40)
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], uint16(len(exts)+len(l4)))
		h[6], h[7] = next, 64
		s, d := f.src.Addr().As16(), f.dst.Addr().As16()
		copy(h[8:], s[:])
		copy(h[24:], d[:])
		b = append(append(append(b, h...), exts...), l4...)
	}
	return b[:len(b)-f.truncate]
}

func (f frame) l4() []byte {
	l := make([]byte, 20)
	if hasPorts(f.proto) {
		binary.BigEndian.PutUint16(l[0:], f.src.Port())
		binary.BigEndian.PutUint16(l[2:], f.dst.Port())
	} else {
		l[0] = 8 // ICMP echo request, enough for the program
	}
	return l
}

var (
	cli4 = netip.MustParseAddr("198.18.1.2")
	alt4 = netip.MustParseAddr("198.18.1.3")
	srv4 = netip.MustParseAddr("198.18.2.2")
	cli6 = netip.MustParseAddr("2001:db8:1::2")
	alt6 = netip.MustParseAddr("2001:db8:1::3")
	srv6 = netip.MustParseAddr("2001:db8:2::2")
)

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
