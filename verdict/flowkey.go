package verdict

import (
	"encoding/binary"
	"math/bits"

	"github.com/qguard/qguard/verdict/packet"
)

// flowKey identifies a flow in both directions: the two endpoints are
// stored in a fixed order (the lower address and port first) so a packet
// and its reply build the same key.
//
//	w[0], w[1]  endpoint A address (16 bytes, IPv4 as ::ffff:a.b.c.d)
//	w[2], w[3]  endpoint B address
//	w[4]        port A << 48 | port B << 32 | proto << 8 | family
type flowKey struct {
	w [5]uint64
}

// makeKey builds p's flow key and reports whether p's source is endpoint A.
// ICMP echo flows use the echo identifier as both ports so pings pair up.
func makeKey(p *packet.Packet) (k flowKey, srcIsA bool) {
	s, d := p.Src.As16(), p.Dst.As16()
	s0, s1 := binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])
	d0, d1 := binary.BigEndian.Uint64(d[:8]), binary.BigEndian.Uint64(d[8:])
	sp, dp := p.SrcPort, p.DstPort
	if p.ICMPID != 0 && p.IsICMP() {
		sp, dp = p.ICMPID, p.ICMPID
	}
	srcIsA = s0 < d0 || s0 == d0 && (s1 < d1 || s1 == d1 && sp <= dp)
	if !srcIsA {
		s0, s1, d0, d1, sp, dp = d0, d1, s0, s1, dp, sp
	}
	k.w = [5]uint64{s0, s1, d0, d1, uint64(sp)<<48 | uint64(dp)<<32 | uint64(p.Proto)<<8 | uint64(p.Family)}
	return k, srcIsA
}

func (k *flowKey) proto() uint8 { return uint8(k.w[4] >> 8) }

// hash mixes the key with a per-table random seed, so that an attacker who
// does not know the seed cannot aim many flows at one bucket.
func (k *flowKey) hash(seed uint64) uint64 {
	h := seed
	for _, w := range k.w {
		h ^= w
		hi, lo := bits.Mul64(h, 0x9e3779b97f4a7c15)
		h = hi ^ lo
	}
	hi, lo := bits.Mul64(h^seed, 0xbf58476d1ce4e5b9)
	return hi ^ lo
}
