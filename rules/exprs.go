package rules

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Expression helpers. Registers hold meta and ct values in host byte order
// and packet fields in network byte order, as nft does.

func u32(v uint32) []byte  { return binary.NativeEndian.AppendUint32(nil, v) }
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// ifname pads an interface name to IFNAMSIZ, the register layout of
// meta iifname/oifname.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// maskedEq is `<key> & mask == value` for a 32-bit meta or ct key.
func maskedEq(load expr.Any, mask, value uint32) []expr.Any {
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(mask), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(value)},
	}
}

func metaMark() expr.Any { return &expr.Meta{Key: expr.MetaKeyMARK, Register: 1} }
func ctMark() expr.Any   { return &expr.Ct{Key: expr.CtKeyMARK, Register: 1} }

// ctMarkMerge is `ct mark set ct mark & ^mask | value`: the verdict mark
// under the mask replaces qguard's bits and leaves everyone else's alone.
// value is known to equal `meta mark & mask` in the rules that use this, so
// one register suffices (no bitwise on two registers, which older kernels
// lack).
func ctMarkMerge(mask, value uint32) []expr.Any {
	return []expr.Any{
		ctMark(),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(^mask), Xor: u32(value)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
	}
}

// kernelAnswer is `ct state related ct direction reply ct status &
// confirmed == 0`: a packet the kernel built in answer to one that is still
// on its way (a reject's TCP reset or ICMP error, an ICMP time exceeded),
// which carries that packet's conntrack entry before it was confirmed. A
// genuine reply or a remote ICMP error always finds a confirmed entry.
func kernelAnswer() []expr.Any {
	const ctStateRelated = 1 << 2 // NF_CT_STATE_BIT(IP_CT_RELATED), nf_conntrack_common.h
	const ipCTDirReply = 1        // IP_CT_DIR_REPLY, nf_conntrack_tuple_common.h
	const ipsConfirmed = 1 << 3   // IPS_CONFIRMED, nf_conntrack_common.h
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(ctStateRelated), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)},
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{ipCTDirReply}},
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(ipsConfirmed), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(0)},
	}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

func nfproto(family byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
	}
}

// addrLoad loads the IPv4 or IPv6 source or destination address.
func addrLoad(v6, src bool) expr.Any {
	off, n := uint32(12), uint32(4) // struct iphdr: saddr at 12, daddr at 16
	if v6 {
		off, n = 8, 16 // struct ipv6hdr: saddr at 8, daddr at 24
	}
	if !src {
		off += n
	}
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

// portLoad loads the transport source (offset 0) or destination (2) port.
func portLoad(src bool) expr.Any {
	off := uint32(2)
	if src {
		off = 0
	}
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
}

func lookup(s *nftables.Set) expr.Any {
	return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID}
}

// anonSet describes a constant anonymous set bound to one rule.
func anonSet(t *nftables.Table, key nftables.SetDatatype, interval bool) *nftables.Set {
	return &nftables.Set{Table: t, Anonymous: true, Constant: true, Interval: interval, KeyType: key}
}

// portElems returns interval set elements in nft's layout: a leading end
// marker at 0 when the first range starts above 0, then start/end+1 pairs,
// overlapping and adjacent ranges merged.
func portElems(rs []PortRange) []nftables.SetElement {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.Lo) - int(b.Lo) })
	var merged []PortRange
	for _, r := range rs {
		if n := len(merged); n > 0 && uint32(r.Lo) <= uint32(merged[n-1].Hi)+1 {
			merged[n-1].Hi = max(merged[n-1].Hi, r.Hi)
			continue
		}
		merged = append(merged, r)
	}
	var el []nftables.SetElement
	if merged[0].Lo > 0 {
		el = append(el, nftables.SetElement{Key: be16(0), IntervalEnd: true})
	}
	for _, r := range merged {
		el = append(el, nftables.SetElement{Key: be16(r.Lo)})
		if r.Hi < 0xffff {
			el = append(el, nftables.SetElement{Key: be16(r.Hi + 1), IntervalEnd: true})
		}
	}
	return el
}

type addrRange struct{ first, last netip.Addr }

// prefixElems returns interval elements for the prefixes of one family.
func prefixElems(ps []netip.Prefix, v6 bool) []nftables.SetElement {
	var rs []addrRange
	for _, p := range ps {
		if p.Addr().Is6() != v6 || p.Addr().Is4In6() {
			continue
		}
		p = p.Masked()
		rs = append(rs, addrRange{p.Addr(), lastAddr(p)})
	}
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.first.Compare(b.first) })
	merged := rs[:1]
	for _, r := range rs[1:] {
		cur := &merged[len(merged)-1]
		if next := cur.last.Next(); !next.IsValid() || r.first.Compare(next) <= 0 {
			if r.last.Compare(cur.last) > 0 {
				cur.last = r.last
			}
			continue
		}
		merged = append(merged, r)
	}
	var el []nftables.SetElement
	zero := netip.IPv4Unspecified()
	if v6 {
		zero = netip.IPv6Unspecified()
	}
	if merged[0].first != zero {
		el = append(el, nftables.SetElement{Key: zero.AsSlice(), IntervalEnd: true})
	}
	for _, r := range merged {
		el = append(el, nftables.SetElement{Key: r.first.AsSlice()})
		if next := r.last.Next(); next.IsValid() {
			el = append(el, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return el
}

// lastAddr is the highest address in a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// The flow tuple occupies consecutive 32-bit registers from NFT_REG32_00,
// the layout of a concatenation key: saddr . daddr . l4proto . sport . dport
// (each field padded to 4 bytes; loads shorter than 4 bytes zero the rest).
const tupleReg = unix.NFT_REG32_00

// tupleLoad loads the flow tuple of an IPv4 or IPv6 packet. For protocols
// without ports the "ports" are the first four transport header bytes.
func tupleLoad(v6 bool) []expr.Any {
	n := uint32(1) // registers per address
	if v6 {
		n = 4
	}
	src, dst := addrLoad(v6, true).(*expr.Payload), addrLoad(v6, false).(*expr.Payload)
	src.DestRegister, dst.DestRegister = tupleReg, tupleReg+n
	sport, dport := portLoad(true).(*expr.Payload), portLoad(false).(*expr.Payload)
	sport.DestRegister, dport.DestRegister = tupleReg+2*n+1, tupleReg+2*n+2
	return []expr.Any{src, dst, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: tupleReg + 2*n}, sport, dport}
}

// tupleType is the set key type matching tupleLoad.
func tupleType(v6 bool) nftables.SetDatatype {
	a := nftables.TypeIPAddr
	if v6 {
		a = nftables.TypeIP6Addr
	}
	return nftables.MustConcatSetType(a, a, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeInetService)
}

// kernelAnswerRule adds the "kernel answer not queued" rule (kernelAnswer)
// at hooks a kernel answer passes. The kernel sends its answers from this
// host (ip_local_out: output, postrouting, and prerouting and input when
// they come back over loopback), never through forward. The rule's ct
// expressions turn connection tracking on for the whole namespace
// (nf_ct_netns_get), so at forward it is there only when Config.Conntrack
// asks for tracking.
func (b *builder) kernelAnswerRule(ch *nftables.Chain, hook string) {
	if hook == "forward" && !b.cfg.Conntrack {
		return
	}
	b.rule(ch, "kernel answer not queued", kernelAnswer(), one(&expr.Counter{}, verdict(expr.VerdictAccept)))
}
