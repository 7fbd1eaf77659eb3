package verdict

import (
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/qguard/qguard/verdict/packet"
)

// Packet builders for the policy and pipeline tests: IPv4 or IPv6 by the
// addresses given, headers written byte by byte, checksums zero (Decode
// does not check them).

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
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint16(l4[0:], t.sport)
		binary.BigEndian.PutUint16(l4[2:], t.dport)
		l4[12] = 5 << 4
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
		binary.BigEndian.PutUint32(l4[4:], seq)
		l4[13] = f
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case packet.ProtoUDP:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], t.sport)
		binary.BigEndian.PutUint16(l4[2:], t.dport)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(t.payload)))
	case packet.ProtoICMP, packet.ProtoICMPv6:
		l4 = make([]byte, 8)
		l4[0] = t.icmpType
		binary.BigEndian.PutUint16(l4[4:], t.icmpID)
	}
	l4 = append(l4, t.payload...)
	src, dst := netip.MustParseAddr(t.src), netip.MustParseAddr(t.dst)
	if src.Is4() {
		b := make([]byte, 20, 20+len(l4))
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(b[6:], t.fragOff>>3)
		b[8], b[9] = 64, t.proto
		s, d := src.As4(), dst.As4()
		copy(b[12:], s[:])
		copy(b[16:], d[:])
		return append(b, l4...)
	}
	b := make([]byte, 40, 40+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
	b[6], b[7] = t.proto, 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, l4...)
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
func tDNS(name string) []byte {
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

// tHello builds a TLS record holding a ClientHello with a server_name
// extension for host.
func tHello(host string) []byte {
	be16 := func(v int) []byte { return []byte{byte(v >> 8), byte(v)} }
	sn := append([]byte{0}, be16(len(host))...)
	sn = append(sn, host...)
	sn = append(be16(len(sn)), sn...)
	ext := append(append([]byte{0, 0}, be16(len(sn))...), sn...)
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // cipher suites
	body = append(body, 1, 0)                // compression
	body = append(append(body, be16(len(ext))...), ext...)
	hs := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append(append([]byte{22, 3, 1}, be16(len(hs))...), hs...)
}

func tHTTP(host string) []byte {
	return []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: t\r\n\r\n")
}
