package verdict

import (
	"encoding/binary"
	"net/netip"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/verdict/packet"
)

// Packet descriptions for the policy and pipeline tests: IPv4 or IPv6 by
// the addresses given, built by pktbuild, checksums zero (Decode does not
// check them).

const (
	tc4 = "198.18.1.2"
	ts4 = "198.18.2.2"
	tc6 = "2001:db8:1::2"
	ts6 = "2001:db8:2::2"
)

// tpkt describes a test packet.
type tpkt struct {
	src, dst     string
	proto        uint8
	sport, dport uint16
	flags        uint8 // TCP; 0 means SYN without payload, PSH|ACK with
	seq          uint32
	icmpType     uint8
	icmpID       uint16
	payload      []byte
	fragOff      uint16 // IPv4 only, bytes
}

func (t tpkt) raw() []byte {
	var l4 []byte
	switch t.proto {
	case packet.ProtoTCP:
		f := t.flags
		if f == 0 {
			f = packet.TCPSyn
			if len(t.payload) > 0 {
				f = packet.TCPPsh | packet.TCPAck
			}
		}
		seq := t.seq
		if f&(packet.TCPSyn|packet.TCPAck) == packet.TCPSyn && len(t.payload) == 0 {
			seq-- // the SYN takes the sequence number before the first data byte, seq
		}
		l4 = pktbuild.TCP(t.sport, t.dport, f, nil, t.payload)
		binary.BigEndian.PutUint32(l4[4:], seq)
	case packet.ProtoUDP:
		l4 = pktbuild.UDP(t.sport, t.dport, t.payload)
	case packet.ProtoICMP, packet.ProtoICMPv6:
		l4 = pktbuild.ICMP(t.icmpType, 0, t.icmpID, 0, t.payload)
	default:
		l4 = t.payload
	}
	src, dst := netip.MustParseAddr(t.src), netip.MustParseAddr(t.dst)
	if src.Is4() {
		return pktbuild.IPv4{FragOff: t.fragOff, Proto: t.proto, Src: src, Dst: dst}.Build(l4)
	}
	return pktbuild.IPv6{Proto: t.proto, Src: src, Dst: dst}.Build(l4)
}

// reply returns the packet going the other way.
func (t tpkt) reply() tpkt {
	t.src, t.dst, t.sport, t.dport = t.dst, t.src, t.dport, t.sport
	return t
}

func tcp(src, dst string, sport, dport uint16, payload []byte) tpkt {
	return tpkt{src: src, dst: dst, proto: packet.ProtoTCP, sport: sport, dport: dport, payload: payload}
}

func udp(src, dst string, sport, dport uint16, payload []byte) tpkt {
	return tpkt{src: src, dst: dst, proto: packet.ProtoUDP, sport: sport, dport: dport, payload: payload}
}

// tDNS builds a DNS query for name.
func tDNS(name string) []byte { return pktbuild.DNSQuery(0x1234, name) }

// tHello builds a TLS record holding a ClientHello with a server_name
// extension for host.
func tHello(host string) []byte { return pktbuild.ClientHello(host, 0) }

func tHTTP(host string) []byte {
	return []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: t\r\n\r\n")
}
