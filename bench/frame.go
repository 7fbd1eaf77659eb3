package bench

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/qguard/qguard/internal/pktbuild"
)

// flow is one UDP flow of the raw-frame generator.
type flow struct {
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

// buildFrame writes an Ethernet frame carrying one UDP datagram of flow f
// into b and returns its length: an IP packet of ipSize bytes (at least
// the headers plus one payload byte), with correct IPv4 header and UDP
// checksums (pktbuild.SetChecksums), so the firewall and sink treat it as any other datagram.
// b must hold 14+max(ipSize, headers+1) bytes.
func buildFrame(b []byte, dstMAC, srcMAC net.HardwareAddr, f flow, ipSize int) int {
	v6 := f.src.Is6()
	payload := udpPayload(ipSize, v6)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	ip := b[14:]
	var udp []byte
	if v6 {
		binary.BigEndian.PutUint16(b[12:], 0x86dd)
		udp = ip[40:]
		binary.BigEndian.PutUint32(ip[0:], 6<<28)
		binary.BigEndian.PutUint16(ip[4:], uint16(8+payload))
		ip[6], ip[7] = 17, 64
		s, d := f.src.As16(), f.dst.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
	} else {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		udp = ip[20:]
		ip[0], ip[1] = 0x45, 0
		binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payload))
		binary.BigEndian.PutUint16(ip[4:], 0)      // id: DF is set
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8], ip[9] = 64, 17
		ip[10], ip[11] = 0, 0
		s, d := f.src.As4(), f.dst.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
	}
	ulen := 8 + payload
	binary.BigEndian.PutUint16(udp[0:], f.srcPort)
	binary.BigEndian.PutUint16(udp[2:], f.dstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(ulen))
	udp[6], udp[7] = 0, 0
	for i := range payload {
		udp[8+i] = byte(i)
	}
	pktbuild.SetChecksums(ip[:ipHeader(v6)+ulen])
	return 14 + len(ip[:ipHeader(v6)+ulen])
}

func ipHeader(v6 bool) int {
	if v6 {
		return 40
	}
	return 20
}

// udpPayload is the UDP payload that makes an IP packet of size bytes.
func udpPayload(size int, v6 bool) int {
	hdr := 20 + 8
	if v6 {
		hdr = 40 + 8
	}
	if size < hdr+1 {
		return 1
	}
	return size - hdr
}
