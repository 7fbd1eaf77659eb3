package xdp

import (
	"encoding/binary"
	"net/netip"

	"github.com/qguard/qguard/internal/pktbuild"
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
		ihl := max(f.ihl, 5)
		h := pktbuild.IPv4{
			Proto: f.proto, Src: f.src.Addr(), Dst: f.dst.Addr(), Opts: make([]byte, (ihl-5)*4),
			FragOff: f.fragOff & 0x1fff << 3, MF: f.fragOff&0x2000 != 0, DF: f.fragOff&0x4000 != 0,
		}
		b = append(b, h.Build(l4)...)
	} else {
		h := pktbuild.IPv6{Proto: f.proto, Src: f.src.Addr(), Dst: f.dst.Addr()}
		for _, typ := range f.ext {
			body := make([]byte, 6)
			if typ == 44 {
				body = pktbuild.Frag6(f.fragOff, false, 0)
			}
			h.Exts = append(h.Exts, pktbuild.NewExt(typ, body))
		}
		b = append(b, h.Build(l4)...)
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
