package packet

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/qguard/qguard/internal/pktbuild"
)

// Decode against gopacket as the oracle: random IPv6 extension header
// chains of any length and random IPv4 option lists, with UDP or TCP
// inside. Both must find the same transport protocol, ports and payload:
// a decoder that stopped earlier than the stack would hide the ports from
// every rule.

func oracleTransport(r *rand.Rand) (proto uint8, l4 []byte, sport, dport uint16, payload []byte) {
	// Ports above those gopacket decodes application layers for.
	sport, dport = uint16(30000+r.IntN(30000)), uint16(30000+r.IntN(30000))
	payload = make([]byte, r.IntN(40))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	if r.IntN(2) == 0 {
		return ProtoUDP, pktbuild.UDP(sport, dport, payload), sport, dport, payload
	}
	return ProtoTCP, pktbuild.TCP(sport, dport, TCPAck, nil, payload), sport, dport, payload
}

// gopacketTransport returns what gopacket decoded as the transport layer.
func gopacketTransport(t *testing.T, b []byte, first gopacket.LayerType) (proto uint8, sport, dport uint16, payload []byte) {
	t.Helper()
	pkt := gopacket.NewPacket(b, first, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v\n%x", el.Error(), b)
	}
	switch l := pkt.TransportLayer().(type) {
	case *layers.UDP:
		return ProtoUDP, uint16(l.SrcPort), uint16(l.DstPort), l.Payload
	case *layers.TCP:
		return ProtoTCP, uint16(l.SrcPort), uint16(l.DstPort), l.Payload
	}
	t.Fatalf("gopacket found no transport layer: %v", pkt)
	return 0, 0, 0, nil
}

func TestDecodeOracleIPv6ExtHeaders(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 3000; i++ {
		var exts []pktbuild.Ext
		if r.IntN(2) == 0 {
			exts = append(exts, pktbuild.NewExt(ProtoHopByHop, pktbuild.Opts6(1+r.IntN(3))))
		}
		for n := r.IntN(40); n > 0; n-- {
			switch r.IntN(3) {
			case 0:
				exts = append(exts, pktbuild.NewExt(ProtoDstOpts, pktbuild.Opts6(1+r.IntN(4))))
			case 1:
				body := make([]byte, 6+16*r.IntN(3)) // type 0, segments left 0, addresses

				exts = append(exts, pktbuild.NewExt(ProtoRouting, body))
			default:
				exts = append(exts, pktbuild.NewExt(ProtoAH, make([]byte, 14+8*r.IntN(2))))
			}
		}
		proto, l4, sport, dport, payload := oracleTransport(r)
		b := pktbuild.IPv6{Proto: proto, Exts: exts}.Build(l4)
		var p Packet
		if !Decode(b, &p) {
			t.Fatalf("%d headers: %s\n%x", len(exts), p.Invalid, b)
		}
		gp, gs, gd, gpay := gopacketTransport(t, b, layers.LayerTypeIPv6)
		if p.Proto != proto || gp != proto || p.SrcPort != sport || p.DstPort != dport || gs != sport || gd != dport ||
			!bytes.Equal(p.Payload, payload) || !bytes.Equal(gpay, payload) {
			t.Fatalf("%d headers: ours %d %d>%d %x, gopacket %d %d>%d %x, built %d %d>%d %x", len(exts),
				p.Proto, p.SrcPort, p.DstPort, p.Payload, gp, gs, gd, gpay, proto, sport, dport, payload)
		}
	}
}

func TestDecodeOracleIPv4Options(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 3000; i++ {
		var opts []byte
		for len(opts) < 36 && r.IntN(6) != 0 {
			switch r.IntN(3) {
			case 0:
				opts = append(opts, 1) // NOP
			default:
				l := 3 + r.IntN(6)
				if len(opts)+l > 40 {
					continue
				}
				o := make([]byte, l)
				o[0], o[1] = []byte{7, 68, 130, 148}[r.IntN(4)], byte(l) // record route, timestamp, security, router alert
				opts = append(opts, o...)
			}
		}
		for len(opts)%4 != 0 {
			opts = append(opts, 0) // EOL padding
		}
		proto, l4, sport, dport, payload := oracleTransport(r)
		b := pktbuild.IPv4{Proto: proto, Opts: opts}.Build(l4)
		var p Packet
		if !Decode(b, &p) {
			t.Fatalf("options %x: %s", opts, p.Invalid)
		}
		gp, gs, gd, gpay := gopacketTransport(t, b, layers.LayerTypeIPv4)
		if p.Proto != gp || p.SrcPort != gs || p.DstPort != gd || !bytes.Equal(p.Payload, gpay) ||
			p.SrcPort != sport || p.DstPort != dport || !bytes.Equal(p.Payload, payload) {
			t.Fatalf("options %x: ours %d %d>%d, gopacket %d %d>%d", opts, p.Proto, p.SrcPort, p.DstPort, gp, gs, gd)
		}
	}
}
