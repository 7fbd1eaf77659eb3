package xdp

import (
	"fmt"
	"net/netip"

	"github.com/qguard/qguard/proto"
)

// Address families as stored in keys: the IP version (FAMILY_V4/V6 in
// bpf/filter.c), like verdict/packet.Packet.Family.
const (
	family4 = 4
	family6 = 6
)

// srcKey mirrors struct src_key in bpf/filter.c:
//
//	0      1      4                      20
//	+------+------+-----------------------+
//	|family| pad  | addr (IPv4: 4 bytes,  |
//	|      | (0)  |  then 12 zero bytes)  |
//	+------+------+-----------------------+
//
// It has no implicit padding, so cilium/ebpf copies it without marshalling.
type srcKey struct {
	Family uint8
	Pad    [3]uint8
	Addr   [16]byte
}

// flowKey mirrors struct flow_key: ports in host byte order (the program
// converts them), addresses as in srcKey.
//
//	0      1      2       4       6      8        24       40
//	+------+------+-------+-------+------+--------+--------+
//	|family|proto | sport | dport | pad  |  src   |  dst   |
//	+------+------+-------+-------+------+--------+--------+
type flowKey struct {
	Family uint8
	Proto  uint8
	Sport  uint16
	Dport  uint16
	Pad    uint16
	Src    [16]byte
	Dst    [16]byte
}

// entry mirrors struct entry, the value of both block maps.
type entry struct {
	ExpiresNs uint64 // CLOCK_MONOTONIC deadline (bpf_ktime_get_ns); 0 = never
	Hits      uint64 // packets dropped, added to atomically by the program
}

// Protocol numbers whose first four L4 bytes are ports (has_ports in
// bpf/filter.c); flows of other protocols have ports 0.
const (
	ProtoTCP     = proto.TCP
	ProtoUDP     = proto.UDP
	ProtoUDPLite = proto.UDPLite
	ProtoSCTP    = proto.SCTP
)

func hasPorts(proto uint8) bool {
	return proto == ProtoTCP || proto == ProtoUDP || proto == ProtoUDPLite || proto == ProtoSCTP
}

// putAddr stores a in the key layout and returns its family, or 0 if a is
// not valid. IPv4-mapped IPv6 addresses are stored as IPv4: that is how
// the program sees an IPv4 packet's address.
func putAddr(dst *[16]byte, a netip.Addr) uint8 {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		*dst = [16]byte{}
		copy(dst[:4], b[:])
		return family4
	case a.Is6():
		*dst = a.As16()
		return family6
	}
	return 0
}

func getAddr(family uint8, b *[16]byte) netip.Addr {
	if family == family4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(*b)
}

func makeSrcKey(k *srcKey, a netip.Addr) error {
	*k = srcKey{}
	if k.Family = putAddr(&k.Addr, a); k.Family == 0 {
		return fmt.Errorf("xdp: source address %v: %w", a, ErrInvalid)
	}
	return nil
}

func makeFlowKey(k *flowKey, proto uint8, src, dst netip.AddrPort) error {
	*k = flowKey{Proto: proto}
	fs := putAddr(&k.Src, src.Addr())
	fd := putAddr(&k.Dst, dst.Addr())
	switch {
	case fs == 0:
		return fmt.Errorf("xdp: flow source %v: %w", src, ErrInvalid)
	case fd == 0:
		return fmt.Errorf("xdp: flow destination %v: %w", dst, ErrInvalid)
	case fs != fd:
		return fmt.Errorf("xdp: flow %v -> %v mixes IPv4 and IPv6: %w", src, dst, ErrInvalid)
	case !hasPorts(proto) && (src.Port() != 0 || dst.Port() != 0):
		return fmt.Errorf("xdp: flow %v -> %v: protocol %d has no ports, use port 0: %w", src, dst, proto, ErrInvalid)
	}
	k.Family = fs
	k.Sport, k.Dport = src.Port(), dst.Port()
	return nil
}
