// Package topo builds throwaway network topologies in named network
// namespaces: client -> firewall -> server over veth, IPv4 and IPv6, with
// forwarding in the firewall namespace.
//
// Tests, the benchmark harness and `qguard test` share it, so every one of
// them cleans up the same way.
//
// # Addresses
//
// IPv4 uses 198.18.0.0/15 (RFC 2544, reserved for benchmarking) and IPv6
// uses 2001:db8::/32 (documentation). Both exist only inside the namespaces a
// Topology creates, so no traffic can leave the machine.
//
// # Privileges
//
// Everything here needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
//
// # Concurrency
//
// A Topology's methods may be called from several goroutines. Do locks the
// calling goroutine to its OS thread and never hands a thread that is still
// inside a test namespace back to the scheduler.
package topo
