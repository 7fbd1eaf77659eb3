// Package pktbuild builds packets and application-layer messages byte by
// byte, so that every test states the header values it depends on: IPv4
// and IPv6 headers (with extension headers), TCP, UDP, ICMP, SCTP, DNS
// and TLS ClientHellos.
//
// # Users
//
// The tests of queue, verdict and the engine, the rule-test runner and
// the benchmark use it, so it imports neither testing nor a client
// library: what real clients send (crypto/tls, quic-go) is captured by
// internal/testutil.
//
// # Checksums
//
// Build leaves checksums zero: the decoder does not verify them (the kernel
// did before queueing). Packets for a real kernel (raw sockets, the
// generator's frames) get them from SetChecksums, or Checksum and
// PseudoHeader for code that writes headers in place.
package pktbuild
