// Package packet decodes IPv4 and IPv6 packets into a caller-owned
// [Packet] without allocating.
//
// # Decoding
//
// [Decode] reads options and fragments, IPv6 extension header chains of
// any length, and the ports of TCP, UDP, UDP-Lite, SCTP and DCCP, the
// type and code of ICMP and ICMPv6. It never panics; malformed input sets
// Packet.Invalid to a [Reason] (a constant with a String method), not an
// error value, because an attacker chooses how often that path runs.
//
// # Lifetime
//
// Slices in a Packet point into the buffer given to Decode and are valid
// as long as it is: for a queued packet, until its verdict. Callers own a
// Packet and reuse it for every packet.
//
// # Concurrency
//
// Decode is a pure function; a Packet belongs to one goroutine.
package packet
