// Package proto is qguard's shared vocabulary: IP protocol numbers and
// their names, transport port ranges and what makes an interface name.
//
// # One table
//
// It is a leaf: config, verdict, rules and xdp all import it, so a
// protocol name or a port range means the same thing in `qguard check`,
// in the policy, in the nftables rules and in the XDP maps. verdict and
// rules keep their historical names for these types as aliases
// (verdict.PortRange, rules.PortRange, packet.ProtoTCP in verdict/packet,
// xdp.ProtoTCP).
package proto
