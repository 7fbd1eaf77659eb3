// Package testutil is qguard's shared test support, in the manner of
// cilium/ebpf's internal/testutils: one place for the checks and helpers
// several packages' tests need, so they do not drift apart.
//
// # Privileges
//
// Tests that create namespaces, install nftables rules, bind queues or
// load BPF programs call NeedRoot first and are named TestIntegration*.
//
// # Namespaces
//
// NewNetNS(tb, prefix) is one throwaway namespace (Do runs code inside it
// on a locked thread, Fd opens it for setns); NewTopology(tb, opts) is the
// client -> firewall -> server topology of package topo. Both skip without
// root and are removed when the test ends.
//
// # Real clients
//
// RealClientHello and CaptureQUICGo capture what crypto/tls and quic-go
// send, for the oracle tests of the L7 extractors; ReadHex reads hex
// vectors from testdata.
package testutil
