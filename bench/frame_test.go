package bench

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
)

// TestBuildFrame checks the generator's frames the way a receiver would:
// lengths from the headers, and one's-complement sums over the IPv4
// header and over pseudo-header plus UDP that come out as all ones.
func TestBuildFrame(t *testing.T) {
	dst := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	src := net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	for _, tc := range []struct {
		src, dst string
		size     int
	}{
		{"198.18.1.10", "198.18.2.2", 64},
		{"198.18.1.10", "198.18.2.2", 1500},
		{"198.18.1.11", "198.18.2.2", 65}, // odd payload length
		{"2001:db8:1::10", "2001:db8:2::2", 64},
		{"2001:db8:1::10", "2001:db8:2::2", 1500},
	} {
		f := flow{src: netip.MustParseAddr(tc.src), dst: netip.MustParseAddr(tc.dst), srcPort: 40001, dstPort: portSink}
		b := make([]byte, 14+tc.size)
		n := buildFrame(b, dst, src, f, tc.size)
		if n != 14+tc.size {
			t.Errorf("%s size %d: frame is %d bytes, want %d", tc.src, tc.size, n, 14+tc.size)
			continue
		}
		if string(b[0:6]) != string(dst) || string(b[6:12]) != string(src) {
			t.Errorf("%s: MACs % x / % x", tc.src, b[0:6], b[6:12])
		}
		ip := b[14:n]
		var udp []byte
		var pseudo uint16
		if f.src.Is6() {
			if et := binary.BigEndian.Uint16(b[12:]); et != 0x86dd || ip[0]>>4 != 6 || ip[6] != 17 {
				t.Errorf("%s: ethertype %#x, version %d, next header %d", tc.src, et, ip[0]>>4, ip[6])
			}
			if pl := int(binary.BigEndian.Uint16(ip[4:])); pl != len(ip)-40 {
				t.Errorf("%s: payload length %d, want %d", tc.src, pl, len(ip)-40)
			}
			if netip.AddrFrom16([16]byte(ip[8:24])) != f.src || netip.AddrFrom16([16]byte(ip[24:40])) != f.dst {
				t.Errorf("%s: wrong addresses", tc.src)
			}
			udp, pseudo = ip[40:], pktbuild.Checksum(ip[8:40], 0)
		} else {
			if et := binary.BigEndian.Uint16(b[12:]); et != 0x0800 || ip[0] != 0x45 || ip[9] != 17 {
				t.Errorf("%s: ethertype %#x, version/ihl %#x, protocol %d", tc.src, et, ip[0], ip[9])
			}
			if tl := int(binary.BigEndian.Uint16(ip[2:])); tl != len(ip) {
				t.Errorf("%s: total length %d, want %d", tc.src, tl, len(ip))
			}
			if c := pktbuild.Checksum(ip[:20], 0); c != 0xffff {
				t.Errorf("%s: IPv4 header checksum does not verify (sum %#x)", tc.src, c)
			}
			if netip.AddrFrom4([4]byte(ip[12:16])) != f.src || netip.AddrFrom4([4]byte(ip[16:20])) != f.dst {
				t.Errorf("%s: wrong addresses", tc.src)
			}
			udp, pseudo = ip[20:], pktbuild.Checksum(ip[12:20], 0)
		}
		if ul := int(binary.BigEndian.Uint16(udp[4:])); ul != len(udp) {
			t.Errorf("%s: UDP length %d, want %d", tc.src, ul, len(udp))
		}
		if sp, dp := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:]); sp != f.srcPort || dp != portSink {
			t.Errorf("%s: ports %d -> %d", tc.src, sp, dp)
		}
		if binary.BigEndian.Uint16(udp[6:]) == 0 {
			t.Errorf("%s: UDP checksum left out", tc.src)
		}
		if c := pktbuild.Checksum(udp, pktbuild.Checksum([]byte{0, 17, byte(len(udp) >> 8), byte(len(udp))}, pseudo)); c != 0xffff {
			t.Errorf("%s size %d: UDP checksum does not verify (sum %#x)", tc.src, tc.size, c)
		}
	}
}
