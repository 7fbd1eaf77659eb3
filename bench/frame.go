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
// the headers plus one payload byte) built by pktbuild with correct
// checksums, so the firewall and sink treat it as any other datagram.
// Frames are built once per batch template, not per packet sent.
// b must hold 14+max(ipSize, headers+1) bytes.
func buildFrame(b []byte, dstMAC, srcMAC net.HardwareAddr, f flow, ipSize int) int {
	v6 := f.src.Is6()
	payload := make([]byte, udpPayload(ipSize, v6))
	for i := range payload {
		payload[i] = byte(i)
	}
	l4 := pktbuild.UDP(f.srcPort, f.dstPort, payload)
	var ip []byte
	etype := uint16(0x0800)
	if v6 {
		ip, etype = pktbuild.IPv6{Proto: 17, Src: f.src, Dst: f.dst}.Build(l4), 0x86dd
	} else {
		ip = pktbuild.IPv4{DF: true, Proto: 17, Src: f.src, Dst: f.dst}.Build(l4)
	}
	pktbuild.SetChecksums(ip)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:], etype)
	return 14 + copy(b[14:], ip)
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
