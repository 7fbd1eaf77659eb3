package packet

import (
	"net/netip"

	"github.com/qguard/qguard/proto"
)

// IP protocol numbers decoded by Decode. The transport protocols are
// package proto's (the one table of names and numbers); the IPv6
// extension headers only Decode needs.
const (
	ProtoHopByHop  = 0 // IPv6 hop-by-hop options (RFC 8200 4.3)
	ProtoICMP      = proto.ICMP
	ProtoTCP       = proto.TCP
	ProtoUDP       = proto.UDP
	ProtoDCCP      = proto.DCCP
	ProtoRouting   = 43 // IPv6 routing header (RFC 8200 4.4)
	ProtoFragment  = 44 // IPv6 fragment header (RFC 8200 4.5)
	ProtoESP       = proto.ESP
	ProtoAH        = proto.AH
	ProtoICMPv6    = proto.ICMPv6
	ProtoNoNext    = 59 // IPv6 no next header
	ProtoDstOpts   = 60 // IPv6 destination options (RFC 8200 4.6)
	ProtoSCTP      = proto.SCTP
	ProtoUDPLite   = proto.UDPLite
	ipv4HeaderLen  = 20
	ipv6HeaderLen  = 40
	tcpHeaderLen   = 20
	udpHeaderLen   = 8
	icmpHeaderLen  = 8
	sctpHeaderLen  = 12
	maxIPv4Payload = 65535
)

// TCP flags as found in byte 13 of the TCP header (RFC 9293 3.1, RFC 3168).
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
	TCPEce = 0x40
	TCPCwr = 0x80
)

// Packet is one decoded IP packet. Decode fills it without allocating; the
// Payload slice points into the buffer given to Decode, so it is valid only
// as long as that buffer is (for a queued packet: until its verdict).
// Callers own a Packet and reuse it for every packet.
type Packet struct {
	Family     uint8 // 4 or 6; 0 when the version could not be read
	Proto      uint8 // transport protocol: after IPv6 extension headers
	Src, Dst   netip.Addr
	SrcPort    uint16 // TCP, UDP, UDP-Lite, SCTP, DCCP
	DstPort    uint16
	TCPFlags   uint8  // TCPFin, TCPSyn, ...
	ICMPType   uint8  // ICMP or ICMPv6 type
	ICMPCode   uint8  // ICMP or ICMPv6 code
	Frag       bool   // the packet is a fragment (offset > 0 or more fragments follow)
	FragOffset uint16 // fragment offset in bytes (the header field times 8)
	MoreFrags  bool   // the MF flag (IPv4) or M flag (IPv6 fragment header)
	TTL        uint8  // IPv4 TTL or IPv6 hop limit
	IPLen      int    // IP total length from the header (IPv6: 40 + payload length)
	L4Off      int    // offset of the transport header: IP header plus options or extension headers
	Payload    []byte // transport payload; nil for non-first fragments
	Invalid    Reason // why Decode returned false; ReasonNone otherwise

	TOS        uint8  // IPv4 type of service or IPv6 traffic class (DSCP and ECN)
	IPOptions  bool   // IPv4 header carries options (IHL > 5)
	DontFrag   bool   // IPv4 DF flag
	ExtHeaders uint8  // number of IPv6 extension headers walked (255: 255 or more)
	FragID     uint32 // IPv4 identification or IPv6 fragment identification
	Short      bool   // captured bytes end before IPLen (a copy range cut the packet); headers are complete
	TCPSeq     uint32 // TCP sequence number
	TCPAck     uint32 // TCP acknowledgment number
	TCPWindow  uint16 // TCP window (unscaled)
	TCPHdrLen  uint8  // TCP header length in bytes, options included
	ICMPID     uint16 // identifier of ICMP/ICMPv6 echo request and reply
	ICMPSeq    uint16 // sequence number of ICMP/ICMPv6 echo request and reply
	SCTPTag    uint32 // SCTP verification tag
}

// HasPorts reports whether SrcPort and DstPort were read from a transport
// header: false for non-first fragments and for protocols without ports.
func (p *Packet) HasPorts() bool {
	if p.FragOffset != 0 || p.Invalid != ReasonNone {
		return false
	}
	switch p.Proto {
	case ProtoTCP, ProtoUDP, ProtoUDPLite, ProtoSCTP, ProtoDCCP:
		return true
	}
	return false
}

// IsICMP reports whether the packet is ICMP for its family (ICMP over IPv4,
// ICMPv6 over IPv6) with its type and code read.
func (p *Packet) IsICMP() bool {
	if p.FragOffset != 0 || p.Invalid != ReasonNone {
		return false
	}
	return (p.Family == 4 && p.Proto == ProtoICMP) || (p.Family == 6 && p.Proto == ProtoICMPv6)
}
